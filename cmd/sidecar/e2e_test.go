package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/testbed/vaultbed"
	"github.com/platback/platback/internal/worker"
)

// stack is a compose-like project made of containers the test starts.
type stack struct {
	t       *testing.T
	cli     *client.Client
	project string
}

// start creates and starts a container of the project's service.
func (s stack) start(service, img string, entrypoint []string, env []string, labels map[string]string, mounts []mount.Mount, network string) string {
	s.t.Helper()
	l := map[string]string{
		discover.ComposeProjectLabel: s.project, discover.ComposeServiceLabel: service,
		discover.ComposeOneoffLabel: "False", discover.ComposeContainerNumberLabel: "1",
	}
	for k, v := range labels {
		l[k] = v
	}
	ctx := context.Background()
	created, err := s.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       s.project + "-" + service + "-1",
		Config:     &container.Config{Image: img, Entrypoint: entrypoint, Env: env, Labels: dockerbed.Labels(l)},
		HostConfig: &container.HostConfig{Mounts: mounts, NetworkMode: container.NetworkMode(network)},
	})
	require.NoError(s.t, err)
	s.t.Cleanup(func() { dockerbed.Remove(s.t, s.cli, created.ID) })
	_, err = s.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{})
	require.NoError(s.t, err)
	return created.ID
}

// sh runs a shell command in a container (Debian root filesystem) and
// fails the test when it exits non-zero.
func sh(t *testing.T, cli *client.Client, id, script string, env ...string) string {
	t.Helper()
	code, out := execIn(t, cli, id, env, "sh", "-c", script)
	require.Equal(t, 0, code, "%s:\n%s", script, out)
	return out
}

// execIn runs cmd in a container and returns its exit code and output
// (stdout, then stderr).
func execIn(t *testing.T, cli *client.Client, id string, env []string, cmd ...string) (int, string) {
	t.Helper()
	code, stdout, stderr := execSplit(t, cli, id, env, cmd...)
	return code, stdout + stderr
}

// execSplit runs cmd in a container and returns its exit code, stdout and stderr.
func execSplit(t *testing.T, cli *client.Client, id string, env []string, cmd ...string) (int, string, string) {
	t.Helper()
	r := dockerbed.ExecWith(t, cli, id, dockerbed.ExecOptions{Env: env, Timeout: 10 * time.Minute}, cmd...)
	return r.ExitCode, r.Stdout, r.Stderr
}

func containerLogs(t *testing.T, cli *client.Client, id string) string {
	rc, err := cli.ContainerLogs(context.Background(), id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	require.NoError(t, err)
	defer rc.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, rc)
	return out.String()
}

// workerWatch inspects every worker container the sidecar creates while it
// runs, to prove their configuration holds no secret.
type workerWatch struct {
	mu       sync.Mutex
	inspects map[string]string
	stop     chan struct{}
	done     chan struct{}
}

func watchWorkers(cli *client.Client) *workerWatch {
	w := &workerWatch{inspects: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true,
				Filters: make(client.Filters).Add("label", discover.WorkerLabel)})
			if err == nil {
				for _, c := range list.Items {
					w.mu.Lock()
					_, seen := w.inspects[c.ID]
					w.mu.Unlock()
					if seen {
						continue
					}
					if ins, err := cli.ContainerInspect(context.Background(), c.ID, client.ContainerInspectOptions{}); err == nil {
						raw, _ := json.Marshal(ins.Container)
						w.mu.Lock()
						w.inspects[c.ID] = string(raw)
						w.mu.Unlock()
					}
				}
			}
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *workerWatch) results() map[string]string {
	close(w.stop)
	<-w.done
	return w.inspects
}

