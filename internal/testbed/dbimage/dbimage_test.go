package dbimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// TestImagesServeAndDump builds (or finds) the images, then starts one
// container of each engine configured as a compose file would configure the
// official images, writes rows, and dumps them as the sidecar will.
func TestImagesServeAndDump(t *testing.T) {
	cli := dockerbed.Client(t) // also sweeps containers of crashed runs
	ctx := context.Background()

	start := time.Now()
	imgs := dbimage.ForTest(t, cli)
	t.Logf("Ensure: %s (built: %v)", time.Since(start).Round(time.Millisecond), imgs.Built)

	start = time.Now()
	again, err := dbimage.Ensure(ctx, cli, dbimage.Options{})
	require.NoError(t, err)
	warm := time.Since(start)
	t.Logf("second Ensure: %s", warm.Round(time.Millisecond))
	assert.False(t, again.Built, "the second Ensure must find the images")
	assert.Equal(t, imgs.Postgres, again.Postgres)
	assert.Equal(t, imgs.MariaDB, again.MariaDB)
	assert.Less(t, warm, 5*time.Second)

	for _, e := range []dbimage.Engine{dbimage.Postgres, dbimage.MariaDB} {
		ins, err := cli.ImageInspect(ctx, imgs.Ref(e))
		require.NoError(t, err)
		assert.Equal(t, "1", ins.Config.Labels[testbed.Label], "%s", e)
		assert.Equal(t, "1", ins.Config.Labels[dbimage.Label], "%s", e)
		assert.Equal(t, string(e), ins.Config.Labels[dbimage.EngineLabel])
		assert.Equal(t, dbimage.Hash(), ins.Config.Labels[dbimage.RecipeLabel])
		t.Logf("%s: %d MB", imgs.Ref(e), ins.Size>>20)
	}

	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		testPostgres(t, cli, imgs.Postgres)
	})
	t.Run("mariadb", func(t *testing.T) {
		t.Parallel()
		testMariaDB(t, cli, imgs.MariaDB)
	})
	t.Run("no password", func(t *testing.T) {
		t.Parallel()
		testNoPassword(t, cli, imgs)
	})
}

// testNoPassword: like the official images, an uninitialised server without
// a password refuses to start, and WaitReady says so with the log.
func testNoPassword(t *testing.T, cli *client.Client, imgs dbimage.Images) {
	for e, want := range map[dbimage.Engine]string{
		dbimage.Postgres: "superuser password is not specified",
		dbimage.MariaDB:  "password option is not specified",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:   dockerbed.UniqueName("pbtest-" + string(e) + "-"),
			Config: &container.Config{Image: imgs.Ref(e), Labels: dockerbed.Labels(nil)},
		})
		require.NoError(t, err)
		t.Cleanup(func() { dockerbed.Remove(t, cli, created.ID) })
		_, err = cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{})
		require.NoError(t, err)
		err = dbimage.WaitReady(ctx, cli, created.ID, e)
		require.Error(t, err, "%s", e)
		assert.Contains(t, err.Error(), "is not running (exit code 1)")
		assert.Contains(t, err.Error(), want)
	}
}

func testPostgres(t *testing.T, cli *client.Client, image string) {
	id, ip := startDB(t, cli, dbimage.Postgres, image,
		[]string{"POSTGRES_USER=app", "POSTGRES_PASSWORD_FILE=/run/secrets/pg_password", "POSTGRES_DB=shop"},
		map[string]string{
			// Readable by root only: the entrypoint reads it before dropping to postgres.
			"/run/secrets/pg_password": "s3cret pw\n",
			"/docker-entrypoint-initdb.d/10-items.sql": "CREATE TABLE items (id int PRIMARY KEY, name text);\n" +
				"INSERT INTO items VALUES (1, 'apple'), (2, 'pear');\n",
		})

	// Over the container's own address (not loopback, which initdb trusts),
	// the password from the file is required…
	ok := dockerbed.Exec(t, cli, id, "env", "PGPASSWORD=s3cret pw", "psql", "-h", ip, "-U", "app", "-d", "shop",
		"-v", "ON_ERROR_STOP=1", "-Atc", "INSERT INTO items VALUES (3, 'quince'); SELECT count(*) FROM items;")
	require.Equal(t, 0, ok.ExitCode, "psql: %s", ok.Stderr)
	assert.Equal(t, "3", strings.TrimSpace(lastLine(ok.Stdout)))
	// …and checked.
	bad := dockerbed.Exec(t, cli, id, "env", "PGPASSWORD=wrong", "psql", "-h", ip, "-U", "app", "-d", "shop", "-c", "SELECT 1")
	assert.NotEqual(t, 0, bad.ExitCode)
	assert.Contains(t, bad.Stderr, "password authentication failed")

	// The sidecar's dump: pg_dumpall on the unix socket, as root in the container.
	dump := dockerbed.Exec(t, cli, id, "pg_dumpall", "-U", "app")
	require.Equal(t, 0, dump.ExitCode, "pg_dumpall: %s", dump.Stderr)
	assert.Contains(t, dump.Stdout, "CREATE DATABASE shop")
	assert.Contains(t, dump.Stdout, "COPY public.items (id, name) FROM stdin;\n1\tapple\n2\tpear\n3\tquince\n\\.")
	one := dockerbed.Exec(t, cli, id, "pg_dump", "-U", "app", "shop")
	require.Equal(t, 0, one.ExitCode, "pg_dump: %s", one.Stderr)
	assert.Contains(t, one.Stdout, "2\tpear")

	// Server facts the sidecar relies on.
	user := dockerbed.Exec(t, cli, id, "psql", "-U", "app", "-d", "shop", "-Atc", "SELECT current_setting('data_directory'), current_setting('listen_addresses'), current_setting('server_version_num')")
	require.Equal(t, 0, user.ExitCode, "psql: %s", user.Stderr)
	assert.Regexp(t, `^/var/lib/postgresql/data\|\*\|15\d{4}$`, strings.TrimSpace(user.Stdout))
	ps := dockerbed.Exec(t, cli, id, "stat", "-c", "%U", "/proc/1")
	assert.Equal(t, "postgres", strings.TrimSpace(ps.Stdout), "the server (PID 1) runs as postgres")
}

