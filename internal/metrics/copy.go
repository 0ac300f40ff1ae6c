package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// copyMetrics are the second copy's (COPY_REPOSITORY).
type copyMetrics struct {
	ok          *prometheus.GaugeVec
	last        *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	duration    *prometheus.GaugeVec
	snapshots   *prometheus.GaugeVec
	failures    prometheus.Counter
}

func newCopyMetrics(reg *prometheus.Registry, c prometheus.Labels) copyMetrics {
	m := copyMetrics{
		ok: unlabelled("platback_copy_last_ok",
			"1 when the last copy of a run's snapshots to the second repository (COPY_REPOSITORY) succeeded, 0 when it failed (the run itself may have succeeded); absent before the first copy.", c),
		last: unlabelled("platback_copy_last_timestamp_seconds",
			"When the last copy to the second repository ended, succeeded or not (Unix time).", c),
		lastSuccess: unlabelled("platback_copy_last_success_timestamp_seconds",
			"When a copy to the second repository last succeeded (Unix time).", c),
		duration: unlabelled("platback_copy_last_duration_seconds",
			"How long the last copy to the second repository took, its retention included.", c),
		snapshots: unlabelled("platback_copy_snapshots",
			"Snapshots of this stack in the second repository after the last copy's retention.", c),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "platback_copy_failures_total",
			Help: "Failed copies to the second repository since the sidecar started.", ConstLabels: c}),
	}
	reg.MustRegister(m.ok, m.last, m.lastSuccess, m.duration, m.snapshots, m.failures)
	return m
}

// Copy is one copy of a run's snapshots to the second repository.
type Copy struct {
	End      time.Time
	Duration time.Duration
	Err      error
	// Snapshots is how many snapshots of the stack the second repository
	// holds after the copy's retention; negative when unknown.
	Snapshots int
	// LastSuccess, when not zero, is when a copy last succeeded (a failed
	// copy read back at start-up).
	LastSuccess time.Time
	// Replayed marks a copy an earlier process already counted: gauges
	// are set, counters are not.
	Replayed bool
}

// Copy records a copy to the second repository.
func (m *Metrics) Copy(c Copy) {
	m.copy.last.WithLabelValues().Set(float64(c.End.Unix()))
	m.copy.duration.WithLabelValues().Set(c.Duration.Seconds())
	if !c.LastSuccess.IsZero() {
		m.copy.lastSuccess.WithLabelValues().Set(float64(c.LastSuccess.Unix()))
	}
	if c.Snapshots >= 0 {
		m.copy.snapshots.WithLabelValues().Set(float64(c.Snapshots))
	}
	if c.Err != nil {
		m.copy.ok.WithLabelValues().Set(0)
		if !c.Replayed {
			m.copy.failures.Inc()
		}
		return
	}
	m.copy.ok.WithLabelValues().Set(1)
	m.copy.lastSuccess.WithLabelValues().Set(float64(c.End.Unix()))
}
