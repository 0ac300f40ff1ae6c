package metrics

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The hooks' metrics, per service and stage: absent before the first hook;
// a hook that ran sets its stage's duration and makes its failure counter
// exist at 0; a failure is counted for its service and stage alone; a
// replayed failure is not counted again.
func TestHookMetrics(t *testing.T) {
	m := New("demo", "v", "0.19.1")
	assert.False(t, present(t, m, "platback_hook_last_duration_seconds"))
	assert.False(t, present(t, m, "platback_hook_failures_total"))

	m.Hook(Hook{Service: "app", Stage: "pre", Duration: 1500 * time.Millisecond})
	assert.Equal(t, 1.5, value(t, m, "platback_hook_last_duration_seconds", "app", "pre"))
	assert.Equal(t, 0.0, value(t, m, "platback_hook_failures_total", "app", "pre"))

	m.Hook(Hook{Service: "app", Stage: "finally", Duration: time.Second, Failed: true})
	m.Hook(Hook{Service: "app", Stage: "finally", Duration: 2 * time.Second, Failed: true})
	assert.Equal(t, 2.0, value(t, m, "platback_hook_failures_total", "app", "finally"))
	assert.Equal(t, 2.0, value(t, m, "platback_hook_last_duration_seconds", "app", "finally"))
	assert.Equal(t, 0.0, value(t, m, "platback_hook_failures_total", "app", "pre"), "the other stage stays")

	m.Hook(Hook{Service: "app", Stage: "finally", Duration: time.Second, Failed: true, Replayed: true})
	assert.Equal(t, 2.0, value(t, m, "platback_hook_failures_total", "app", "finally"), "a replayed failure is not counted")
	assert.Equal(t, 1.0, value(t, m, "platback_hook_last_duration_seconds", "app", "finally"))
}
