package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/composebed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/worker"
)

// runCostCompose is a stack whose run cost is counted: a service with three
// volumes that needs no stop, a service with two volumes stopped during
// their backup, an S3 repository on MinIO.
const runCostCompose = `
services:
  app:
    image: ${APP_IMAGE}
    entrypoint: ["sleep", "infinity"]
    labels:
      stack-back.volumes: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes: ["one:/one", "two:/two", "three:/three"]
  store:
    image: ${APP_IMAGE}
    entrypoint: ["sleep", "infinity"]
    labels:
      stack-back.volumes: "true"
      stack-back.volumes.stop-during-backup: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes: ["four:/four", "five:/five"]
  backup:
    image: ${SIDECAR_IMAGE}
    network_mode: host
    environment:
      RESTIC_REPOSITORY: ${RESTIC_REPOSITORY}
      RESTIC_PASSWORD: run-cost-password
      AWS_ACCESS_KEY_ID: ${AWS_ACCESS_KEY_ID}
      AWS_SECRET_ACCESS_KEY: ${AWS_SECRET_ACCESS_KEY}
      CRON_SCHEDULE: "0 3 1 1 *"
      STOP_TIMEOUT: 1s
      LOG_FORMAT: json
    labels:
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - cache:/cache
volumes:
  one: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  two: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  three: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  four: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  five: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  cache: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
networks:
  default: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
`

