package dbengine_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/dbengine"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// dbContainer is a database container, with the Database the sidecar
// would dump and restore.
type dbContainer struct {
	t   *testing.T
	cli *client.Client
	id  string
	env []string // credentials for exec'd clients (PGPASSWORD / MYSQL_PWD)
	db  dbengine.Database
}

// startDB starts a container of img and waits until it serves. Use
// begin/ready to start several at once.
func startDB(t *testing.T, cli *client.Client, img string, engine dbimage.Engine, env []string) *dbContainer {
	t.Helper()
	c := beginDB(t, cli, img, engine, env)
	c.ready(engine)
	return c
}

func beginDB(t *testing.T, cli *client.Client, img string, engine dbimage.Engine, env []string) *dbContainer {
	t.Helper()
	name := dockerbed.UniqueName("dbengine") + "-db-1"
	ctx := context.Background()
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   name,
		Config: &container.Config{Image: img, Env: env, Labels: dockerbed.Labels(nil)},
	})
	require.NoError(t, err)
	t.Cleanup(func() { dockerbed.Remove(t, cli, created.ID) }) // with its anonymous data volume
	_, err = cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{})
	require.NoError(t, err)
	db := dbengine.Database{Engine: dbengine.Engine(engine), ContainerID: created.ID, ContainerName: name}
	return &dbContainer{t: t, cli: cli, id: created.ID, db: db}
}

func (c *dbContainer) ready(engine dbimage.Engine) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(c.t, dbimage.WaitReady(ctx, c.cli, c.id, engine))
}

// exec runs cmd in the container with the credentials in its environment
// and returns its exit code, stdout and stderr.
func (c *dbContainer) exec(stdin string, cmd ...string) (int, string, string) {
	c.t.Helper()
	r := dockerbed.ExecWith(c.t, c.cli, c.id, dockerbed.ExecOptions{Env: c.env, Stdin: stdin, Timeout: 2 * time.Minute}, cmd...)
	return r.ExitCode, r.Stdout, r.Stderr
}

// session opens a psql session to db that stays (application_name app)
// and waits until the server lists it.
func (c *dbContainer) session(db, app string) {
	c.t.Helper()
	ctx := context.Background()
	ex, err := c.cli.ExecCreate(ctx, c.id, client.ExecCreateOptions{
		Cmd: []string{"psql", "-X", "-U", "mm", "-d", "dbname=" + db + " application_name=" + app, "-c", "SELECT pg_sleep(600)"},
	})
	require.NoError(c.t, err)
	_, err = c.cli.ExecStart(ctx, ex.ID, client.ExecStartOptions{Detach: true})
	require.NoError(c.t, err)
	require.Eventually(c.t, func() bool {
		return c.psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = '"+app+"'") == "1"
	}, 30*time.Second, 100*time.Millisecond)
}

// psql runs a script in database db as user mm and returns its unaligned,
// tuples-only output; it fails the test on any error.
func (c *dbContainer) psql(db, script string) string {
	c.t.Helper()
	code, out, errOut := c.exec(script, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "mm", "-d", db, "-f", "-")
	require.Equal(c.t, 0, code, "psql -d %s:\n%s\n%s", db, script, errOut)
	return strings.TrimSpace(out)
}

// mariadb runs a script as root and returns its batch output.
func (c *dbContainer) mariadb(script string) string {
	c.t.Helper()
	code, out, errOut := c.exec(script, "mariadb", "--user=root", "--batch", "--skip-column-names")
	require.Equal(c.t, 0, code, "mariadb:\n%s\n%s", script, errOut)
	return strings.TrimSpace(out)
}

func (c *dbContainer) dump() []byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var buf bytes.Buffer
	require.NoError(c.t, dbengine.Dump(ctx, c.cli, c.db, &buf))
	return buf.Bytes()
}

func (c *dbContainer) restore(dump []byte) error {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	err := dbengine.Restore(ctx, c.cli, c.db, bytes.NewReader(dump))
	c.t.Logf("restore of %d bytes took %s (error: %v)", len(dump), time.Since(start).Round(time.Millisecond), err)
	return err
}

