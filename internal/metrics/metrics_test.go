package metrics

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// value is the value of the metric of that name with these label values
// (besides project, in the order of the label names); it fails the test when there is none.
func value(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, metric := range mf.GetMetric() {
			i := 0
			for _, lp := range metric.GetLabel() {
				if lp.GetName() == "project" {
					continue
				}
				if i >= len(labels) || lp.GetValue() != labels[i] {
					continue metrics
				}
				i++
			}
			if c := metric.GetCounter(); c != nil {
				return c.GetValue()
			}
			return metric.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// present reports whether the registry exports a metric of that name.
func present(t *testing.T, m *Metrics, name string) bool {
	t.Helper()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric()) > 0
		}
	}
	return false
}

func TestLifecycleMetrics(t *testing.T) {
	m := New("app", "dev", "0.19.1")
	assert.False(t, present(t, m, "platback_bucket_expiration_rules"), "unknown before the first check")
	assert.False(t, present(t, m, "platback_bucket_lifecycle_readable"))

	m.Lifecycle(2, nil)
	assert.Equal(t, 2.0, value(t, m, "platback_bucket_expiration_rules"))
	assert.Equal(t, 1.0, value(t, m, "platback_bucket_lifecycle_readable"))

	// Unreadable: the rule count is unknown, not 0 and not the old value.
	m.Lifecycle(0, errors.New("Access Denied"))
	assert.False(t, present(t, m, "platback_bucket_expiration_rules"))
	assert.Equal(t, 0.0, value(t, m, "platback_bucket_lifecycle_readable"))

	m.Lifecycle(0, nil)
	assert.True(t, present(t, m, "platback_bucket_expiration_rules"))
	assert.Equal(t, 0.0, value(t, m, "platback_bucket_expiration_rules"))
}

func TestStartupCheckMetrics(t *testing.T) {
	m := New("app", "dev", "0.19.1")
	assert.False(t, present(t, m, "platback_startup_check_ok"), "absent before the first attempt")
	at := time.Unix(1_800_000_000, 0)
	m.StartupCheck(at, errors.New("wrong password"))
	m.StartupCheck(at.Add(time.Minute), errors.New("wrong password"))
	assert.Equal(t, 0.0, value(t, m, "platback_startup_check_ok"))
	assert.Equal(t, 2.0, value(t, m, "platback_startup_check_failures_total"))
	m.StartupCheck(at.Add(2*time.Minute), nil)
	assert.Equal(t, 1.0, value(t, m, "platback_startup_check_ok"))
	assert.Equal(t, float64(at.Add(2*time.Minute).Unix()), value(t, m, "platback_startup_check_timestamp_seconds"))
	assert.Equal(t, 2.0, value(t, m, "platback_startup_check_failures_total"))
}

// A phase read back from an earlier process sets the gauges but does not
// count its failure a second time.
func TestReplayedPhaseCountsNothing(t *testing.T) {
	m := New("app", "dev", "0.19.1")
	start := time.Unix(1_800_000_000, 0)
	fail := Phase{Target: "/volumes/app/data", Kind: "volume", Phase: PhaseBackup, Start: start, Duration: time.Second, Err: errors.New("boom"), HasFiles: true}
	m.Record(fail)
	replayed := fail
	replayed.Replayed = true
	replayed.Start = start.Add(time.Hour)
	m.Record(replayed)
	l := []string{"volume", PhaseBackup, "/volumes/app/data"} // kind, phase, target: by label name
	assert.Equal(t, 1.0, value(t, m, "platback_errors_total", l...))
	assert.Equal(t, float64(start.Add(time.Hour).Unix()), value(t, m, "platback_last_run_timestamp_seconds", l...))

	m.Run(start.Add(2*time.Hour), time.Minute, false)
	assert.Equal(t, float64(start.Add(2*time.Hour).Unix()), value(t, m, "platback_run_last_timestamp_seconds"))
	assert.Equal(t, 0.0, value(t, m, "platback_run_last_ok"))
}

// Before the first run there is no "last run": an alert on
// platback_run_last_ok == 0 must not fire after every start.
func TestRunLastOKAbsentBeforeTheFirstRun(t *testing.T) {
	m := New("app", "dev", "0.19.1")
	assert.False(t, present(t, m, "platback_run_last_ok"))
	m.Run(time.Now(), time.Second, false)
	assert.Equal(t, 0.0, value(t, m, "platback_run_last_ok"))
	m.Run(time.Now(), time.Second, true)
	assert.Equal(t, 1.0, value(t, m, "platback_run_last_ok"))
}