// TestRunCost counts what one run costs beyond restic's own backups: the
// worker containers (one per stop window, one for the volumes that need no
// stop) and the restic processes (on a first run only init before the
// backups and no forget; no `restic version` once the cache knows the
// binary, none in the workers, no `cat config` when the repository is
// there, one `forget` for all the targets, no `snapshots` to count them),
// and reports the wall time of unchanged runs.
func TestRunCost(t *testing.T) {
	t.Parallel() // a stack of its own; the package runs two at a time
	if testing.Short() {
		t.Skip("runs a compose stack")
	}
	ctx := context.Background()
	cli := dockerbed.Client(t)
	dbs := dbimage.ForTest(t, cli)
	s3 := testbed.StartMinIO(t)
	project := dockerbed.UniqueName("cost")
	s3.MakeBucket(t, project)
	st := composebed.Up(t, cli, project, runCostCompose, map[string]string{
		"APP_IMAGE": dbs.Base, "SIDECAR_IMAGE": countingSidecarImage(t, cli), "RESTIC_REPOSITORY": s3.RepoURL(project, ""),
		"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey})
	side := st.Container("backup", 1)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar log:\n%s", containerLogs(t, cli, side))
		}
	})
	sh(t, cli, st.Container("app", 1), "for v in one two three; do head -c 300000 /dev/urandom > /$v/blob; echo $v > /$v/name; done")
	sh(t, cli, st.Container("store", 1), "for v in four five; do head -c 300000 /dev/urandom > /$v/blob; done")
	calls := resticCallLog(t, cli, st.Volume("cache"))

	type cost struct {
		took    time.Duration
		workers int
		restic  []string // "<where> <command>", where is sidecar or worker
	}
	run := func(t *testing.T) cost {
		t.Helper()
		workers := watchCreated(t, cli, worker.SidecarLabel+"="+project+"/backup/1")
		before := len(calls())
		start := time.Now()
		code, out, logs := execSplit(t, cli, side, nil, "sidecar", "run-once")
		took := time.Since(start)
		require.Equal(t, 0, code, out+logs)
		require.Contains(t, out, "OK: 5 target(s)")
		c := cost{took: took, workers: len(workers())}
		for _, call := range calls()[before:] {
			c.restic = append(c.restic, call.where+" "+call.command)
		}
		slices.Sort(c.restic)
		return c
	}

	// The daemon's start-up check (its `restic version`, a `cat config`
	// that finds no repository) is done before the runs are counted.
	waitFor(t, 2*time.Minute, "the start-up check", func() bool {
		return strings.Contains(containerLogs(t, cli, side), "start-up check passed")
	})
	first := run(t)
	assert.Equal(t, 2, first.workers)
	assert.Equal(t, []string{
		"sidecar init",
		"worker backup", "worker backup", "worker backup", "worker backup", "worker backup",
	}, first.restic, "a first run: init (the storage says there is no config file, and one key file after init), the backups; no version (the daemon checked the binary and the cache remembers it), no forget (each target has its first snapshot)")
	t.Logf("first run: %s, %d worker container(s), %d restic process(es): %s", first.took.Round(time.Millisecond), first.workers, len(first.restic), strings.Join(first.restic, ", "))
	var unchanged []cost
	for range 3 {
		unchanged = append(unchanged, run(t))
	}
	var took []time.Duration
	for i, c := range unchanged {
		took = append(took, c.took)
		t.Logf("unchanged run %d: %s, %d worker container(s), %d restic process(es): %s", i+1, c.took.Round(time.Millisecond), c.workers, len(c.restic), strings.Join(c.restic, ", "))
	}
	slices.Sort(took)
	t.Logf("unchanged run-once of 5 volume targets (one service of 3, a stop window of 2): min %s, median %s",
		took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond))

	c := unchanged[len(unchanged)-1]
	assert.Equal(t, 2, c.workers, "one worker for the volumes that need no stop, one for the stop window")
	assert.Equal(t, []string{
		"sidecar forget", // retention of every target: one dry run; nothing to remove
		"worker backup", "worker backup", "worker backup", "worker backup", "worker backup",
	}, c.restic, "one restic process per target, one forget, no cat config, no version (remembered in the cache), none in the workers, no snapshots")

	t.Run("a worker killed half-way fails only the targets it had not finished, and its lock goes", func(t *testing.T) {
		code, out, planLog := execSplit(t, cli, side, nil, "sidecar", "plan", "--json")
		require.Equal(t, 0, code, out+planLog)
		var plan discover.Plan
		require.NoError(t, json.Unmarshal([]byte(out), &plan))
		var appPaths []string
		for _, tg := range plan.Targets {
			if tg.Service == "app" {
				appPaths = append(appPaths, tg.Path)
			}
		}
		require.Len(t, appPaths, 3)
		// The worker's second backup is slow; the first is done when it starts.
		second := strings.TrimPrefix(appPaths[1], "/volumes/app")
		sh(t, cli, st.Container("app", 1), "head -c 400000000 /dev/urandom > "+second+"/big")
		defer sh(t, cli, st.Container("app", 1), "rm -f "+second+"/big")

		before := len(calls())
		done := make(chan string, 1)
		go func() {
			code, out, logs := execSplitNoFail(cli, side, "sidecar", "run-once")
			done <- strconv.Itoa(code) + "\n" + out + logs
		}()
		waitFor(t, 2*time.Minute, "the worker's second backup", func() bool {
			n := 0
			for _, c := range calls()[before:] {
				if c.where == "worker" && c.command == "backup" {
					n++
				}
			}
			return n >= 2
		})
		time.Sleep(time.Second) // restic took its lock
		list, err := cli.ContainerList(ctx, client.ContainerListOptions{
			Filters: make(client.Filters).Add("label", worker.SidecarLabel+"="+project+"/backup/1").Add("status", "running")})
		require.NoError(t, err)
		require.Len(t, list.Items, 1)
		_, err = cli.ContainerKill(ctx, list.Items[0].ID, client.ContainerKillOptions{Signal: "KILL"})
		require.NoError(t, err)
		out = <-done
		require.True(t, strings.HasPrefix(out, "1\n"), out)
		assert.Regexp(t, regexp.QuoteMeta(appPaths[0])+` +volume +[0-9a-f]{8} `, out, "the target the worker had finished keeps its result")
		for _, p := range appPaths[1:] {
			assert.Regexp(t, regexp.QuoteMeta(p)+` +volume +.*killed with SIGKILL`, out)
		}
		for _, p := range []string{"/volumes/store/four", "/volumes/store/five"} {
			assert.Regexp(t, regexp.QuoteMeta(p)+` +volume +[0-9a-f]{8} `, out, "the stop window's worker ran")
		}
		assert.Contains(t, out, "FAILED: 5 target(s)")
		assert.Empty(t, objectKeysUnder(t, s3, project, "locks/"), "the killed worker's lock was removed")
	})
}