func testMariaDB(t *testing.T, cli *client.Client, image string) {
	id, ip := startDB(t, cli, dbimage.MariaDB, image,
		[]string{
			"MARIADB_ROOT_PASSWORD_FILE=/run/secrets/root_password",
			"MARIADB_DATABASE=shop",
			// The MYSQL_* names the mariadb image also accepts.
			"MYSQL_USER=app", "MYSQL_PASSWORD=app pw",
		},
		map[string]string{"/run/secrets/root_password": "r00t pw\n"})

	// The application user over TCP on the container's address.
	sql := "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20)); INSERT INTO items VALUES (1,'apple'),(2,'pear'); SELECT COUNT(*) FROM items;"
	ok := dockerbed.Exec(t, cli, id, "mariadb", "-h", ip, "-uapp", "-papp pw", "shop", "-N", "-e", sql)
	require.Equal(t, 0, ok.ExitCode, "mariadb: %s", ok.Stderr)
	assert.Equal(t, "2", strings.TrimSpace(ok.Stdout))
	bad := dockerbed.Exec(t, cli, id, "mariadb", "-h", ip, "-uapp", "-pwrong", "shop", "-e", "SELECT 1")
	assert.NotEqual(t, 0, bad.ExitCode)
	assert.Contains(t, bad.Stderr, "Access denied")
	// root works from anywhere with the password from the file.
	root := dockerbed.Exec(t, cli, id, "mariadb", "-h", ip, "-uroot", "-pr00t pw", "-N", "-e", "SELECT @@datadir, @@bind_address, VERSION()")
	require.Equal(t, 0, root.ExitCode, "mariadb: %s", root.Stderr)
	assert.Regexp(t, `^/var/lib/mysql/\t0\.0\.0\.0\t10\.11\.`, strings.TrimSpace(root.Stdout))

	// The sidecar's dump, under both names of the tool, on the unix socket.
	for _, tool := range []string{"mariadb-dump", "mysqldump"} {
		dump := dockerbed.Exec(t, cli, id, tool, "-uroot", "-pr00t pw", "--all-databases", "--single-transaction")
		require.Equal(t, 0, dump.ExitCode, "%s: %s", tool, dump.Stderr)
		assert.Contains(t, dump.Stdout, "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`", tool)
		assert.Regexp(t, "INSERT INTO `items` VALUES\\s*\\(1,'apple'\\),\\s*\\(2,'pear'\\);", dump.Stdout, tool)
	}
	ps := dockerbed.Exec(t, cli, id, "stat", "-c", "%U", "/proc/1")
	assert.Equal(t, "mysql", strings.TrimSpace(ps.Stdout), "the server (PID 1) runs as mysql")
}

// startDB runs a labelled container of image with env and files (copied in
// before start, owned by root; mode 0600 under /run/secrets, else 0644), waits until it is ready and
// returns its ID and address on the default bridge network. t.Cleanup
// removes it with its anonymous volume.
func startDB(t *testing.T, cli *client.Client, e dbimage.Engine, image string, env []string, files map[string]string) (id, ip string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   dockerbed.UniqueName("pbtest-" + string(e) + "-"),
		Config: &container.Config{Image: image, Env: env, Labels: dockerbed.Labels(nil)},
	})
	require.NoError(t, err)
	t.Cleanup(func() { dockerbed.Remove(t, cli, created.ID) })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var dirs, names []string
	for name := range files {
		names = append(names, name)
		for d := path.Dir(name); d != "/" && !slices.Contains(dirs, d); d = path.Dir(d) {
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs) // parents first
	slices.Sort(names)
	for _, d := range dirs {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: d[1:] + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Now()}))
	}
	for _, name := range names {
		mode := int64(0o644)
		if strings.HasPrefix(name, "/run/secrets/") {
			mode = 0o600
		}
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name[1:], Mode: mode, Size: int64(len(files[name])), ModTime: time.Now()}))
		_, err := tw.Write([]byte(files[name]))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	_, err = cli.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: &buf})
	require.NoError(t, err)

	_, err = cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{})
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, dbimage.WaitReady(ctx, cli, created.ID, e))
	t.Logf("%s ready after %s", e, time.Since(start).Round(time.Millisecond))

	ins, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	require.NoError(t, err)
	for _, n := range ins.Container.NetworkSettings.Networks {
		if n != nil && n.IPAddress.IsValid() {
			return created.ID, n.IPAddress.String()
		}
	}
	t.Fatalf("%s container has no IP address", e)
	return "", ""
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