// The data set of the postgres tests: two databases besides postgres (one
// with a name that needs quoting), objects in postgres, two roles (one
// quoted) and a membership, a table without a primary key (a second copy of
// its rows would go unnoticed by constraints), and text that looks like the
// statements the restore rewrites, in a COPY block, a multi-line string
// literal and a dollar-quoted function body.
const pgSeedShop = `
CREATE TABLE items(id serial PRIMARY KEY, name text);
INSERT INTO items(name) SELECT 'item ' || g FROM generate_series(1, 2000) g;
CREATE TABLE lookalike(line text);
INSERT INTO lookalike VALUES ('CREATE ROLE mm;'), ('CREATE DATABASE shop WITH TEMPLATE = template0;'), (E'\\.'),
  ('COPY public.items (id, name) FROM stdin;'), ('-- PostgreSQL database cluster dump complete'), ('a	tab'), (E'two\nlines');
COMMENT ON TABLE lookalike IS 'first line
CREATE ROLE mm;
CREATE DATABASE shop WITH TEMPLATE = template0;
COPY public.items (id, name) FROM stdin;
last '' line';
CREATE FUNCTION body() RETURNS text LANGUAGE sql AS $f$ SELECT 'x
CREATE ROLE mm;
\.
COPY public.items (id, name) FROM stdin;
y'::text $f$;
CREATE VIEW item_count AS SELECT count(*) AS n FROM items;
`

const pgSeedCluster = `
CREATE ROLE reporter LOGIN PASSWORD 'reporter-pw';
CREATE ROLE "Mixed ""Role""" NOLOGIN;
GRANT "Mixed ""Role""" TO reporter;
CREATE DATABASE "Reports ""Q1""";
CREATE TABLE notes(n text);
INSERT INTO notes VALUES ('in the postgres database');
`

const pgSeedReports = `
CREATE TABLE r(x int);
INSERT INTO r VALUES (42), (43);
`

// pgState summarises what the postgres tests compare before and after.
func (c *dbContainer) pgState() string {
	c.t.Helper()
	return strings.Join([]string{
		c.psql("shop", `SELECT count(*), count(DISTINCT id), max(id) FROM items;
			SELECT string_agg(line, '|' ORDER BY line) FROM lookalike;
			SELECT obj_description('lookalike'::regclass);
			SELECT body(); SELECT n FROM item_count; SELECT last_value, is_called FROM items_id_seq;`),
		c.psql(`Reports "Q1"`, `SELECT string_agg(x::text, ',' ORDER BY x) FROM r;`),
		c.psql("postgres", `SELECT string_agg(n, ',') FROM notes;
			SELECT string_agg(rolname || ':' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles WHERE rolname !~ '^pg_';
			SELECT string_agg(r.rolname || '>' || m.rolname, ',') FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member;
			SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database;`),
	}, "\n")
}

func pgEnv(password string) []string {
	return []string{"POSTGRES_USER=mm", "POSTGRES_PASSWORD=" + password, "POSTGRES_DB=shop"}
}

func TestPostgresRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL containers")
	}
	cli := dockerbed.Client(t)
	imgs := dbimage.ForTest(t, cli)
	password := "pg-secret-" + dockerbed.UniqueName("")
	// The source cluster and three fresh ones, started together.
	src := beginDB(t, cli, imgs.Postgres, dbimage.Postgres, pgEnv(password))
	fresh := beginDB(t, cli, imgs.Postgres, dbimage.Postgres, pgEnv(password))
	mangled := beginDB(t, cli, imgs.Postgres, dbimage.Postgres, pgEnv(password))
	truncated := beginDB(t, cli, imgs.Postgres, dbimage.Postgres, pgEnv(password))
	for _, c := range []*dbContainer{src, fresh, mangled, truncated} {
		c.ready(dbimage.Postgres)
	}

	src.psql("shop", pgSeedShop)
	src.psql("postgres", pgSeedCluster)
	src.psql(`Reports "Q1"`, pgSeedReports)
	want := src.pgState()
	t.Logf("state of the source cluster:\n%s", want)
	dump := src.dump()
	t.Logf("pg_dumpall: %d bytes, %d lines", len(dump), bytes.Count(dump, []byte("\n")))
	require.NotContains(t, string(dump), password)

	t.Run("over the live cluster it is refused twice and nothing changes", func(t *testing.T) {
		for range 2 {
			err := src.restore(dump)
			require.ErrorIs(t, err, dbengine.ErrNotEmpty, "a pg_dumpall restored over the databases it came from duplicates the rows of tables without a key")
			require.Contains(t, err.Error(), `"shop"`)
			require.Contains(t, err.Error(), "public.items")
			require.Contains(t, err.Error(), `"Reports ""Q1"""`)
			require.Contains(t, err.Error(), "new, empty database volume")
			require.NotContains(t, err.Error(), password)
			require.Equal(t, want, src.pgState())
		}
	})

	t.Run("after dropping the databases and roles everything comes back", func(t *testing.T) {
		src.psql("postgres", `DROP DATABASE shop; DROP DATABASE "Reports ""Q1"""; DROP TABLE notes;
			DROP ROLE reporter; DROP ROLE "Mixed ""Role""";`)
		require.NoError(t, src.restore(dump))
		require.Equal(t, want, src.pgState())
	})

	t.Run("a fresh cluster with the entrypoint's empty database", func(t *testing.T) {
		require.Equal(t, "", fresh.psql("shop", `SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace`))
		roles := `SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname !~ '^pg_'`
		require.Equal(t, "mm", fresh.psql("postgres", roles))

		// The application is connected to its (empty) database: refused
		// before anything is changed.
		fresh.session("shop", "the-app")
		err := fresh.restore(dump)
		require.ErrorIs(t, err, dbengine.ErrInUse)
		require.ErrorContains(t, err, `database "shop" has 1 open session(s) (the-app@local socket)`)
		require.ErrorContains(t, err, "stop the services that use it")
		require.Equal(t, "mm", fresh.psql("postgres", roles))

		fresh.psql("postgres", `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'the-app'`)
		require.Eventually(t, func() bool {
			return fresh.psql("postgres", `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'the-app'`) == "0"
		}, 10*time.Second, 100*time.Millisecond)
		require.NoError(t, fresh.restore(dump))
		require.Equal(t, want, fresh.pgState())
	})

	t.Run("a statement mangled in the middle stops the restore with the server's error", func(t *testing.T) {
		// The table of "Reports "Q1"", restored before postgres and shop.
		bad := bytes.Replace(dump, []byte("CREATE TABLE public.r ("), []byte("CREATE TABLEX public.r ("), 1)
		require.NotEqual(t, dump, bad)
		err := mangled.restore(bad)
		require.Error(t, err, "a dump with a broken statement was reported as restored")
		require.Contains(t, err.Error(), `ERROR:  syntax error at or near "TABLEX"`)
		require.NotContains(t, err.Error(), password)
		// It stopped there: nothing after the broken statement ran.
		require.Equal(t, "", mangled.psql("shop", `SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace`))
		require.Equal(t, "", mangled.psql("postgres", `SELECT relname FROM pg_class WHERE relname = 'notes'`))
	})

	t.Run("an error at the top of a big dump stops it without streaming the rest", func(t *testing.T) {
		const size = 256 << 20
		src := &countingReader{r: io.MultiReader(
			strings.NewReader("CREATE TABLEX broken (a text);\nCOPY public.big (a) FROM stdin;\n"),
			io.LimitReader(repeatReader(strings.Repeat("x", 999)+"\n"), size),
			strings.NewReader("\\.\n--\n-- PostgreSQL database cluster dump complete\n--\n"))}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		err := dbengine.Restore(ctx, mangled.cli, mangled.db, src)
		took := time.Since(start)
		t.Logf("stopped after %s, %d of %d bytes read", took.Round(time.Millisecond), src.n, size)
		require.ErrorContains(t, err, `psql:<stdin>:1: ERROR:  syntax error at or near "TABLEX"`)
		require.Less(t, src.n, int64(size/4), "the dump kept streaming into an exited psql")
		require.Less(t, took, 10*time.Second, "a write to the exited psql was left waiting")
	})

	t.Run("a dump cut in the middle of a table's data fails and keeps none of its rows", func(t *testing.T) {
		i := bytes.Index(dump, []byte("\n1000\titem 1000\n"))
		require.Positive(t, i)
		cut := dump[:i+1] // complete lines: psql would take the end of input for the end of the data
		err := truncated.restore(cut)
		require.ErrorIs(t, err, dbengine.ErrIncompleteDump, "a truncated dump was reported as restored")
		require.Contains(t, err.Error(), "ERROR:")
		require.Contains(t, err.Error(), "incomplete")
		require.Equal(t, "0", truncated.psql("shop", `SELECT count(*) FROM items`))
	})
}

