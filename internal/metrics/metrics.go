// Package metrics holds the sidecar's Prometheus metrics: per target and
// phase (backup, dump, forget, check) the last run and last success times,
// duration, bytes added, files new and changed, snapshot count and error
// count; per run whether it succeeded; the bucket's lifecycle rules; the
// daemon's start-up check; the last repository check of CHECK_CRON or
// `sidecar check` and the part of the data it read; the restore drills; the
// copies to the second repository; the hooks' durations and failures;
// notifications and health pings sent and failed; build info and the next
// scheduled run.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Phases of a run.
const (
	PhaseBackup = "backup" // a volume
	PhaseDump   = "dump"   // a database dump
	PhaseForget = "forget" // retention (forget --prune)
	PhaseCheck  = "check"
)

// Metrics are the sidecar's collectors, registered on their own registry.
type Metrics struct {
	Registry        *prometheus.Registry
	lastRun         *prometheus.GaugeVec
	lastSuccess     *prometheus.GaugeVec
	duration        *prometheus.GaugeVec
	bytesAdded      *prometheus.GaugeVec
	filesNew        *prometheus.GaugeVec
	filesChanged    *prometheus.GaugeVec
	snapshots       *prometheus.GaugeVec
	errors          *prometheus.CounterVec
	nextRun         prometheus.Gauge
	skipped         prometheus.Counter
	runLastSuccess  prometheus.Gauge
	runLastDuration prometheus.Gauge
	runOK           *prometheus.GaugeVec
	runLast         prometheus.Gauge
	expiration      *prometheus.GaugeVec // no labels: absent until known
	lifecycleRead   *prometheus.GaugeVec
	checkOK         *prometheus.GaugeVec
	checkTime       prometheus.Gauge
	checkFailures   prometheus.Counter
	repoCheckOK     *prometheus.GaugeVec // no labels: absent before the first check
	repoCheckLast   *prometheus.GaugeVec
	repoCheckOKLast *prometheus.GaugeVec
	repoCheckTook   *prometheus.GaugeVec
	repoCheckPart   *prometheus.GaugeVec
	repoCheckParts  *prometheus.GaugeVec
	repoCheckFailed prometheus.Counter
	repoCheckSkip   prometheus.Counter
	notifySent      prometheus.Counter
	notifyFailed    prometheus.Counter
	pingsSent       prometheus.Counter
	pingsFailed     prometheus.Counter
	verify          verifyMetrics
	copy            copyMetrics
	hooks           hookMetrics
}

