package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/moby/moby/api/types/mount"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/schedule"
)

// The last-run file is written atomically, read back with its errors (so
// Result.OK holds), and remembers the last success across failed runs.
func TestLastRunFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	_, ok, err := loadLastRun(dir)
	require.NoError(t, err)
	assert.False(t, ok, "no file yet")

	t0 := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	good := runner.Result{Start: t0, Duration: time.Minute, Projects: []string{"app"},
		Targets: []runner.TargetResult{{Path: "/volumes/app/data", Kind: "volume", SnapshotID: "abcdef12", FilesNew: 3}}}
	require.NoError(t, saveLastRun(dir, good, "daemon"))
	lr, ok, err := loadLastRun(dir)
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, lr.OK)
	assert.True(t, lr.Result.OK())
	assert.Equal(t, t0, lr.LastSuccess)
	assert.Equal(t, "daemon", lr.By)

	boom := errors.New("restic backup: exit status 1: Fatal: unable to open repository")
	bad := runner.Result{Start: t0.Add(24 * time.Hour), Duration: time.Minute, Projects: []string{"app"},
		Targets: []runner.TargetResult{{Path: "/volumes/app/data", Kind: "volume", Err: boom, Error: boom.Error()}}}
	require.NoError(t, saveLastRun(dir, bad, "run-once"))
	lr, ok, err = loadLastRun(dir)
	require.NoError(t, err)
	require.True(t, ok)
	assert.False(t, lr.OK)
	assert.False(t, lr.Result.OK(), "the target's error is restored from its text")
	require.Error(t, lr.Result.Targets[0].Err)
	assert.Equal(t, boom.Error(), lr.Result.Targets[0].Err.Error())
	assert.Equal(t, t0, lr.LastSuccess, "the last success is carried over")

	runErr := errors.New("credentials: vaultcreds: Vault unavailable")
	require.NoError(t, saveLastRun(dir, runner.Result{Start: t0.Add(48 * time.Hour), Err: runErr, Error: runErr.Error()}, "run-once"))
	lr, _, err = loadLastRun(dir)
	require.NoError(t, err)
	assert.EqualError(t, lr.Result.Err, runErr.Error())
	assert.Equal(t, t0, lr.LastSuccess)

	assert.Equal(t, []string{lastRunName}, entries(t, dir), "no temporary file left")
	fi, err := os.Stat(filepath.Join(dir, lastRunName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	require.NoError(t, os.WriteFile(filepath.Join(dir, lastRunName), []byte("{not json"), 0o600))
	_, ok, err = loadLastRun(dir)
	assert.Error(t, err)
	assert.False(t, ok)
}

// newTestDaemon is a daemon without a scheduler or server: what it knows
// from runs and checks.
func newTestDaemon(t *testing.T, cache string) *daemon {
	t.Helper()
	table, err := schedule.ParseSpec(schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"})
	require.NoError(t, err)
	a := &app{cfg: config.Config{CacheDir: cache}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return &daemon{a: a, m: metrics.New("app", "test", "0.19.1"),
		health: &healthState{started: time.Now().Add(-time.Hour), factor: 2, table: table, checkRetry: time.Minute}}
}

// metricValue reads one sample of the daemon's metrics, "" when absent.
func metricValue(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) string {
	t.Helper()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			v := s.GetGauge().GetValue()
			if s.GetCounter() != nil {
				v = s.GetCounter().GetValue()
			}
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	return ""
}

// A run of `sidecar run-once` reaches the daemon's metrics and health
// through the last-run file; the daemon's own runs are not counted twice;
// an older file is not applied over a newer run.
func TestDaemonAppliesRunOnceResults(t *testing.T) {
	cache := t.TempDir()
	d := newTestDaemon(t, cache)
	target := map[string]string{"target": "/volumes/app/data", "kind": "volume", "phase": "backup"}

	now := time.Now().UTC().Truncate(time.Second)
	ok := runner.Result{Start: now.Add(-time.Hour), Duration: time.Minute, Projects: []string{"app"},
		Targets: []runner.TargetResult{{Path: "/volumes/app/data", Kind: "volume", SnapshotID: "abcdef12", FilesNew: 7, BytesAdded: 1000}}}
	require.NoError(t, saveLastRun(cache, ok, "run-once"))
	d.refresh(false)
	assert.Equal(t, "1", metricValue(t, d.m, "platback_run_last_ok", nil))
	assert.Equal(t, "7", metricValue(t, d.m, "platback_last_files_new", target))
	assert.True(t, d.health.report(now).Healthy)
	assert.True(t, d.health.checkPassed(), "a successful run proves what the start-up check checks")

	boom := errors.New("restic backup: exit status 1: Fatal: wrong password or no key found")
	bad := runner.Result{Start: now.Add(-30 * time.Minute), Duration: time.Minute, Projects: []string{"app"},
		Targets: []runner.TargetResult{{Path: "/volumes/app/data", Kind: "volume", Err: boom, Error: boom.Error()}}}
	require.NoError(t, saveLastRun(cache, bad, "run-once"))
	d.refresh(false)
	assert.Equal(t, "0", metricValue(t, d.m, "platback_run_last_ok", nil))
	assert.Equal(t, "1", metricValue(t, d.m, "platback_errors_total", target))
	r := d.health.report(now)
	assert.False(t, r.Healthy)
	assert.Contains(t, r.Reason, "/volumes/app/data: "+boom.Error(), "the reason names the target and the cause")
	d.refresh(false)
	assert.Equal(t, "1", metricValue(t, d.m, "platback_errors_total", target), "read once, counted once")

	// The daemon's own run: the runner counted it; the file it writes is
	// not applied again.
	own := bad
	own.Start = now.Add(-10 * time.Minute)
	d.m.Record(metrics.Phase{Target: "/volumes/app/data", Kind: "volume", Phase: metrics.PhaseBackup, Start: own.Start, Err: boom, HasFiles: true})
	d.ownRun(own)
	require.NoError(t, saveLastRun(cache, own, "daemon"))
	d.refresh(false)
	assert.Equal(t, "2", metricValue(t, d.m, "platback_errors_total", target))

	// A restarted daemon replays the last run: gauges and health, no count.
	d2 := newTestDaemon(t, cache)
	d2.refresh(true)
	assert.Equal(t, "0", metricValue(t, d2.m, "platback_run_last_ok", nil))
	assert.Equal(t, "0", metricValue(t, d2.m, "platback_errors_total", target))
	r = d2.health.report(now)
	assert.False(t, r.Healthy, "the last run failed, also before a restart")
	assert.Equal(t, ok.Start, r.LastSuccess, "the last success is remembered")
	assert.False(t, d2.health.checkPassed(), "a replayed run does not replace the start-up check")
}

// Lifecycle warnings of a run become the bucket metrics, once the run got
// past EnsureRepo.
func TestDaemonLifecycleFromRuns(t *testing.T) {
	d := newTestDaemon(t, t.TempDir())
	d.lifecycleFromRun(runner.Result{Err: errors.New("credentials: Vault unavailable")})
	assert.Empty(t, metricValue(t, d.m, "platback_bucket_expiration_rules", nil), "unknown before any run got to the bucket")
	d.lifecycleFromRun(runner.Result{Projects: []string{"app"}, Warnings: []string{
		"REPOSITORY AT RISK: bucket \"b\": lifecycle rule \"30d\" expires objects after 30 days", "label typo"}})
	assert.Equal(t, "1", metricValue(t, d.m, "platback_bucket_expiration_rules", nil))
	assert.Equal(t, "1", metricValue(t, d.m, "platback_bucket_lifecycle_readable", nil))
	d.lifecycleFromRun(runner.Result{Projects: []string{"app"}, Warnings: []string{"bucket lifecycle unknown: Access Denied"}})
	assert.Empty(t, metricValue(t, d.m, "platback_bucket_expiration_rules", nil))
	assert.Equal(t, "0", metricValue(t, d.m, "platback_bucket_lifecycle_readable", nil))
	d.lifecycleFromRun(runner.Result{Projects: []string{"app"}})
	assert.Equal(t, "0", metricValue(t, d.m, "platback_bucket_expiration_rules", nil), "the rule was removed")
}

func TestHealthStartupCheck(t *testing.T) {
	table, err := schedule.ParseSpec(schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"})
	require.NoError(t, err)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	h := &healthState{started: now.Add(-time.Hour), factor: 2, table: table, checkRetry: time.Minute}
	r := h.report(now)
	assert.True(t, r.Healthy)
	assert.Contains(t, r.Reason, "start-up check in progress")

	h.checked(now.Add(-50*time.Minute), errors.New("open repository: wrong repository password"))
	h.checked(now.Add(-time.Minute), errors.New("open repository: wrong repository password"))
	r = h.report(now)
	assert.False(t, r.Healthy)
	assert.Contains(t, r.Reason, "start-up check failing since 2026-11-26T11:10:00Z (retried every 1m0s): open repository: wrong repository password")

	h.checked(now, nil)
	r = h.report(now)
	assert.True(t, r.Healthy)
	assert.Equal(t, "no run yet", r.Reason)
	h.checked(now, errors.New("late failure of an attempt that started before"))
	assert.True(t, h.report(now).Healthy, "once passed, the check stays passed")
}

// --- the real binary as a host process -----------------------------------

// buildDaemonBinary builds this sidecar for the test, or returns
// $PLATBACK_TEST_SIDECAR_BIN when set (to run these tests against another
// build, e.g. of an older commit).
func buildDaemonBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("PLATBACK_TEST_SIDECAR_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "sidecar")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sidecarEnviron is env plus what the binary needs from the test's own
// environment (the Docker variables), and nothing else of it.
func sidecarEnviron(home string, env map[string]string) []string {
	out := []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
	for _, k := range []string{"DOCKER_HOST", "DOCKER_API_VERSION", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"} {
		if v, ok := os.LookupEnv(k); ok {
			out = append(out, k+"="+v)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// hostSidecar is the environment of a sidecar running on the host for a
// project: its own cache, the pinned restic, /metrics on a free port.
type hostSidecar struct {
	bin  string
	home string
	env  map[string]string
}

func newHostSidecar(t *testing.T, bin, project string, env map[string]string) *hostSidecar {
	t.Helper()
	home := t.TempDir()
	e := map[string]string{
		"PLATBACK_PROJECT":   project,
		"PLATBACK_CACHE_DIR": filepath.Join(home, "cache"),
		"PLATBACK_RESTIC":    testbed.Tool(t, "restic"),
		"METRICS_LISTEN":     "127.0.0.1:" + strconv.Itoa(testbed.FreePort(t)),
	}
	for k, v := range env {
		e[k] = v
	}
	return &hostSidecar{bin: bin, home: home, env: e}
}

// runOnce runs `sidecar run-once` with extra variables over the sidecar's
// and returns its exit code and output (stdout then stderr).
func (h *hostSidecar) runOnce(t *testing.T, extra map[string]string) (int, string) {
	t.Helper()
	return h.run(t, extra, "run-once")
}

// run runs the sidecar with args and extra variables over the sidecar's
// and returns its exit code and output (stdout then stderr).
func (h *hostSidecar) run(t *testing.T, extra map[string]string, args ...string) (int, string) {
	t.Helper()
	env := maps.Clone(h.env)
	maps.Copy(env, extra)
	cmd := exec.Command(h.bin, args...)
	cmd.Dir, cmd.Env = h.home, sidecarEnviron(h.home, env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("sidecar %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String() + stderr.String()
}

// runningDaemon is `sidecar run` as a host process.
type runningDaemon struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	base string // http://host:port
	done chan struct{}
}

// startDaemon starts `sidecar run` with args; it is stopped (SIGTERM) when
// the test ends, and its log is shown when the test failed.
func (h *hostSidecar) startDaemon(t *testing.T, args ...string) *runningDaemon {
	t.Helper()
	d := &runningDaemon{logs: &syncBuffer{}, base: "http://" + h.env["METRICS_LISTEN"], done: make(chan struct{})}
	d.cmd = exec.Command(h.bin, append([]string{"run"}, args...)...)
	d.cmd.Dir, d.cmd.Env = h.home, sidecarEnviron(h.home, h.env)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, d.cmd.Start())
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() || testing.Verbose() {
			t.Logf("daemon log:\n%s", d.logs.String())
		}
	})
	return d
}

func (d *runningDaemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *runningDaemon) stop(t *testing.T) {
	if d.exited() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("the daemon did not stop within 30 s of SIGTERM")
	}
}

// health asks /healthz; ok is false while the endpoint does not answer.
func (d *runningDaemon) health() (r healthReport, ok bool) {
	resp, err := http.Get(d.base + "/healthz")
	if err != nil {
		return r, false
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return r, false
	}
	if r.Healthy != (resp.StatusCode == http.StatusOK) {
		return r, false
	}
	return r, true
}

// metric returns the value of the first sample of name whose labels
// contain labelPart ("" for any), and "" when there is none.
func (d *runningDaemon) metric(name, labelPart string) string {
	resp, err := http.Get(d.base + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if n, _, _ := strings.Cut(series, "{"); n == name && strings.Contains(series, labelPart) {
			return value
		}
	}
	return ""
}

// metricAtLeast reports whether the metric's first sample is at least n.
func (d *runningDaemon) metricAtLeast(name string, n float64) bool {
	v, err := strconv.ParseFloat(d.metric(name, ""), 64)
	return err == nil && v >= n
}

// waitUntil polls cond every 100 ms until it holds, failing the test
// after timeout (or at once when the daemon exited).
func (d *runningDaemon) waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if d.exited() {
			t.Fatalf("the daemon exited while waiting for %s:\n%s", what, d.logs.String())
		}
		if time.Since(start) > timeout {
			r, _ := d.health()
			t.Fatalf("after %s still waiting for %s (health: %+v)", timeout, what, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// waitHealth waits until /healthz answers with healthy and a reason
// containing every part.
func (d *runningDaemon) waitHealth(t *testing.T, timeout time.Duration, healthy bool, parts ...string) healthReport {
	t.Helper()
	var r healthReport
	d.waitUntil(t, timeout, fmt.Sprintf("healthy=%v %q", healthy, parts), func() bool {
		var ok bool
		if r, ok = d.health(); !ok || r.Healthy != healthy {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(r.Reason, p) {
				return false
			}
		}
		return true
	})
	return r
}

// volumeStack starts a container of a new compose project whose bind mount
// (a host directory holding files) is a volume target, and returns the
// project and the directory.
func volumeStack(t *testing.T, prefix string, files map[string][]byte) (project, dir string) {
	t.Helper()
	cli := dockerbed.Client(t)
	project = dockerbed.UniqueName(prefix)
	dir = t.TempDir()
	for name, data := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	stack{t: t, cli: cli, project: project}.start("app", dockerbed.HelperImage(t, cli), nil, nil,
		map[string]string{"stack-back.volumes": "true"},
		[]mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/data"}}, "")
	return project, dir
}

// objectKeys lists a bucket's keys.
func objectKeys(t *testing.T, s3 *testbed.MinIO, bucket string) []string {
	t.Helper()
	var keys []string
	for o := range s3.Client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, o.Err)
		keys = append(keys, o.Key)
	}
	return keys
}

// A `sidecar run-once` in the daemon's container reaches the daemon's
// /metrics and /healthz, success and failure alike. Before, the daemon
// went on showing its own last run (here: none), healthy.
func TestDaemonSeesRunOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sidecar against Docker, MinIO and restic")
	}
	cli := dockerbed.Client(t)
	workerImage := buildSidecarImage(t, cli)
	s3 := testbed.StartMinIO(t)
	bucket := dockerbed.UniqueName("runonce")
	s3.MakeBucket(t, bucket)
	project, dir := volumeStack(t, "runonce", map[string][]byte{"hello.txt": []byte("hello from run-once\n")})
	h := newHostSidecar(t, buildDaemonBinary(t), project, map[string]string{
		"RESTIC_REPOSITORY": s3.RepoURL(bucket, "repo"), "RESTIC_PASSWORD": "run-once-pass",
		"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey, "PLATBACK_WORKER_IMAGE": workerImage,
	})
	d := h.startDaemon(t)
	d.waitUntil(t, 30*time.Second, "the start-up check", func() bool { return d.metric("platback_startup_check_ok", "") == "1" })
	d.waitHealth(t, 5*time.Second, true, "no run yet")
	assert.Contains(t, d.logs.String(), "repository=\"not initialised yet")
	assert.Empty(t, objectKeys(t, s3, bucket), "the start-up check initialises nothing")

	code, out := h.runOnce(t, nil)
	require.Equal(t, 0, code, out)
	d.waitHealth(t, 5*time.Second, true, "last run succeeded")
	assert.Equal(t, "1", d.metric("platback_run_last_ok", ""))
	assert.Equal(t, "1", d.metric("platback_last_files_new", `target="/volumes/app/data"`))
	assert.Equal(t, "0", d.metric("platback_errors_total", `target="/volumes/app/data"`))
	assert.NotEmpty(t, d.metric("platback_run_last_timestamp_seconds", ""))
	assert.Equal(t, "0", d.metric("platback_bucket_expiration_rules", ""))
	assert.Equal(t, "1", d.metric("platback_bucket_lifecycle_readable", ""))

	// Case 6 through the sidecar: a wrong restic password never
	// initialises, writes nothing, fails with a clear error, and the
	// daemon shows it.
	before := objectKeys(t, s3, bucket)
	code, out = h.runOnce(t, map[string]string{"RESTIC_PASSWORD": "not-the-password"})
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "RESTIC_PASSWORD does not open it")
	assert.NotContains(t, out, "not-the-password")
	assert.Equal(t, before, objectKeys(t, s3, bucket), "nothing written")
	r := d.waitHealth(t, 5*time.Second, false, "last run failed", "wrong repository password")
	assert.False(t, r.LastSuccess.IsZero())
	assert.Equal(t, "0", d.metric("platback_run_last_ok", ""))
	assert.NotContains(t, get(d.base+"/metrics")+get(d.base+"/healthz"), "not-the-password")

	// A failed target is named, with its cause, in the daemon's health and
	// counted in its metrics.
	hidden := dir + ".gone"
	require.NoError(t, os.Rename(dir, hidden))
	code, out = h.runOnce(t, nil)
	require.Equal(t, 1, code, out)
	d.waitHealth(t, 5*time.Second, false, "1 of 1 target(s) failed: /volumes/app/data: ")
	assert.Equal(t, "1", d.metric("platback_errors_total", `target="/volumes/app/data"`))
	require.NoError(t, os.Rename(hidden, dir))

	code, out = h.runOnce(t, nil)
	require.Equal(t, 0, code, out)
	d.waitHealth(t, 5*time.Second, true, "last run succeeded")
	assert.Equal(t, "1", d.metric("platback_run_last_ok", ""))
	assert.False(t, d.exited())
}

// The health reason names what failed in a run.
func TestRunFailureReason(t *testing.T) {
	boom := errors.New("exit status 1")
	tests := []struct {
		res  runner.Result
		want string
	}{
		{runner.Result{Targets: []runner.TargetResult{{Path: "/volumes/a"}}}, ""},
		{runner.Result{Err: errors.New("credentials: sealed")}, "credentials: sealed"},
		{runner.Result{}, "nothing was backed up"},
		{runner.Result{Targets: []runner.TargetResult{{Path: "/volumes/a"}, {Path: "/databases/db/all_databases.sql", Err: boom}}},
			"1 of 2 target(s) failed: /databases/db/all_databases.sql: exit status 1"},
		{runner.Result{Targets: []runner.TargetResult{{Path: "/volumes/a"}}, Retention: []string{"/volumes/a: locked"}, Check: "damaged"},
			"retention /volumes/a: locked; check: damaged"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, failure(tt.res))
	}
}