// objectKeysUnder lists the keys under prefix in bucket.
func objectKeysUnder(t *testing.T, s3 *testbed.MinIO, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	for _, k := range objectKeys(t, s3, bucket) {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	return keys
}

// resticCall is one restic process a counting image started.
type resticCall struct {
	where   string // sidecar or worker
	command string
}

// resticCallLog returns a function that reads the restic calls logged in
// the volume (the counting image's restic writes them to /cache).
func resticCallLog(t *testing.T, cli *client.Client, volume string) func() []resticCall {
	t.Helper()
	v, err := cli.VolumeInspect(context.Background(), volume, client.VolumeInspectOptions{})
	require.NoError(t, err)
	path := filepath.Join(v.Volume.Mountpoint, "restic-calls.log")
	return func() []resticCall {
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil
		}
		require.NoError(t, err)
		var calls []resticCall
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 {
				calls = append(calls, resticCall{where: f[1], command: f[2]})
			}
		}
		return calls
	}
}

// watchCreated counts the containers created with the label from now on,
// watching the engine's events (subscribed before the caller acts: the
// engine keeps only its last 256). The returned function ends the watch and
// returns the ids.
func watchCreated(t *testing.T, cli *client.Client, label string) func() []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := cli.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).Add("type", "container").Add("event", "create").Add("label", label)})
	var mu sync.Mutex
	var ids []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-res.Messages:
				mu.Lock()
				ids = append(ids, m.Actor.ID)
				mu.Unlock()
			case <-res.Err:
				return
			}
		}
	}()
	// The subscription is in place once the engine answers a request made
	// after it.
	_, _ = cli.Ping(ctx, client.PingOptions{})
	time.Sleep(200 * time.Millisecond)
	return func() []string {
		time.Sleep(500 * time.Millisecond) // the last events on their way
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ids)
	}
}

const resticLogger = `package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// restic, counted: one line per process in /cache/restic-calls.log (time,
// the container's first process — "sidecar run" or "sidecar worker" —,
// arguments; restic gets its credentials from its environment, never its
// arguments), then the real restic.
func main() {
	if f, err := os.OpenFile("/cache/restic-calls.log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
		where := "sidecar"
		if b, _ := os.ReadFile("/proc/1/cmdline"); strings.Contains(string(b), "\x00worker") {
			where = "worker"
		}
		fmt.Fprintf(f, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), where, strings.Join(os.Args[1:], " "))
		f.Close()
	}
	err := syscall.Exec("/usr/local/bin/restic.real", os.Args, os.Environ())
	fmt.Fprintln(os.Stderr, "restic logger:", err)
	os.Exit(1)
}
`

// countingSidecarImage is the sidecar image whose restic logs every process
// it starts (resticLogger) before it runs the real restic.
func countingSidecarImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	ctx := context.Background()
	base := buildSidecarImage(t, cli)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module resticlogger\n\ngo 1.26\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(resticLogger), 0o644))
	goBuild := exec.Command("go", "build", "-trimpath", "-o", "restic", ".")
	goBuild.Dir, goBuild.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	out, err := goBuild.CombinedOutput()
	require.NoError(t, err, string(out))
	logger, err := os.ReadFile(filepath.Join(dir, "restic"))
	require.NoError(t, err)
	real, err := os.ReadFile(testbed.Tool(t, "restic"))
	require.NoError(t, err)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{"Dockerfile", []byte("FROM " + base + "\nCOPY restic restic.real /usr/local/bin/\n")}, {"restic", logger}, {"restic.real", real}} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.data))}))
		_, err := tw.Write(f.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	tag := "platback-test/sidecar-counted:" + dockerbed.UniqueName("c")
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Labels: dockerbed.Labels(nil),
		Remove: true, ForceRemove: true, Version: build.BuilderV1})
	require.NoError(t, err)
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var m struct{ Error string }
		if err := dec.Decode(&m); err != nil {
			break
		}
		require.Empty(t, m.Error)
	}
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	return tag
}
