package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed/composebed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/worker"
)

// stackBackCompose is stack-back's own compose shape — a local-path
// repository on a volume, the plain variables — with only the image line
// changed, plus what testing as a user found: a service with several
// volumes, a volume shared by two stopped services that depend on each
// other, replicas with anonymous volumes matched by an include label, and a
// database whose dump can be made slow.
const stackBackCompose = `
services:
  app:
    image: ${APP_IMAGE}
    entrypoint: ["sleep", "infinity"]
    depends_on: [db]
    labels:
      stack-back.volumes: "true"
      stack-back.volumes.stop-during-backup: "true"
      # Compose v2 sets this label from depends_on; v1 (1.29) does not.
      com.docker.compose.depends_on: "db:service_started:false"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - data:/data
      - config:/config
      - shared:/shared
  db:
    image: ${APP_IMAGE}
    entrypoint: ["sleep", "infinity"]
    labels:
      stack-back.volumes: "true"
      stack-back.volumes.stop-during-backup: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - shared:/shared
      - dbfiles:/var/lib/app
  web:
    image: ${APP_IMAGE}
    entrypoint: ["sleep", "infinity"]
    labels:
      stack-back.volumes: "true"
      stack-back.volumes.include: "/_data"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - /srv/web
  slowdb:
    image: ${APP_IMAGE}
    # A stand-in pg_dumpall, slow while /tmp/slow exists.
    entrypoint: ["sh", "-c", "printf '#!/bin/sh\\nif [ -f /tmp/slow ]; then sleep 8; fi\\necho \"-- dump of slowdb\"\\n' > /usr/local/sbin/pg_dumpall && chmod +x /usr/local/sbin/pg_dumpall && exec sleep infinity"]
    environment:
      POSTGRES_PASSWORD: not-used
    labels:
      stack-back.postgres: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
  backup:
    image: ${SIDECAR_IMAGE}
    environment:
      RESTIC_REPOSITORY: /restic_data
      RESTIC_PASSWORD: ${RESTIC_PASSWORD}
      RESTIC_KEEP_LAST: "1"
      CRON_SCHEDULE: "0 3 1 1 *"
      LOG_FORMAT: json
      STOP_TIMEOUT: 2s
    labels:
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - /var/run/docker.sock:/tmp/docker.sock:ro   # stack-back's place, and no DOCKER_HOST
      - restic_data:/restic_data
      - cache:/cache
volumes:
  data: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  config: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  shared: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  dbfiles: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  restic_data: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  cache: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
networks:
  default: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
`

