package metrics

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The restore drills' metrics, per target: absent before the first drill
// (an alert on platback_verify_last_ok == 0 cannot fire then); a failure
// sets 0 for its target alone, keeps its last success and is counted; a
// replayed failure is not counted again.
func TestVerifyMetrics(t *testing.T) {
	m := New("demo", "v", "0.19.1")
	for _, name := range []string{"platback_verify_last_ok", "platback_verify_last_timestamp_seconds",
		"platback_verify_snapshot_age_seconds", "platback_verify_failures_total"} {
		assert.False(t, present(t, m, name), name)
	}
	t0 := time.Unix(1_700_000_000, 0)
	m.Verify(Verify{Target: "/volumes/app/data", End: t0, OK: true, SnapshotAge: 3 * time.Hour})
	m.Verify(Verify{Target: "/databases/pg/all.sql", End: t0, OK: true, SnapshotAge: time.Hour})
	assert.Equal(t, 1.0, value(t, m, "platback_verify_last_ok", "/volumes/app/data"))
	assert.Equal(t, 10800.0, value(t, m, "platback_verify_snapshot_age_seconds", "/volumes/app/data"))
	assert.Equal(t, float64(t0.Unix()), value(t, m, "platback_verify_last_success_timestamp_seconds", "/volumes/app/data"))

	t1 := t0.Add(7 * 24 * time.Hour)
	m.Verify(Verify{Target: "/volumes/app/data", End: t1, OK: false, SnapshotAge: time.Hour})
	assert.Equal(t, 0.0, value(t, m, "platback_verify_last_ok", "/volumes/app/data"))
	assert.Equal(t, 1.0, value(t, m, "platback_verify_last_ok", "/databases/pg/all.sql"), "the other target stays")
	assert.Equal(t, float64(t1.Unix()), value(t, m, "platback_verify_last_timestamp_seconds", "/volumes/app/data"))
	assert.Equal(t, float64(t0.Unix()), value(t, m, "platback_verify_last_success_timestamp_seconds", "/volumes/app/data"))
	assert.Equal(t, 1.0, value(t, m, "platback_verify_failures_total", "/volumes/app/data"))

	m2 := New("demo", "v", "0.19.1")
	m2.Verify(Verify{Target: "/volumes/app/data", End: t1, OK: false, LastSuccess: t0, Replayed: true})
	assert.Equal(t, 0.0, value(t, m2, "platback_verify_last_ok", "/volumes/app/data"))
	assert.Equal(t, float64(t0.Unix()), value(t, m2, "platback_verify_last_success_timestamp_seconds", "/volumes/app/data"))
	assert.False(t, present(t, m2, "platback_verify_failures_total"))
}
