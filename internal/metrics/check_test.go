package metrics

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The repository check's metrics: absent before the first check (an alert
// on platback_check_last_ok == 0 cannot fire then); a failure sets 0 and
// keeps the last success; a replayed failure is not counted again.
func TestCheckMetrics(t *testing.T) {
	m := New("demo", "v", "0.19.1")
	for _, name := range []string{"platback_check_last_ok", "platback_check_last_timestamp_seconds",
		"platback_check_last_success_timestamp_seconds", "platback_check_read_data_part"} {
		assert.False(t, present(t, m, name), name)
	}
	assert.Equal(t, 0.0, value(t, m, "platback_check_failures_total"))

	t0 := time.Unix(1_700_000_000, 0)
	m.Check(Check{End: t0, Duration: 90 * time.Second, Part: 1, Parts: 12})
	assert.Equal(t, 1.0, value(t, m, "platback_check_last_ok"))
	assert.Equal(t, float64(t0.Unix()), value(t, m, "platback_check_last_success_timestamp_seconds"))
	assert.Equal(t, 90.0, value(t, m, "platback_check_last_duration_seconds"))
	assert.Equal(t, 1.0, value(t, m, "platback_check_read_data_part"))
	assert.Equal(t, 12.0, value(t, m, "platback_check_read_data_parts"))

	t1 := t0.Add(24 * time.Hour)
	m.Check(Check{End: t1, Duration: time.Minute, Part: 2, Parts: 12, Err: errors.New("pack damaged")})
	assert.Equal(t, 0.0, value(t, m, "platback_check_last_ok"))
	assert.Equal(t, float64(t1.Unix()), value(t, m, "platback_check_last_timestamp_seconds"))
	assert.Equal(t, float64(t0.Unix()), value(t, m, "platback_check_last_success_timestamp_seconds"))
	assert.Equal(t, 2.0, value(t, m, "platback_check_read_data_part"))
	assert.Equal(t, 1.0, value(t, m, "platback_check_failures_total"))

	// A restarted sidecar replays the failure: the gauges, not the counter.
	m2 := New("demo", "v", "0.19.1")
	m2.Check(Check{End: t1, Part: 2, Parts: 12, Err: errors.New("pack damaged"), LastSuccess: t0, Replayed: true})
	assert.Equal(t, 0.0, value(t, m2, "platback_check_last_ok"))
	assert.Equal(t, float64(t0.Unix()), value(t, m2, "platback_check_last_success_timestamp_seconds"))
	assert.Equal(t, 0.0, value(t, m2, "platback_check_failures_total"))

	m.CheckSkipped()
	assert.Equal(t, 1.0, value(t, m, "platback_checks_skipped_total"))
}