// TestStackBackCompose runs a stack-back compose file with the platback
// image: retention keeps every target, the local-path repository works,
// stop windows stop each service once in dependency order, and restore
// works as the README says.
func TestStackBackCompose(t *testing.T) {
	t.Parallel() // a stack of its own; the package runs two at a time
	if testing.Short() {
		t.Skip("runs a compose stack")
	}
	ctx := context.Background()
	cli := dockerbed.Client(t)
	dbs := dbimage.ForTest(t, cli)
	sidecarImage := buildSidecarImage(t, cli)
	password := "stack-back-password-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	project := dockerbed.UniqueName("sbc")
	env := map[string]string{"APP_IMAGE": dbs.Base, "SIDECAR_IMAGE": sidecarImage, "RESTIC_PASSWORD": password}
	st := composebed.Up(t, cli, project, stackBackCompose, env, "--scale", "web=2")
	app, db, side := st.Container("app", 1), st.Container("db", 1), st.Container("backup", 1)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar log:\n%s", containerLogs(t, cli, st.Container("backup", 1)))
		}
	})

	sh(t, cli, app, `head -c 1000000 /dev/urandom > /data/big.bin && echo one > /data/a.txt && mkdir -p /data/sub && echo deep > /data/sub/b.txt && echo cfg > /config/app.conf && echo shared > /shared/s.txt`)
	sh(t, cli, db, `echo rows > /var/lib/app/table`)
	for n := 1; n <= 2; n++ {
		sh(t, cli, st.Container("web", n), "echo replica-"+strconv.Itoa(n)+" > /srv/web/index.html")
	}
	const digestHere = `find . -type f -print0 | sort -z | xargs -0 sha256sum`
	digest := "cd /data && " + digestHere
	dataBefore := sh(t, cli, app, digest)

	// The plan: every volume, the replicas' anonymous volumes through the
	// include label (their source comes from inspect), the dump as what it is.
	code, out, planLog := execSplit(t, cli, side, nil, "sidecar", "plan", "--json")
	require.Equal(t, 0, code, out+planLog)
	var plan discover.Plan
	require.NoError(t, json.Unmarshal([]byte(out), &plan))
	var paths []string
	for _, tg := range plan.Targets {
		paths = append(paths, tg.Path)
	}
	volumeTargets := []string{"/volumes/app/config", "/volumes/app/data", "/volumes/app/shared", "/volumes/db/var/lib/app",
		"/volumes/web-1/srv/web", "/volumes/web-2/srv/web"}
	assert.ElementsMatch(t, append(slices.Clone(volumeTargets), "/databases/slowdb/all_databases.sql"), paths)

	// Two runs with RESTIC_KEEP_LAST=1: every target keeps its snapshot.
	checkStops := watchStops(t, cli, db, app)
	code, out, logs := execSplit(t, cli, side, nil, "sidecar", "run-once")
	require.Equal(t, 0, code, out+logs)
	assert.Contains(t, out, "OK: 7 target(s)")
	checkStops()
	sh(t, cli, app, "echo two >> /data/a.txt")
	dataBefore = sh(t, cli, app, digest)
	code, out, logs = execSplit(t, cli, side, nil, "sidecar", "run-once")
	require.Equal(t, 0, code, out+logs)
	snaps := stackSnapshots(t, cli, side)
	for _, p := range paths {
		assert.Len(t, snaps[p], 1, "keep-last 1 keeps exactly one snapshot of %s", p)
	}

	t.Run("restore finds its target while the app is stopped", func(t *testing.T) {
		st.Must("stop", "app")
		code, out := execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--to-volume", "--mode", "mirror")
		require.Equal(t, 0, code, out)
		st.Must("start", "app")
		assert.Equal(t, dataBefore, sh(t, cli, app, digest))
	})

	t.Run("dry run, merge and mirror", func(t *testing.T) {
		sh(t, cli, app, "echo damaged > /data/a.txt && echo new > /data/extra.txt")
		damaged := sh(t, cli, app, digest)
		code, out := execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--to-volume", "--mode", "mirror", "--dry-run")
		require.Equal(t, 0, code, out)
		assert.Regexp(t, `updated +/volumes/app/data/a.txt`, out)
		assert.Regexp(t, `deleted +/volumes/app/data/extra.txt`, out)
		assert.NotContains(t, out, "big.bin", "unchanged files are not listed")
		assert.Equal(t, damaged, sh(t, cli, app, digest), "a dry run writes nothing")

		code, out = execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--to-volume")
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "--mode mirror", "the choice is explicit")

		checkStops := watchStops(t, cli, app)
		code, out = execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--to-volume", "--mode", "merge")
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "stopped "+containerName(t, cli, app)+" for the restore")
		checkStops()
		assert.Equal(t, "one\ntwo", strings.TrimSpace(sh(t, cli, app, "cat /data/a.txt")))
		assert.Equal(t, "new", strings.TrimSpace(sh(t, cli, app, "cat /data/extra.txt")), "merge keeps files the snapshot does not hold")

		code, out = execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--to-volume", "--mode", "mirror")
		require.Equal(t, 0, code, out)
		assert.Equal(t, dataBefore, sh(t, cli, app, digest), "mirror makes the volume the snapshot, byte for byte")
	})

	t.Run("a snapshot of another target is refused", func(t *testing.T) {
		cfg := snaps["/volumes/app/config"][0]
		code, out := execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--to-volume", "--mode", "merge", "--snapshot", cfg)
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "holds /volumes/app/config")
		assert.Equal(t, dataBefore, sh(t, cli, app, digest))
	})

	t.Run("--into, then docker cp to the host", func(t *testing.T) {
		code, out := execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--into", "/restore")
		require.Equal(t, 0, code, out)
		host := t.TempDir()
		cp := exec.Command("docker", "cp", side+":/restore/volumes/app/data", filepath.Join(host, "data"))
		cpOut, err := cp.CombinedOutput()
		require.NoError(t, err, string(cpOut))
		got, err := os.ReadFile(filepath.Join(host, "data", "a.txt"))
		require.NoError(t, err)
		assert.Equal(t, "one\ntwo\n", string(got))
		sum := exec.Command("sh", "-c", digestHere)
		sum.Dir = filepath.Join(host, "data")
		hostDigest, err := sum.Output()
		require.NoError(t, err)
		assert.Equal(t, dataBefore, string(hostDigest))
	})

	t.Run("during a run: restores refused, no credential in the dump producer; after: only own leftovers removed", func(t *testing.T) {
		mine := leftoverWorker(t, cli, dbs.Base, project, project+"/backup/1")
		other := leftoverWorker(t, cli, dbs.Base, project, project+"/backup2/1")
		slowdb := st.Container("slowdb", 1)
		sh(t, cli, slowdb, "touch /tmp/slow")
		defer sh(t, cli, slowdb, "rm -f /tmp/slow")
		done := make(chan string, 1)
		go func() {
			_, out, logs := execSplit(t, cli, side, nil, "sidecar", "run-once")
			done <- out + logs
		}()
		var environ string
		waitFor(t, 2*time.Minute, "the dump producer of "+project, func() bool {
			pid := findProcess(project)
			if pid == 0 {
				return false
			}
			time.Sleep(time.Second) // past its start-up
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			environ = string(b)
			return err == nil
		})
		assert.NotContains(t, environ, password)
		assert.NotContains(t, environ, "RESTIC_PASSWORD")
		assert.Contains(t, environ, "PATH=")

		code, busy := execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--into", "/restore2")
		assert.Equal(t, 1, code, busy)
		assert.Contains(t, busy, "another backup run of this sidecar is in progress")

		out := <-done
		assert.Contains(t, out, "OK: 7 target(s)")
		_, err := cli.ContainerInspect(ctx, mine, client.ContainerInspectOptions{})
		assert.Error(t, err, "this sidecar's leftover worker was removed")
		ins, err := cli.ContainerInspect(ctx, other, client.ContainerInspectOptions{})
		require.NoError(t, err, "another sidecar's worker stays")
		assert.True(t, ins.Container.State.Running)
	})

	t.Run("a dump killed half-way fails its target only and keeps no snapshot", func(t *testing.T) {
		slowdb := st.Container("slowdb", 1)
		sh(t, cli, slowdb, "touch /tmp/slow")
		before := stackSnapshots(t, cli, side)
		done := make(chan string, 1)
		go func() {
			code, out, logs := execSplit(t, cli, side, nil, "sidecar", "run-once")
			done <- strconv.Itoa(code) + "\n" + out + logs
		}()
		waitFor(t, 2*time.Minute, "the dump of "+project, func() bool { return findProcess(project) != 0 })
		_, err := cli.ContainerKill(ctx, slowdb, client.ContainerKillOptions{Signal: "KILL"})
		require.NoError(t, err)
		out := <-done
		assert.True(t, strings.HasPrefix(out, "1\n"), "the run is reported failed:\n%s", out)
		assert.Contains(t, out, "FAILED: 7 target(s)")
		assert.Contains(t, out, `"level":"ERROR","msg":"target failed","target":"/databases/slowdb/all_databases.sql"`)
		after := stackSnapshots(t, cli, side)
		assert.Equal(t, before["/databases/slowdb/all_databases.sql"], after["/databases/slowdb/all_databases.sql"], "no snapshot of the killed dump")
		for _, p := range volumeTargets {
			assert.Len(t, after[p], 1, "the other targets were backed up (%s)", p)
		}
		_, err = cli.ContainerStart(ctx, slowdb, client.ContainerStartOptions{})
		require.NoError(t, err)
	})

	t.Run("a dump the sidecar gave up on does not run on in the database container", func(t *testing.T) {
		slowdb := st.Container("slowdb", 1)
		sh(t, cli, slowdb, "touch /tmp/slow")
		defer sh(t, cli, slowdb, "rm -f /tmp/slow")
		ex, err := cli.ExecCreate(ctx, side, client.ExecCreateOptions{Cmd: []string{"sidecar", "run-once"}, AttachStdout: true, AttachStderr: true})
		require.NoError(t, err)
		att, err := cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
		require.NoError(t, err)
		defer att.Close()
		ended := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, att.Reader); close(ended) }()
		sleeps := func() string {
			return strings.TrimSpace(sh(t, cli, slowdb, `n=0; for f in /proc/[0-9]*/cmdline; do case "$(tr '\0' ' ' < "$f" 2>/dev/null)" in "sleep 8 ") n=$((n+1));; esac; done; echo $n`))
		}
		waitFor(t, 2*time.Minute, "the slow dump to run", func() bool { return sleeps() == "1" })
		ins, err := cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		require.NoError(t, err)
		require.NoError(t, syscall.Kill(ins.PID, syscall.SIGTERM))
		<-ended
		assert.Eventually(t, func() bool { return sleeps() == "0" }, 15*time.Second, 200*time.Millisecond,
			"the dump was stopped in the database container")
	})

	assertNoSecret(t, "sidecar log", containerLogs(t, cli, st.Container("backup", 1)), map[string]string{"restic": password})
}