// New registers every metric. project is a constant label.
func New(project, version, resticVersion string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c := prometheus.Labels{"project": project}
	labels := []string{"target", "kind", "phase"}
	gauge := func(name, help string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: c}, labels)
		reg.MustRegister(g)
		return g
	}
	m := &Metrics{
		Registry:     reg,
		lastRun:      gauge("platback_last_run_timestamp_seconds", "When the target's phase last ran (Unix time)."),
		lastSuccess:  gauge("platback_last_success_timestamp_seconds", "When the target's phase last succeeded (Unix time)."),
		duration:     gauge("platback_last_duration_seconds", "How long the target's phase took the last time."),
		bytesAdded:   gauge("platback_last_bytes_added", "Bytes the last backup of the target added to the repository (before compression)."),
		filesNew:     gauge("platback_last_files_new", "Files new in the last backup of the target."),
		filesChanged: gauge("platback_last_files_changed", "Files changed in the last backup of the target."),
		snapshots:    gauge("platback_snapshots", "Snapshots of the target in the repository after the last run."),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "platback_errors_total",
			Help: "Failed runs of the target's phase.", ConstLabels: c}, labels),
		nextRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: "platback_next_run_timestamp_seconds",
			Help: "When the next scheduled backup starts (Unix time).", ConstLabels: c}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "platback_runs_skipped_total",
			Help: "Scheduled runs skipped because the previous run was still going.", ConstLabels: c}),
		runLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "platback_run_last_success_timestamp_seconds",
			Help: "When a whole run last succeeded for every target (Unix time).", ConstLabels: c}),
		runLastDuration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "platback_run_last_duration_seconds",
			Help: "How long the last whole run took.", ConstLabels: c}),
		runOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "platback_run_last_ok",
			Help: "1 when every target of the last run succeeded, else 0; absent before the first run.", ConstLabels: c}, nil),
		runLast: prometheus.NewGauge(prometheus.GaugeOpts{Name: "platback_run_last_timestamp_seconds",
			Help: "When the last whole run ended, successful or not (Unix time); runs of `sidecar run-once` count too.", ConstLabels: c}),
		expiration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "platback_bucket_expiration_rules",
			Help: "Enabled lifecycle rules of the repository's S3 bucket that can expire (delete) the repository's objects; above 0 the repository will be destroyed. Absent while the configuration could not be read.", ConstLabels: c}, nil),
		lifecycleRead: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "platback_bucket_lifecycle_readable",
			Help: "1 when the bucket's lifecycle configuration was read (or the bucket has none), 0 when the credentials could not read it: expiration rules are then unknown.", ConstLabels: c}, nil),
		checkOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "platback_startup_check_ok",
			Help: "1 once the daemon's start-up check (credentials, S3 bucket, the repository opens) succeeded, 0 while it fails; it is retried until it succeeds.", ConstLabels: c}, nil),
		checkTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "platback_startup_check_timestamp_seconds",
			Help: "When the start-up check last ended (Unix time).", ConstLabels: c}),
		checkFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "platback_startup_check_failures_total",
			Help: "Failed attempts of the start-up check.", ConstLabels: c}),
		repoCheckOK: unlabelled("platback_check_last_ok",
			"1 when the last repository check (CHECK_CRON or `sidecar check`) passed, 0 when it failed: the repository may be damaged; absent before the first.", c),
		repoCheckLast: unlabelled("platback_check_last_timestamp_seconds",
			"When the last repository check ended, passed or not (Unix time).", c),
		repoCheckOKLast: unlabelled("platback_check_last_success_timestamp_seconds",
			"When a repository check last passed (Unix time).", c),
		repoCheckTook: unlabelled("platback_check_last_duration_seconds",
			"How long the last repository check took.", c),
		repoCheckPart: unlabelled("platback_check_read_data_part",
			"The part of the data the last repository check read (n of --read-data-subset n/t); 0 when it read a fixed subset or none.", c),
		repoCheckParts: unlabelled("platback_check_read_data_parts",
			"In how many parts the repository checks read the data (t of n/t, CHECK_READ_DATA_PARTS); 0 when the last check did not rotate.", c),
		repoCheckFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "platback_check_failures_total",
			Help: "Failed repository checks of CHECK_CRON and `sidecar check` since the sidecar started.", ConstLabels: c}),
		repoCheckSkip: prometheus.NewCounter(prometheus.CounterOpts{Name: "platback_checks_skipped_total",
			Help: "Scheduled repository checks skipped because the previous check was still going or waiting for a backup.", ConstLabels: c}),
		notifySent: prometheus.NewCounter(prometheus.CounterOpts{Name: "platback_notifications_sent_total",
			Help: "Notifications delivered, one per message and URL of NOTIFICATION_URLS; runs of `sidecar run-once` count too.", ConstLabels: c}),
		notifyFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "platback_notifications_failed_total",
			Help: "Notifications that could not be delivered after their retries, one per message and URL; the sidecar's log says why.", ConstLabels: c}),
		pingsSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "platback_health_pings_sent_total",
			Help: "Pings of HEALTHCHECK_URL delivered (start, success, fail).", ConstLabels: c}),
		pingsFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "platback_health_pings_failed_total",
			Help: "Pings of HEALTHCHECK_URL that failed after their retries; the sidecar's log says why.", ConstLabels: c}),
	}
	reg.MustRegister(m.errors, m.nextRun, m.skipped, m.runLastSuccess, m.runLastDuration, m.runOK, m.runLast,
		m.expiration, m.lifecycleRead, m.checkOK, m.checkTime, m.checkFailures,
		m.repoCheckOK, m.repoCheckLast, m.repoCheckOKLast, m.repoCheckTook, m.repoCheckPart, m.repoCheckParts,
		m.repoCheckFailed, m.repoCheckSkip,
		m.notifySent, m.notifyFailed, m.pingsSent, m.pingsFailed)
	m.verify = newVerifyMetrics(reg, c)
	m.copy = newCopyMetrics(reg, c)
	m.hooks = newHookMetrics(reg, c)
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "platback_build_info", Help: "platback and restic versions.",
		ConstLabels: prometheus.Labels{"project": project, "version": version, "restic_version": resticVersion}})
	info.Set(1)
	reg.MustRegister(info)
	return m
}

// Phase records one target's phase.
type Phase struct {
	Target, Kind, Phase string
	Start               time.Time
	Duration            time.Duration
	Err                 error
	BytesAdded          uint64
	FilesNew            uint64
	FilesChanged        uint64
	HasFiles            bool // the phase saved a snapshot (backup, dump)
	// Replayed marks a phase an earlier process already counted (the last
	// run, read back at start-up): gauges are set, counters are not.
	Replayed bool
}

