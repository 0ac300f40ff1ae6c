package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	"github.com/platback/platback/internal/daemon"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

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
func (d *runningDaemon) health() (r daemon.HealthReport, ok bool) {
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
func (d *runningDaemon) waitHealth(t *testing.T, timeout time.Duration, healthy bool, parts ...string) daemon.HealthReport {
	t.Helper()
	var r daemon.HealthReport
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