// watchStops records the engine's stop and start events of containers
// from now on (the engine keeps only its last 256 events, so a run's would
// be gone by the time they were asked for). The returned function ends the
// watch and checks that each container, given dependencies first, was
// stopped once and started once, dependents stopped first and dependencies
// started first.
func watchStops(t *testing.T, cli *client.Client, startOrder ...string) (check func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := make(client.Filters).Add("type", "container").Add("event", "stop").Add("event", "start")
	for _, id := range startOrder {
		f = f.Add("container", id)
	}
	res := cli.Events(ctx, client.EventsListOptions{Filters: f})
	var seq []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-res.Messages:
				seq = append(seq, string(m.Action)+" "+m.Actor.ID)
			case <-res.Err: // the client closes Err, not Messages, when the watch ends
				return
			}
		}
	}()
	return func() {
		t.Helper()
		time.Sleep(500 * time.Millisecond) // the last events on their way
		cancel()
		<-done
		var want []string
		for i := len(startOrder) - 1; i >= 0; i-- {
			want = append(want, "stop "+startOrder[i])
		}
		for _, id := range startOrder {
			want = append(want, "start "+id)
		}
		assert.Equal(t, want, seq, "stopped once (dependents first) and started once (dependencies first)")
	}
}

// stackSnapshots returns the snapshot ids of each path, as `sidecar
// snapshots --json` lists them.
func stackSnapshots(t *testing.T, cli *client.Client, side string) map[string][]string {
	t.Helper()
	code, out, errOut := execSplit(t, cli, side, nil, "sidecar", "snapshots", "--json")
	require.Equal(t, 0, code, out+errOut)
	var snaps []backup.Snapshot
	require.NoError(t, json.Unmarshal([]byte(out), &snaps))
	byPath := map[string][]string{}
	for _, sn := range snaps {
		byPath[sn.Paths[0]] = append(byPath[sn.Paths[0]], sn.ID)
	}
	return byPath
}

// leftoverWorker starts a running container labelled as a worker of the
// sidecar identity.
func leftoverWorker(t *testing.T, cli *client.Client, img, project, identity string) string {
	t.Helper()
	ctx := context.Background()
	c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: img, Entrypoint: []string{"sleep", "infinity"},
		Labels: dockerbed.Labels(map[string]string{discover.WorkerLabel: project, worker.SidecarLabel: identity})}})
	require.NoError(t, err)
	t.Cleanup(func() { dockerbed.Remove(t, cli, c.ID) })
	_, err = cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{})
	require.NoError(t, err)
	return c.ID
}

// findProcess returns the pid of a process on this machine running
// "<dir>/sidecar dump …" whose command line mentions marker, or 0.
func findProcess(marker string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 2 && filepath.Base(args[0]) == "sidecar" && args[1] == "dump" && strings.Contains(string(b), marker) {
			return pid
		}
	}
	return 0
}

func containerName(t *testing.T, cli *client.Client, id string) string {
	t.Helper()
	ins, err := cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	return strings.TrimPrefix(ins.Container.Name, "/")
}