func TestEndToEnd(t *testing.T) {
	t.Parallel() // a stack of its own; the package runs two at a time
	if testing.Short() {
		t.Skip("end-to-end test: builds images and runs a whole stack")
	}
	ctx := context.Background()
	cli := dockerbed.Client(t)
	dbs := dbimage.ForTest(t, cli)
	sidecarImage := buildSidecarImage(t, cli)
	s3 := testbed.StartMinIO(t)
	vault := vaultbed.Start(t)

	a := stack{t: t, cli: cli, project: dockerbed.UniqueName("e2ea")}
	b := stack{t: t, cli: cli, project: dockerbed.UniqueName("e2eb")}
	secrets := map[string]string{
		"restic": "restic-pass-" + vaultbed.Random(12), "s3": "s3-secret-" + vaultbed.Random(16),
		"pg": "pg-pass-" + vaultbed.Random(12), "maria": "maria-pass-" + vaultbed.Random(12),
	}

	t.Logf("demo: MinIO at %s, Vault at %s; stacks %s and %s", s3.Endpoint, vault.Addr, a.project, b.project)
	// Provisioning, as the user's Terraform and Ansible do: a bucket and a
	// least-privilege user per app, the secrets in Vault.
	bucket := "restic-stackback-" + a.project + "-bucket"
	s3.MakeBucket(t, bucket)
	s3.AddAppUser(t, "restic-"+a.project+"-user", secrets["s3"], bucket)
	vault.PutKV2(t, "ansible", "stackback_"+a.project, map[string]any{
		"password": secrets["restic"], "access_key": "restic-" + a.project + "-user", "secret_key": secrets["s3"]})
	secretDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(secretDir, "role_id"), []byte(vault.RoleID), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(secretDir, "secret_id"), []byte(vault.SecretID), 0o644))
	secrets["secret_id"] = vault.SecretID

	// Stack A: an app with a named volume and a bind mount, postgres, mariadb.
	appVol := dockerbed.Volume(t, cli, a.project+"_appdata", nil).Name
	pgVol := dockerbed.Volume(t, cli, a.project+"_pgdata", nil).Name
	mariaVol := dockerbed.Volume(t, cli, a.project+"_mariadata", nil).Name
	cacheVol := dockerbed.Volume(t, cli, a.project+"_backup-cache", nil).Name
	bindDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bindDir, "config.json"), []byte(`{"site":"platform-one"}`), 0o644))
	sleep := []string{"sleep", "infinity"}
	app := a.start("app", dbs.Postgres, sleep, nil,
		// include: substrings of the mounts' sources, as stack-back matches them (the image's
		// own anonymous volume is left out).
		map[string]string{"stack-back.volumes": "true", "stack-back.volumes.stop-during-backup": "true",
			"stack-back.volumes.include": appVol + "," + bindDir},
		[]mount.Mount{{Type: mount.TypeVolume, Source: appVol, Target: "/data"}, {Type: mount.TypeBind, Source: bindDir, Target: "/config"}}, "")
	pg := a.start("postgres", dbs.Postgres, nil,
		[]string{"POSTGRES_USER=mm", "POSTGRES_PASSWORD=" + secrets["pg"], "POSTGRES_DB=mattermost"},
		map[string]string{"stack-back.postgres": "true"},
		[]mount.Mount{{Type: mount.TypeVolume, Source: pgVol, Target: "/var/lib/postgresql/data"}}, "")
	maria := a.start("mariadb", dbs.MariaDB, nil,
		[]string{"MARIADB_ROOT_PASSWORD=" + secrets["maria"], "MARIADB_DATABASE=shop"},
		map[string]string{"stack-back.mariadb": "true"},
		[]mount.Mount{{Type: mount.TypeVolume, Source: mariaVol, Target: "/var/lib/mysql"}}, "")

	// Stack B, side by side: its data must never reach A's repository.
	bVol := dockerbed.Volume(t, cli, b.project+"_appdata", nil).Name
	bApp := b.start("app", dbs.Postgres, sleep, nil, map[string]string{"stack-back.volumes": "true"},
		[]mount.Mount{{Type: mount.TypeVolume, Source: bVol, Target: "/data"}}, "")
	sh(t, cli, bApp, "echo B-ONLY-MARKER > /data/b.txt")

	require.NoError(t, dbimage.WaitReady(ctx, cli, pg, dbimage.Postgres))
	require.NoError(t, dbimage.WaitReady(ctx, cli, maria, dbimage.MariaDB))
	sh(t, cli, app, `head -c 3000000 /dev/urandom > /data/big.bin && mkdir -p "/data/sub dir" && echo hello > "/data/sub dir/ünïcode.txt" && : > /data/empty && ln -s "sub dir/ünïcode.txt" /data/link`)
	sh(t, cli, pg, `psql -v ON_ERROR_STOP=1 -U mm -d mattermost -c "CREATE TABLE posts(id int, body text); INSERT INTO posts SELECT g, 'post ' || g FROM generate_series(1,500) g;" \
		-c "CREATE DATABASE reports" -c "CREATE ROLE reporter LOGIN PASSWORD 'r'" && \
		psql -v ON_ERROR_STOP=1 -U mm -d reports -c "CREATE TABLE r(x int); INSERT INTO r VALUES (42);"`)
	sh(t, cli, maria, `mariadb -uroot -e "CREATE TABLE shop.orders(id int primary key, item text); INSERT INTO shop.orders VALUES (1,'apple'),(2,'pear');"`,
		"MYSQL_PWD="+secrets["maria"])
	digest := `cd /data && find . -type f -print0 | sort -z | xargs -0 sha256sum; find . -type l -printf '%p -> %l\n' | sort`
	dataBefore := sh(t, cli, app, digest)

	t.Log("demo: stack A has an app (named volume + bind mount), postgres (2 databases, a role) and mariadb; stack B has its own volume")
	// The sidecar, as in the README: secrets from Vault, host network (MinIO
	// and Vault listen on 127.0.0.1 here), one scheduled run two minutes out.
	metricsPort := testbed.FreePort(t)
	due := time.Now().UTC().Truncate(time.Minute).Add(2 * time.Minute)
	sidecarEnv := []string{
		"RESTIC_REPOSITORY=" + s3.RepoURL(bucket, ""),
		"BACKUP_CRON=" + fmt.Sprintf("%d %d * * *", due.Minute(), due.Hour()),
		"VAULT_ADDR=" + vault.Addr,
		"VAULT_ROLE_ID_FILE=/run/secrets/role_id",
		"VAULT_SECRET_ID_FILE=/run/secrets/secret_id",
		"VAULT_SECRET_PATH=ansible/data/stackback_" + a.project,
		"METRICS_LISTEN=127.0.0.1:" + strconv.Itoa(metricsPort),
		"LOG_FORMAT=json", "LOG_LEVEL=debug", "STOP_TIMEOUT=2s",
	}
	side := a.start("backup", sidecarImage, nil, sidecarEnv, nil, []mount.Mount{
		{Type: mount.TypeBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"},
		{Type: mount.TypeVolume, Source: cacheVol, Target: "/cache"},
		{Type: mount.TypeBind, Source: secretDir, Target: "/run/secrets", ReadOnly: true},
	}, "host")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar log:\n%s", containerLogs(t, cli, side))
		}
	})

	t.Logf("demo: sidecar started in stack A, secrets from Vault, one scheduled run at %s UTC", due.Format("15:04"))
	// plan: exactly A's targets.
	code, planOut, planLog := execSplit(t, cli, side, nil, "sidecar", "plan", "--json")
	require.Equal(t, 0, code, planOut+planLog)
	var plan discover.Plan
	require.NoError(t, json.Unmarshal([]byte(planOut), &plan))
	var paths []string
	for _, tg := range plan.Targets {
		paths = append(paths, tg.Path)
		assert.Equal(t, a.project, tg.Project)
	}
	assert.ElementsMatch(t, []string{"/volumes/app/data", "/volumes/app/config", "/databases/postgres/all_databases.sql", "/databases/mariadb/all_databases.sql"}, paths)

	t.Logf("demo: sidecar plan:\n%s", planTable(t, cli, side))
	// The scheduled path.
	workers := watchWorkers(cli)
	metricsURL := "http://127.0.0.1:" + strconv.Itoa(metricsPort) + "/metrics"
	waitFor(t, 4*time.Minute, "the scheduled run to succeed", func() bool {
		return strings.Contains(get(metricsURL), `platback_run_last_ok{project="`+a.project+`"} 1`)
	})
	m := get(metricsURL)
	for _, want := range []string{"platback_build_info", "platback_next_run_timestamp_seconds", `platback_last_success_timestamp_seconds{kind="postgres"`,
		`platback_snapshots{kind="volume",phase="backup",project="` + a.project + `",target="/volumes/app/data"} 1`} {
		assert.Contains(t, m, want)
	}
	code, health := execIn(t, cli, side, nil, "sidecar", "health")
	assert.Equal(t, 0, code, health)
	running, err := cli.ContainerInspect(ctx, app, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.True(t, running.Container.State.Running, "the stop-during-backup container runs again")

	t.Log("demo: the scheduled run succeeded (metrics and health say so)")
	// run-once: the same code path, now.
	code, out, logs := execSplit(t, cli, side, nil, "sidecar", "run-once")
	require.Equal(t, 0, code, out+logs)
	assert.Contains(t, out, "OK: 4 target(s)")
	t.Logf("demo: sidecar run-once:\n%s", out)
	inspects := workers.results()
	assert.NotEmpty(t, inspects, "volume targets ran in worker containers")
	for id, raw := range inspects {
		assertNoSecret(t, "worker "+id[:12]+" config", raw, secrets)
	}

	code, out = execIn(t, cli, side, nil, "sidecar", "snapshots", "--path", "/volumes/app/data")
	require.Equal(t, 0, code, out)
	assert.Equal(t, 2, strings.Count(out, "/volumes/app/data"), out)
	code, out = execIn(t, cli, side, nil, "sidecar", "check", "--read-data-subset", "20%")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "no errors")

	// A's repository holds A's targets only.
	repo, err := backup.Open(ctx, s3.RepoURL(bucket, ""), backup.Options{Restic: testbed.Tool(t, "restic"), Host: a.project,
		Env: map[string]string{"RESTIC_PASSWORD": secrets["restic"], "AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey}})
	require.NoError(t, err)
	snaps, err := repo.Snapshots(ctx, backup.Filter{})
	require.NoError(t, err)
	require.Len(t, snaps, 8, "4 targets, 2 runs")
	for _, sn := range snaps {
		assert.Contains(t, sn.Tags, "project="+a.project)
		assert.Equal(t, a.project, sn.Hostname)
		assert.True(t, slices.Contains(paths, sn.Paths[0]), sn.Paths)
	}
	var bOut bytes.Buffer
	require.NoError(t, repo.Dump(ctx, "latest", "/databases/postgres/all_databases.sql", backup.Filter{Paths: []string{"/databases/postgres/all_databases.sql"}}, &bOut))
	assert.Contains(t, bOut.String(), "post 500")
	assert.NotContains(t, bOut.String(), "B-ONLY-MARKER")

	t.Logf("demo: %d snapshots in A's repository, none of stack B; no secret in %d worker configs", len(snaps), len(inspects))
	// Disaster: wipe the volume and the bind mount, drop the databases and the role.
	sh(t, cli, app, "rm -rf /data/* /config/*")
	sh(t, cli, pg, `psql -v ON_ERROR_STOP=1 -U mm -d postgres -c "DROP DATABASE mattermost" -c "DROP DATABASE reports" -c "DROP ROLE reporter"`)
	sh(t, cli, maria, `mariadb -uroot -e "DROP DATABASE shop"`, "MYSQL_PWD="+secrets["maria"])

	for _, args := range [][]string{
		{"--path", "/volumes/app/data", "--to-volume", "--mode", "mirror"},
		{"--path", "/volumes/app/config", "--to-volume", "--mode", "mirror"},
		{"--path", "/databases/postgres/all_databases.sql", "--to-database"},
		{"--path", "/databases/mariadb/all_databases.sql", "--to-database"},
	} {
		code, out := execIn(t, cli, side, nil, append([]string{"sidecar", "restore"}, args...)...)
		require.Equal(t, 0, code, "restore %v:\n%s", args, out)
	}
	assert.Equal(t, dataBefore, sh(t, cli, app, digest), "volume restored byte for byte")
	t.Log("demo: after wiping the volume and dropping the databases, restore brought back:")
	cfg, err := os.ReadFile(filepath.Join(bindDir, "config.json"))
	require.NoError(t, err)
	assert.Equal(t, `{"site":"platform-one"}`, string(cfg), "bind mount restored")
	assert.Equal(t, "500", strings.TrimSpace(sh(t, cli, pg, `psql -tA -U mm -d mattermost -c "SELECT count(*) FROM posts"`)))
	assert.Equal(t, "42", strings.TrimSpace(sh(t, cli, pg, `psql -tA -U mm -d reports -c "SELECT x FROM r"`)))
	assert.Equal(t, "1", strings.TrimSpace(sh(t, cli, pg, `psql -tA -U mm -d postgres -c "SELECT count(*) FROM pg_roles WHERE rolname='reporter'"`)))
	assert.Equal(t, "apple,pear", strings.TrimSpace(sh(t, cli, maria, `mariadb -uroot -N -e "SELECT group_concat(item ORDER BY id) FROM shop.orders"`, "MYSQL_PWD="+secrets["maria"])))

	t.Log("demo: the files byte for byte, the bind mount, 500 posts, the reports database, the reporter role and the orders")
	// Restoring the databases again over their data: postgres refuses (a
	// pg_dumpall restores a whole cluster), mariadb replaces its tables; no
	// row is doubled either way.
	code, out = execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/databases/postgres/all_databases.sql", "--to-database")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "mattermost", "the refusal names the database that holds data")
	code, out = execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/databases/mariadb/all_databases.sql", "--to-database")
	assert.Equal(t, 0, code, out)
	assert.Equal(t, "500", strings.TrimSpace(sh(t, cli, pg, `psql -tA -U mm -d mattermost -c "SELECT count(*) FROM posts"`)))
	assert.Equal(t, "apple,pear", strings.TrimSpace(sh(t, cli, maria, `mariadb -uroot -N -e "SELECT group_concat(item ORDER BY id) FROM shop.orders"`, "MYSQL_PWD="+secrets["maria"])))
	// SIGTERM in the middle of a backup: the run stops, the container it
	// stopped runs again, and no worker is left behind.
	interruptRunOnce(t, cli, a.project, side, app, repo)

	// A sidecar killed while it had a container stopped: the next start
	// restarts it from the state file. And a database whose dump fails fails
	// that target only, keeping no snapshot of it.
	leftoverAndFailingDump(t, cli, a, side, app, repo, dbs.Postgres)

	// Nothing secret in the sidecar's logs or its own configuration.
	assertNoSecret(t, "sidecar log", containerLogs(t, cli, side), secrets)
	ins, err := cli.ContainerInspect(ctx, side, client.ContainerInspectOptions{})
	require.NoError(t, err)
	raw, _ := json.Marshal(ins.Container)
	assertNoSecret(t, "sidecar config", string(raw), secrets)
}

// interruptRunOnce starts `sidecar run-once`, waits until it has stopped the
// app container for its backup, then sends SIGTERM to it.
func interruptRunOnce(t *testing.T, cli *client.Client, project, side, app string, repo *backup.Repo) {
	ctx := context.Background()
	ex, err := cli.ExecCreate(ctx, side, client.ExecCreateOptions{Cmd: []string{"sidecar", "run-once"}, AttachStdout: true, AttachStderr: true})
	require.NoError(t, err)
	att, err := cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	require.NoError(t, err)
	defer att.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = stdcopy.StdCopy(&out, &out, att.Reader); close(done) }()
	waitFor(t, 2*time.Minute, "run-once to stop the app container", func() bool {
		ins, err := cli.ContainerInspect(ctx, app, client.ContainerInspectOptions{})
		return err == nil && !ins.Container.State.Running
	})
	// A second run-once meanwhile is refused, and does not restart the
	// container the first one stopped.
	code, busy := execIn(t, cli, side, nil, "sidecar", "run-once")
	assert.Equal(t, 1, code, busy)
	assert.Contains(t, busy, "another backup run of this sidecar is in progress")
	stopped, err := cli.ContainerInspect(ctx, app, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.False(t, stopped.Container.State.Running, "the refused run-once left the first run's stopped container alone")

	ins, err := cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	require.NoError(t, err)
	require.NotZero(t, ins.PID)
	require.NoError(t, syscall.Kill(ins.PID, syscall.SIGTERM)) // the exec's host pid
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("run-once did not stop after SIGTERM")
	}
	ins, err = cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	require.NoError(t, err)
	assert.NotEqual(t, 0, ins.ExitCode, "an interrupted run is not a success:\n%s", out.String())
	assert.Contains(t, out.String(), "interrupted")
	running, err := cli.ContainerInspect(ctx, app, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.True(t, running.Container.State.Running, "the stopped container was restarted after SIGTERM")
	workers, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", worker.SidecarLabel+"="+project+"/backup/1")})
	require.NoError(t, err)
	assert.Empty(t, workers.Items, "no worker container left behind")
	locks, err := repo.Locks(ctx)
	require.NoError(t, err)
	assert.Empty(t, locks, "restic released its lock")
}

func leftoverAndFailingDump(t *testing.T, cli *client.Client, a stack, side, app string, repo *backup.Repo, pgImage string) {
	ctx := context.Background()
	ins, err := cli.ContainerInspect(ctx, app, client.ContainerInspectOptions{})
	require.NoError(t, err)
	_, err = cli.ContainerStop(ctx, app, client.ContainerStopOptions{})
	require.NoError(t, err)
	state, _ := json.Marshal([]map[string]any{{"id": app, "name": strings.TrimPrefix(ins.Container.Name, "/"), "stopped_at": time.Now()}})
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "platback-stopped.json", Mode: 0o600, Size: int64(len(state))}))
	_, _ = tw.Write(state)
	require.NoError(t, tw.Close())
	_, err = cli.CopyToContainer(ctx, side, client.CopyToContainerOptions{DestinationPath: "/cache", Content: &tarball})
	require.NoError(t, err)

	// A worker container a killed run of this sidecar left behind.
	leftover, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: pgImage, Entrypoint: []string{"true"}, Labels: dockerbed.Labels(map[string]string{
			discover.WorkerLabel: a.project, worker.SidecarLabel: a.project + "/backup/1"})}})
	require.NoError(t, err)
	t.Cleanup(func() { dockerbed.Remove(t, cli, leftover.ID) })

	// A "database" whose server is not running: pg_dumpall fails.
	a.start("broken", pgImage, []string{"sleep", "infinity"}, []string{"POSTGRES_PASSWORD=x"},
		map[string]string{"stack-back.postgres": "true"}, nil, "")
	before, err := repo.Snapshots(ctx, backup.Filter{})
	require.NoError(t, err)

	code, out, logs := execSplit(t, cli, side, nil, "sidecar", "run-once")
	t.Logf("demo: run-once with a broken database:\n%s", out)
	assert.Contains(t, logs, `"level":"ERROR","msg":"target failed","target":"/databases/broken/all_databases.sql"`)
	assert.Equal(t, 1, code, "one failed target fails the run")
	assert.Contains(t, out, "FAILED: 5 target(s)")
	assert.Regexp(t, `/databases/broken/all_databases.sql +postgres +.*pg_dumpall`, out)
	assert.NotContains(t, out, "restic was interrupted", "a failed dump is not an interruption")
	running, err := cli.ContainerInspect(ctx, app, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.True(t, running.Container.State.Running, "the container left stopped by a killed sidecar runs again")
	_, err = cli.ContainerInspect(ctx, leftover.ID, client.ContainerInspectOptions{})
	assert.Error(t, err, "the leftover worker container was removed")

	after, err := repo.Snapshots(ctx, backup.Filter{})
	require.NoError(t, err)
	assert.Len(t, after, len(before)+4, "the four good targets got snapshots")
	for _, sn := range after {
		assert.NotEqual(t, "/databases/broken/all_databases.sql", sn.Paths[0], "no snapshot of a failed dump")
	}
}

// planTable is `sidecar plan` as people see it.
func planTable(t *testing.T, cli *client.Client, side string) string {
	code, out, logs := execSplit(t, cli, side, nil, "sidecar", "plan")
	require.Equal(t, 0, code, out+logs)
	return out
}

func assertNoSecret(t *testing.T, where, text string, secrets map[string]string) {
	t.Helper()
	testbed.AssertNoSecret(t, where, text, secrets)
}

func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(time.Second)
	}
}
