package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed/composebed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/worker"
)

// crashCompose is a stack whose app is stopped for its backup, with a
// local-path repository whose lock files the test can read.
const crashCompose = `
services:
  app:
    image: ${APP_IMAGE}
    entrypoint: ["sleep", "infinity"]
    labels:
      stack-back.volumes: "true"
      stack-back.volumes.stop-during-backup: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - data:/data
  backup:
    image: ${SIDECAR_IMAGE}
    environment:
      RESTIC_REPOSITORY: /restic_data
      RESTIC_PASSWORD: ${RESTIC_PASSWORD}
      RESTIC_KEEP_LAST: "3"
      CRON_SCHEDULE: "0 3 1 1 *"
      LOG_FORMAT: json
      STOP_TIMEOUT: 2s
    labels:
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - restic_data:/restic_data
      - cache:/cache
volumes:
  data: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  restic_data: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  cache: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
networks:
  default: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
`

// TestCrashRecovery kills the sidecar and its worker at the worst moments:
// each time the next run succeeds at once (no wait for a lock, no failed
// retention), no lock and no worker is left, the stopped app runs again,
// and at the end the repository checks clean and restores byte for byte.
func TestCrashRecovery(t *testing.T) {
	t.Parallel() // a stack of its own; the package runs two at a time
	if testing.Short() {
		t.Skip("runs a compose stack")
	}
	ctx := context.Background()
	cli := dockerbed.Client(t)
	dbs := dbimage.ForTest(t, cli)
	password := "crash-password-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	project := dockerbed.UniqueName("crash")
	st := composebed.Up(t, cli, project, crashCompose, map[string]string{
		"APP_IMAGE": dbs.Base, "SIDECAR_IMAGE": buildSidecarImage(t, cli), "RESTIC_PASSWORD": password})
	app, side := st.Container("app", 1), st.Container("backup", 1)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar log:\n%s", containerLogs(t, cli, side))
		}
	})
	identity := project + "/backup/1"

	// locks lists the repository's lock files, as restic does.
	locks := func(t *testing.T) []string {
		t.Helper()
		code, out, errOut := execSplit(t, cli, side, []string{"RESTIC_PASSWORD=" + password}, "restic", "-r", "/restic_data", "--no-cache", "list", "locks", "--no-lock")
		require.Equal(t, 0, code, out+errOut)
		return strings.Fields(out)
	}
	snapshots := func(t *testing.T) int {
		t.Helper()
		return len(stackSnapshots(t, cli, side)["/volumes/app/data"])
	}
	// newData replaces the big file: the next backup has 300 MB to read.
	newData := func(t *testing.T) {
		t.Helper()
		sh(t, cli, app, "rm -f /data/big-* && head -c 300000000 /dev/urandom > /data/big-"+strconv.FormatInt(time.Now().UnixNano(), 10)+" && echo small > /data/small.txt")
	}
	running := func(id string) bool {
		ins, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		return err == nil && ins.Container.State.Running
	}
	// inBackground starts a sidecar command and returns its exit code and
	// output when it ends (-1 when the sidecar died under it).
	inBackground := func(args ...string) <-chan string {
		done := make(chan string, 1)
		go func() {
			code, out, errOut := execSplitNoFail(cli, side, args...)
			done <- strconv.Itoa(code) + "\n" + out + errOut
		}()
		return done
	}
	// restartSidecar starts the killed sidecar and waits until the daemon
	// has cleaned up under the run lock and let it go ("sidecar started").
	restartSidecar := func(t *testing.T) {
		t.Helper()
		before := strings.Count(containerLogs(t, cli, side), `"msg":"sidecar started"`)
		_, err := cli.ContainerStart(ctx, side, client.ContainerStartOptions{})
		require.NoError(t, err)
		waitFor(t, time.Minute, "the restarted sidecar's daemon to start", func() bool {
			return strings.Count(containerLogs(t, cli, side), `"msg":"sidecar started"`) > before
		})
	}
	// nextRunSucceedsAtOnce: the run after a crash needs no wait for a lock.
	nextRunSucceedsAtOnce := func(t *testing.T) {
		t.Helper()
		start := time.Now()
		code, out, errOut := execSplit(t, cli, side, nil, "sidecar", "run-once")
		took := time.Since(start)
		require.Equal(t, 0, code, out+errOut)
		assert.Contains(t, out, "OK: 1 target(s)")
		assert.NotContains(t, out, "retention failed")
		assert.Less(t, took, 90*time.Second, "the run waited for a lock")
		assert.Empty(t, locks(t), "no lock left after the run")
		assert.True(t, running(app), "the app runs")
	}

	newData(t)
	code, out, errOut := execSplit(t, cli, side, nil, "sidecar", "run-once")
	require.Equal(t, 0, code, out+errOut)

	t.Run("sidecar killed mid-backup and restarted at once", func(t *testing.T) {
		newData(t)
		before := snapshots(t)
		done := inBackground("sidecar", "run-once")
		w := waitForWorker(t, cli, identity)
		_, err := cli.ContainerKill(ctx, side, client.ContainerKillOptions{Signal: "KILL"})
		require.NoError(t, err)
		<-done
		restartSidecar(t)
		waitFor(t, time.Minute, "the restarted sidecar to restart the app and remove the worker", func() bool {
			_, err := cli.ContainerInspect(ctx, w, client.ContainerInspectOptions{})
			return running(app) && err != nil
		})
		nextRunSucceedsAtOnce(t)
		assert.Equal(t, before+1, snapshots(t))
	})

	t.Run("sidecar killed mid-backup, restarted after its worker ended", func(t *testing.T) {
		newData(t)
		before := snapshots(t)
		done := inBackground("sidecar", "run-once")
		w := waitForWorker(t, cli, identity)
		_, err := cli.ContainerKill(ctx, side, client.ContainerKillOptions{Signal: "KILL"})
		require.NoError(t, err)
		<-done
		killed := time.Now()
		waitFor(t, time.Minute, "the worker to notice its sidecar is gone", func() bool { return !running(w) })
		t.Logf("the worker stopped %s after its sidecar was killed", time.Since(killed).Round(100*time.Millisecond))
		ins, err := cli.ContainerInspect(ctx, w, client.ContainerInspectOptions{})
		require.NoError(t, err)
		assert.Contains(t, containerLogs(t, cli, w), "the sidecar that started this worker is gone")
		assert.Equal(t, 0, ins.Container.State.ExitCode)
		assert.False(t, running(app), "the app stays stopped while its sidecar is down (hence the restart policy)")

		restartSidecar(t)
		waitFor(t, time.Minute, "the restarted sidecar to restart the app", func() bool { return running(app) })
		assert.Equal(t, before, snapshots(t), "the worker saved nothing after its sidecar died")
		assert.Empty(t, locks(t), "its restic removed its own lock")
		nextRunSucceedsAtOnce(t)
	})

	t.Run("worker killed mid-backup", func(t *testing.T) {
		newData(t)
		done := inBackground("sidecar", "run-once")
		w := waitForWorker(t, cli, identity)
		_, err := cli.ContainerKill(ctx, w, client.ContainerKillOptions{Signal: "KILL"})
		require.NoError(t, err)
		out := <-done
		assert.True(t, strings.HasPrefix(out, "1\n"), out)
		assert.Regexp(t, `/volumes/app/data .*killed with SIGKILL`, out)
		assert.Contains(t, out, "FAILED")
		assert.Empty(t, locks(t), "the sidecar removed the killed worker's lock")
		assert.True(t, running(app))
		nextRunSucceedsAtOnce(t)
	})

	t.Run("sidecar killed mid-restore", func(t *testing.T) {
		done := inBackground("sidecar", "restore", "--path", "/volumes/app/data", "--to-volume", "--mode", "mirror")
		w := waitForWorker(t, cli, identity)
		_, err := cli.ContainerKill(ctx, side, client.ContainerKillOptions{Signal: "KILL"})
		require.NoError(t, err)
		<-done
		restartSidecar(t)
		waitFor(t, time.Minute, "the restarted sidecar to restart the app and remove the worker", func() bool {
			_, err := cli.ContainerInspect(ctx, w, client.ContainerInspectOptions{})
			return running(app) && err != nil
		})
		code, out := execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--to-volume", "--mode", "mirror")
		require.Equal(t, 0, code, out)
		nextRunSucceedsAtOnce(t)
	})

	// Nothing lost: the repository is sound and restores byte for byte.
	code, out = execIn(t, cli, side, nil, "sidecar", "check", "--read-data-subset", "100%")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "no errors")
	const digestHere = `find . -type f -print0 | sort -z | xargs -0 sha256sum`
	want := sh(t, cli, app, "cd /data && "+digestHere)
	code, out = execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--into", "/restore")
	require.Equal(t, 0, code, out)
	host := t.TempDir()
	cp, err := exec.Command("docker", "cp", side+":/restore/volumes/app/data", filepath.Join(host, "data")).CombinedOutput()
	require.NoError(t, err, string(cp))
	sum := exec.Command("sh", "-c", digestHere)
	sum.Dir = filepath.Join(host, "data")
	got, err := sum.Output()
	require.NoError(t, err)
	assert.Equal(t, want, string(got))
	_ = os.RemoveAll(host)
}

// waitForWorker waits until a worker of the sidecar identity runs, and a
// moment more (its restic has started), and returns its id.
func waitForWorker(t *testing.T, cli *client.Client, identity string) string {
	t.Helper()
	var id string
	deadline := time.Now().Add(2 * time.Minute)
	for id == "" {
		list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{
			Filters: make(client.Filters).Add("label", worker.SidecarLabel+"="+identity).Add("status", "running")})
		require.NoError(t, err)
		if len(list.Items) > 0 {
			id = list.Items[0].ID
			break
		}
		require.True(t, time.Now().Before(deadline), "no worker of %s started", identity)
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	return id
}

// execSplitNoFail runs a command in a container and returns its exit code
// (-1 when it could not be followed to its end, e.g. the container was
// killed) and output.
func execSplitNoFail(cli *client.Client, id string, cmd ...string) (int, string, string) {
	r, err := dockerbed.TryExec(context.Background(), cli, id, dockerbed.ExecOptions{Timeout: 10 * time.Minute}, cmd...)
	if err != nil {
		return -1, r.Stdout, r.Stderr + err.Error()
	}
	return r.ExitCode, r.Stdout, r.Stderr
}