const mariadbSeed = `
CREATE TABLE shop.orders(id int PRIMARY KEY AUTO_INCREMENT, item text);
INSERT INTO shop.orders(item) VALUES ('apple'), ('pear');
CREATE TABLE shop.nokey(a int);
INSERT INTO shop.nokey VALUES (1), (1), (2);
CREATE VIEW shop.order_count AS SELECT count(*) AS n FROM shop.orders;
CREATE TRIGGER shop.nokey_double BEFORE INSERT ON shop.nokey FOR EACH ROW SET NEW.a = NEW.a * 2;
CREATE PROCEDURE shop.hello() SELECT 'hello';
CREATE FUNCTION shop.one() RETURNS int RETURN 1;
CREATE EVENT shop.nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM shop.nokey WHERE a < 0;
CREATE DATABASE other;
CREATE TABLE other.t(x int);
INSERT INTO other.t VALUES (7);
CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw';
GRANT SELECT ON shop.* TO 'app'@'%';
`

func (c *dbContainer) mariadbState() string {
	c.t.Helper()
	return c.mariadb(`SELECT count(*), max(id) FROM shop.orders;
		SELECT group_concat(a ORDER BY a) FROM shop.nokey;
		SELECT n FROM shop.order_count;
		SELECT group_concat(x) FROM other.t;
		SELECT group_concat(concat(routine_type, ' ', routine_name) ORDER BY routine_name) FROM information_schema.routines WHERE routine_schema = 'shop';
		SELECT group_concat(event_name) FROM information_schema.events WHERE event_schema = 'shop';
		SELECT group_concat(trigger_name) FROM information_schema.triggers WHERE trigger_schema = 'shop';
		SELECT group_concat(concat(user, '@', host) ORDER BY user, host) FROM mysql.user;
		SHOW GRANTS FOR 'app'@'%';`)
}

func TestMariaDBRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MariaDB container")
	}
	cli := dockerbed.Client(t)
	imgs := dbimage.ForTest(t, cli)
	password := "maria-secret-" + dockerbed.UniqueName("")
	c := startDB(t, cli, imgs.MariaDB, dbimage.MariaDB, []string{"MARIADB_ROOT_PASSWORD=" + password, "MARIADB_DATABASE=shop"})
	c.env = []string{"MYSQL_PWD=" + password}
	c.mariadb(mariadbSeed)
	want := c.mariadbState()
	t.Logf("state of the server:\n%s", want)
	dump := c.dump()
	t.Logf("mariadb-dump: %d bytes, %d lines", len(dump), bytes.Count(dump, []byte("\n")))

	t.Run("restoring twice over the live server duplicates nothing", func(t *testing.T) {
		for range 2 {
			require.NoError(t, c.restore(dump))
			require.Equal(t, want, c.mariadbState())
		}
	})

	t.Run("a mangled statement fails with the client's error", func(t *testing.T) {
		bad := bytes.Replace(dump, []byte("CREATE TABLE `orders`"), []byte("CREATE TABLEX `orders`"), 1)
		require.NotEqual(t, dump, bad)
		err := c.restore(bad)
		require.Error(t, err)
		require.Contains(t, err.Error(), "ERROR 1064 (42000) at line")
		require.Contains(t, err.Error(), "TABLEX")
		require.NotContains(t, err.Error(), password)
	})

	t.Run("a dump cut between two statements is not restored silently", func(t *testing.T) {
		i := bytes.Index(dump, []byte("\nINSERT INTO `orders` VALUES"))
		require.Positive(t, i)
		err := c.restore(dump[:i+1])
		require.ErrorIs(t, err, dbengine.ErrIncompleteDump, "a truncated dump was reported as restored")
		require.Contains(t, err.Error(), "ERROR 1064")
		require.NotContains(t, err.Error(), password)
	})

	t.Run("the whole dump repairs what the broken ones left", func(t *testing.T) {
		require.NoError(t, c.restore(dump))
		require.Equal(t, want, c.mariadbState())
	})
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// repeatReader repeats a line forever.
type repeatReader string

func (r repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], r)
	}
	return len(p), nil
}
