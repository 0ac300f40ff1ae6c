package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// verifyMetrics are the restore drills' (VERIFY_CRON, `sidecar verify`).
type verifyMetrics struct {
	ok          *prometheus.GaugeVec
	last        *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	age         *prometheus.GaugeVec
	failures    *prometheus.CounterVec
}

func newVerifyMetrics(reg *prometheus.Registry, c prometheus.Labels) verifyMetrics {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: c}, []string{"target"})
	}
	v := verifyMetrics{
		ok: gauge("platback_verify_last_ok",
			"1 when the last restore drill of the target (VERIFY_CRON or `sidecar verify`) passed, 0 when it failed: its latest snapshot could not be restored as it should; absent before the first."),
		last: gauge("platback_verify_last_timestamp_seconds",
			"When the last restore drill of the target ended, passed or not (Unix time)."),
		lastSuccess: gauge("platback_verify_last_success_timestamp_seconds",
			"When a restore drill of the target last passed (Unix time)."),
		age: gauge("platback_verify_snapshot_age_seconds",
			"Age of the snapshot the last restore drill of the target restored, when the drill started."),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "platback_verify_failures_total",
			Help: "Failed restore drills of the target since the sidecar started.", ConstLabels: c}, []string{"target"}),
	}
	reg.MustRegister(v.ok, v.last, v.lastSuccess, v.age, v.failures)
	return v
}

// Verify is one target's restore drill.
type Verify struct {
	Target      string
	End         time.Time
	OK          bool
	SnapshotAge time.Duration
	// LastSuccess, when not zero, is when the target's drill last passed
	// (a failed drill read back at start-up).
	LastSuccess time.Time
	// Replayed marks a drill an earlier process already counted: gauges
	// are set, counters are not.
	Replayed bool
}

// Verify records a target's restore drill.
func (m *Metrics) Verify(v Verify) {
	m.verify.last.WithLabelValues(v.Target).Set(float64(v.End.Unix()))
	m.verify.age.WithLabelValues(v.Target).Set(v.SnapshotAge.Seconds())
	if !v.LastSuccess.IsZero() {
		m.verify.lastSuccess.WithLabelValues(v.Target).Set(float64(v.LastSuccess.Unix()))
	}
	if !v.OK {
		m.verify.ok.WithLabelValues(v.Target).Set(0)
		if !v.Replayed {
			m.verify.failures.WithLabelValues(v.Target).Inc()
		}
		return
	}
	m.verify.ok.WithLabelValues(v.Target).Set(1)
	m.verify.lastSuccess.WithLabelValues(v.Target).Set(float64(v.End.Unix()))
}