// Record stores a phase's outcome.
func (m *Metrics) Record(p Phase) {
	l := prometheus.Labels{"target": p.Target, "kind": p.Kind, "phase": p.Phase}
	m.lastRun.With(l).Set(float64(p.Start.Unix()))
	m.duration.With(l).Set(p.Duration.Seconds())
	m.errors.With(l) // exists at 0 before the first failure
	if p.Err != nil {
		if !p.Replayed {
			m.errors.With(l).Inc()
		}
		return
	}
	m.lastSuccess.With(l).Set(float64(p.Start.Add(p.Duration).Unix()))
	if p.HasFiles {
		m.bytesAdded.With(l).Set(float64(p.BytesAdded))
		m.filesNew.With(l).Set(float64(p.FilesNew))
		m.filesChanged.With(l).Set(float64(p.FilesChanged))
	}
}

// Snapshots sets the snapshot count of a target.
func (m *Metrics) Snapshots(target, kind string, n int) {
	m.snapshots.With(prometheus.Labels{"target": target, "kind": kind, "phase": PhaseBackup}).Set(float64(n))
}

// Run records a whole run.
func (m *Metrics) Run(end time.Time, d time.Duration, ok bool) {
	m.runLast.Set(float64(end.Unix()))
	m.runLastDuration.Set(d.Seconds())
	if ok {
		m.runOK.WithLabelValues().Set(1)
		m.runLastSuccess.Set(float64(end.Unix()))
	} else {
		m.runOK.WithLabelValues().Set(0)
	}
}

// Lifecycle records what the lifecycle check of the repository's S3 bucket
// found: how many rules can expire the repository's objects, or, when
// readErr is not nil, that the configuration could not be read (the rule
// count is then dropped rather than reported as 0). The two metrics exist
// once a check of an S3 repository happened.
func (m *Metrics) Lifecycle(expiring int, readErr error) {
	if readErr != nil {
		m.lifecycleRead.WithLabelValues().Set(0)
		m.expiration.Reset()
		return
	}
	m.lifecycleRead.WithLabelValues().Set(1)
	m.expiration.WithLabelValues().Set(float64(expiring))
}

// StartupCheck records one attempt of the daemon's start-up check.
func (m *Metrics) StartupCheck(end time.Time, err error) {
	m.checkTime.Set(float64(end.Unix()))
	if err != nil {
		m.checkOK.WithLabelValues().Set(0)
		m.checkFailures.Inc()
		return
	}
	m.checkOK.WithLabelValues().Set(1)
}

// unlabelled is a gauge without labels that is absent until set.
func unlabelled(name, help string, c prometheus.Labels) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: c}, nil)
}

// Check is one repository check (CHECK_CRON's or `sidecar check`'s).
type Check struct {
	End      time.Time
	Duration time.Duration
	Err      error
	// Part of Parts is the part of the data it read; 0 when it did not
	// rotate.
	Part, Parts int
	// LastSuccess, when not zero, is when a check last passed (a failed
	// check read back at start-up).
	LastSuccess time.Time
	// Replayed marks a check an earlier process already counted: gauges
	// are set, counters are not.
	Replayed bool
}

// Check records a repository check.
func (m *Metrics) Check(c Check) {
	m.repoCheckLast.WithLabelValues().Set(float64(c.End.Unix()))
	m.repoCheckTook.WithLabelValues().Set(c.Duration.Seconds())
	m.repoCheckPart.WithLabelValues().Set(float64(c.Part))
	m.repoCheckParts.WithLabelValues().Set(float64(c.Parts))
	if !c.LastSuccess.IsZero() {
		m.repoCheckOKLast.WithLabelValues().Set(float64(c.LastSuccess.Unix()))
	}
	if c.Err != nil {
		m.repoCheckOK.WithLabelValues().Set(0)
		if !c.Replayed {
			m.repoCheckFailed.Inc()
		}
		return
	}
	m.repoCheckOK.WithLabelValues().Set(1)
	m.repoCheckOKLast.WithLabelValues().Set(float64(c.End.Unix()))
}

// CheckSkipped counts a skipped scheduled repository check.
func (m *Metrics) CheckSkipped() { m.repoCheckSkip.Inc() }

// Delivered counts notifications and health pings sent and failed.
func (m *Metrics) Delivered(notifySent, notifyFailed, pingsSent, pingsFailed int) {
	m.notifySent.Add(float64(notifySent))
	m.notifyFailed.Add(float64(notifyFailed))
	m.pingsSent.Add(float64(pingsSent))
	m.pingsFailed.Add(float64(pingsFailed))
}

// NextRun sets the next scheduled run.
func (m *Metrics) NextRun(t time.Time) { m.nextRun.Set(float64(t.Unix())) }

// Skipped counts a skipped scheduled run.
func (m *Metrics) Skipped() { m.skipped.Inc() }

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
