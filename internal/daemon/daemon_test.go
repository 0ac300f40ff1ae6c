package daemon

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/schedule"
)

// The last-run file is written atomically, read back with its errors (so
// Result.OK holds), and remembers the last success across failed runs.
func TestLastRunFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	_, ok, err := LoadLastRun(dir)
	require.NoError(t, err)
	assert.False(t, ok, "no file yet")

	t0 := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	good := runner.Result{Start: t0, Duration: time.Minute, Projects: []string{"app"},
		Targets: []runner.TargetResult{{Path: "/volumes/app/data", Kind: "volume", SnapshotID: "abcdef12", FilesNew: 3}}}
	require.NoError(t, SaveLastRun(dir, good, "daemon"))
	lr, ok, err := LoadLastRun(dir)
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, lr.OK)
	assert.True(t, lr.Result.OK())
	assert.Equal(t, t0, lr.LastSuccess)
	assert.Equal(t, "daemon", lr.By)

	boom := errors.New("restic backup: exit status 1: Fatal: unable to open repository")
	bad := runner.Result{Start: t0.Add(24 * time.Hour), Duration: time.Minute, Projects: []string{"app"},
		Targets: []runner.TargetResult{{Path: "/volumes/app/data", Kind: "volume", Err: boom, Error: boom.Error()}}}
	require.NoError(t, SaveLastRun(dir, bad, "run-once"))
	lr, ok, err = LoadLastRun(dir)
	require.NoError(t, err)
	require.True(t, ok)
	assert.False(t, lr.OK)
	assert.False(t, lr.Result.OK(), "the target's error is restored from its text")
	require.Error(t, lr.Result.Targets[0].Err)
	assert.Equal(t, boom.Error(), lr.Result.Targets[0].Err.Error())
	assert.Equal(t, t0, lr.LastSuccess, "the last success is carried over")

	runErr := errors.New("credentials: vaultcreds: Vault unavailable")
	require.NoError(t, SaveLastRun(dir, runner.Result{Start: t0.Add(48 * time.Hour), Err: runErr, Error: runErr.Error()}, "run-once"))
	lr, _, err = LoadLastRun(dir)
	require.NoError(t, err)
	assert.EqualError(t, lr.Result.Err, runErr.Error())
	assert.Equal(t, t0, lr.LastSuccess)

	assert.Equal(t, []string{LastRunName}, entries(t, dir), "no temporary file left")
	fi, err := os.Stat(filepath.Join(dir, LastRunName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	require.NoError(t, os.WriteFile(filepath.Join(dir, LastRunName), []byte("{not json"), 0o600))
	_, ok, err = LoadLastRun(dir)
	assert.Error(t, err)
	assert.False(t, ok)
}

// newTestDaemon is a daemon without a scheduler or server: what it knows
// from runs and checks.
func newTestDaemon(t *testing.T, cache string) *daemon {
	t.Helper()
	table, err := schedule.ParseSpec(schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"})
	require.NoError(t, err)
	a := &Daemon{Config: config.Config{CacheDir: cache}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
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
	require.NoError(t, SaveLastRun(cache, ok, "run-once"))
	d.refresh(false)
	assert.Equal(t, "1", metricValue(t, d.m, "platback_run_last_ok", nil))
	assert.Equal(t, "7", metricValue(t, d.m, "platback_last_files_new", target))
	assert.True(t, d.health.report(now).Healthy)
	assert.True(t, d.health.checkPassed(), "a successful run proves what the start-up check checks")

	boom := errors.New("restic backup: exit status 1: Fatal: wrong password or no key found")
	bad := runner.Result{Start: now.Add(-30 * time.Minute), Duration: time.Minute, Projects: []string{"app"},
		Targets: []runner.TargetResult{{Path: "/volumes/app/data", Kind: "volume", Err: boom, Error: boom.Error()}}}
	require.NoError(t, SaveLastRun(cache, bad, "run-once"))
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
	require.NoError(t, SaveLastRun(cache, own, "daemon"))
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

// entries lists a directory's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return names
}
