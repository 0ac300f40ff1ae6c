package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// hookMetrics are the hooks' (stack-back.hooks.*), per compose service and
// stage.
type hookMetrics struct {
	duration *prometheus.GaugeVec
	failures *prometheus.CounterVec
}

func newHookMetrics(reg *prometheus.Registry, c prometheus.Labels) hookMetrics {
	labels := []string{"service", "stage"}
	h := hookMetrics{
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "platback_hook_last_duration_seconds",
			Help: "How long the last hook command of the service's stage (pre, post, error, finally) took.", ConstLabels: c}, labels),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "platback_hook_failures_total",
			Help: "Hook commands of the service's stage that failed (non-zero exit, timeout, no container), on-error continue included; runs of `sidecar run-once` count too.", ConstLabels: c}, labels),
	}
	reg.MustRegister(h.duration, h.failures)
	return h
}

// Hook is one hook command that ran.
type Hook struct {
	// Service is the compose service whose labels carry the hook.
	Service, Stage string
	Duration       time.Duration
	Failed         bool
	// Replayed marks a hook an earlier process already counted: gauges
	// are set, counters are not.
	Replayed bool
}

// Hook records a hook command.
func (m *Metrics) Hook(h Hook) {
	m.hooks.duration.WithLabelValues(h.Service, h.Stage).Set(h.Duration.Seconds())
	c := m.hooks.failures.WithLabelValues(h.Service, h.Stage) // exists at 0 before the first failure
	if h.Failed && !h.Replayed {
		c.Inc()
	}
}
