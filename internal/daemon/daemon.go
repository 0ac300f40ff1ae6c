// Package daemon is `sidecar run`: backups on the schedule (never two at
// once), scheduled retention and repository checks (rotating through the
// data), a start-up check retried until it passes, and
// the /metrics and /healthz endpoints, which also reflect the runs of
// `sidecar run-once` in the same container (the last-run file).
package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/internal/notify"
	"github.com/platback/platback/internal/runlock"
	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/schedule"
)

// ShutdownGrace is how long a running backup gets to stop after SIGTERM
// (restic is interrupted, stopped containers are restarted).
const ShutdownGrace = 60 * time.Second

// Defaults of Options.
const (
	DefaultCheckRetry   = time.Minute
	DefaultCheckTimeout = 5 * time.Minute
)

// Daemon is what `sidecar run` needs.
type Daemon struct {
	Config  config.Config
	Runner  *runner.Runner
	Self    func(context.Context) (discover.Identity, error) // the sidecar's own container
	Version string                                           // platback's, for platback_build_info
	Log     *slog.Logger
	// Report receives each scheduled run's result table (default: stderr).
	Report func(io.Writer, runner.Result)
	// Alerts send the runs' health pings and notifications, the stale
	// backup's and the failing start-up check's (see NewAlerts); its Stack
	// is filled in at start-up.
	Alerts Alerts
	Options
}

// Options tune the daemon; zero values are the defaults.
type Options struct {
	// CheckRetry is how long to wait before retrying a failed start-up check.
	CheckRetry time.Duration
	// CheckTimeout bounds one attempt of the start-up check.
	CheckTimeout time.Duration
}

// Run runs the daemon until ctx ends (SIGTERM), then stops any running
// backup cleanly within ShutdownGrace.
func (dm *Daemon) Run(ctx context.Context) error {
	o := dm.Options
	if o.CheckRetry <= 0 {
		o.CheckRetry = DefaultCheckRetry
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	// Restart what a killed sidecar had stopped, unless a run-once is busy.
	if err := dm.Runner.Exclusive(ctx, false, func() error { return nil }); err != nil && !errors.Is(err, runlock.ErrBusy) {
		return err
	}
	self, err := dm.Self(ctx)
	if err != nil {
		return err
	}
	project := self.Project
	if len(dm.Config.Projects) > 0 {
		project = dm.Config.Projects[0]
	}
	// restic missing or of an unsupported version: say so at start-up.
	resticVersion, err := backup.ResticVersion(ctx, dm.Config.Restic)
	if err != nil {
		return err
	}
	m := metrics.New(project, dm.Version, resticVersion)
	dm.Runner.Metrics = m
	dm.Alerts.Stack = notify.Stack{Project: project, Container: self.ContainerName}
	if dm.Alerts.Log == nil {
		dm.Alerts.Log = dm.Log
	}
	d := &daemon{a: dm, m: m, health: &healthState{started: time.Now(), factor: dm.Config.HealthFactor, checkRetry: o.CheckRetry}}
	if loc, err := backup.ParseLocation(dm.Config.Repository); err == nil {
		d.s3 = loc.Kind == "s3"
	}
	d.refresh(true) // the last run before this start, if any

	scheds, err := dm.schedulers(d, project)
	if err != nil {
		return err
	}
	srv := d.serve()
	var checking sync.WaitGroup
	checking.Go(func() { d.checkUntilOK(ctx, o) })
	for _, s := range scheds {
		s.Start()
	}
	next, _ := scheds[0].NextRun()
	m.NextRun(next)
	dm.Log.Info("sidecar started", "project", project, "schedule", scheds[0].Timetable().String(), "next_run", next, "found_by", self.FoundBy)
	if d.checkSched != nil {
		next, _ := d.checkSched.NextRun()
		dm.Log.Info("repository checks scheduled", "check_cron", dm.Config.CheckCron, "next_check", next, "read_data_parts", dm.Config.CheckParts)
	}
	if d.verifySched != nil {
		next, _ := d.verifySched.NextRun()
		dm.Log.Info("restore drills scheduled", "verify_cron", dm.Config.VerifyCron, "next_verify", next)
	}

	// Runs of `sidecar run-once` reach /metrics and /healthz when they are
	// asked; this also keeps the metrics fresh for a scraper that asks
	// rarely.
	ticker := time.NewTicker(30 * time.Second)
	defer ticker.Stop()
	for ctx.Err() == nil {
		select {
		case <-ticker.C:
			d.refresh(false)
			d.staleAlert(ctx, time.Now())
		case <-ctx.Done():
		}
	}

	dm.Log.Info("stopping: cancelling any running backup", "grace", ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	for _, s := range scheds {
		err = errors.Join(err, s.Shutdown(sctx))
	}
	if srv != nil {
		_ = srv.Shutdown(sctx)
	}
	checking.Wait()
	dm.Log.Info("stopped")
	return err
}

// schedulers returns the backup scheduler, the retention scheduler when
// RETENTION_CRON is set and the check scheduler when CHECK_CRON is.
func (dm *Daemon) schedulers(d *daemon, project string) ([]*schedule.Scheduler, error) {
	spec := dm.Config.Schedule
	spec.Name = project
	job := func(ctx context.Context) error {
		res, err := Backup(ctx, dm.Runner, dm.Alerts, "daemon", true, func(res runner.Result, dl Delivery) {
			d.ownRun(res)
			d.delivered(dl)
		})
		if err != nil {
			return err
		}
		if dm.Report != nil {
			dm.Report(os.Stderr, res)
		}
		if !res.OK() {
			return errors.New("backup run failed")
		}
		return nil
	}
	var sched *schedule.Scheduler
	nextRun := func() {
		if next, err := sched.NextRun(); err == nil {
			d.m.NextRun(next)
		}
	}
	sched, err := schedule.New(spec, job, schedule.WithLogger(dm.Log),
		schedule.OnRunEnd(func(schedule.RunInfo) { nextRun() }),
		schedule.OnSkip(func(due time.Time) {
			d.m.Skipped()
			dm.Log.Warn("previous run still going: skipped the run due", "due", due)
			nextRun()
		}))
	if err != nil {
		return nil, err
	}
	d.health.table = sched.Timetable()
	scheds := []*schedule.Scheduler{sched}
	if dm.Config.RetentionCron != "" {
		retention, err := schedule.New(schedule.Spec{Cron: dm.Config.RetentionCron, TZ: spec.TZ}, func(ctx context.Context) error {
			return runRetention(ctx, dm)
		}, schedule.WithLogger(dm.Log))
		if err != nil {
			return nil, err
		}
		scheds = append(scheds, retention)
	}
	if dm.Config.CheckCron != "" {
		// Its own guard skips a check due while the last is still going
		// (or waiting for a backup to end).
		check, err := schedule.New(schedule.Spec{Cron: dm.Config.CheckCron, TZ: spec.TZ}, d.scheduledCheck,
			schedule.WithLogger(dm.Log),
			schedule.OnSkip(func(due time.Time) {
				d.m.CheckSkipped()
				dm.Log.Warn("previous repository check still going: skipped the check due", "due", due)
			}))
		if err != nil {
			return nil, err
		}
		scheds = append(scheds, check)
		d.checkSched = check
	}
	if dm.Config.VerifyCron != "" {
		verify, err := schedule.New(schedule.Spec{Cron: dm.Config.VerifyCron, TZ: spec.TZ}, d.scheduledVerify,
			schedule.WithLogger(dm.Log),
			schedule.OnSkip(func(due time.Time) {
				dm.Log.Warn("previous restore drill still going: skipped the drill due", "due", due)
			}))
		if err != nil {
			return nil, err
		}
		scheds = append(scheds, verify)
		d.verifySched = verify
	}
	return scheds, nil
}

// serve starts the /metrics and /healthz endpoint on METRICS_LISTEN (nil
// when it is off).
func (d *daemon) serve() *http.Server {
	if d.a.Config.Listen == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.fresh(d.m.Handler()))
	mux.Handle("/healthz", d.fresh(d.health))
	srv := &http.Server{Addr: d.a.Config.Listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.a.Log.Error("metrics endpoint failed", "addr", d.a.Config.Listen, "err", err)
		}
	}()
	return srv
}

// daemon is what the daemon knows and exports: its metrics and health,
// updated by its own runs, by the runs of `sidecar run-once` (read back from
// the last-run file) and by the start-up check.
type daemon struct {
	a      *Daemon
	m      *metrics.Metrics
	health *healthState

	mu      sync.Mutex
	applied time.Time   // start of the newest run applied to metrics and health
	seen    os.FileInfo // the last-run file as last read
	s3      bool        // the repository is on S3: the bucket's lifecycle metrics apply
	// staleSince is the last success (or start) whose staleness was
	// notified: once per stale period, not at every tick.
	staleSince time.Time
	staleSent  bool
	// checkApplied is the start of the newest repository check applied
	// to the metrics (CHECK_CRON's or `sidecar check`'s).
	checkApplied time.Time
	// verifyApplied is the start of the newest restore drill applied to
	// the metrics (VERIFY_CRON's or `sidecar verify`'s).
	verifyApplied time.Time
	// checkSched and verifySched are CHECK_CRON's and VERIFY_CRON's
	// schedulers (nil when off).
	checkSched, verifySched *schedule.Scheduler
}

// delivered counts a run's notifications and pings.
func (d *daemon) delivered(dl Delivery) {
	d.m.Delivered(dl.NotificationsSent, dl.NotificationsFailed, dl.PingsSent, dl.PingsFailed)
}

// staleAlert notifies once when the last success has become older than
// the health check allows, and again only after a new success went stale.
func (d *daemon) staleAlert(ctx context.Context, now time.Time) {
	st, ok := d.health.stale(now)
	if !ok {
		return
	}
	d.mu.Lock()
	if d.staleSent && d.staleSince.Equal(st.since) {
		d.mu.Unlock()
		return
	}
	d.staleSent, d.staleSince = true, st.since
	d.mu.Unlock()
	if !st.since.IsZero() {
		// A restarted daemon must not notify the same stale period again.
		if err := writeJSON(d.a.Config.CacheDir, StaleName, staleState{Notified: st.since}); err != nil {
			d.a.Log.Warn("could not record the stale notification", "err", err)
		}
	}
	d.a.Log.Warn("the last success is older than the schedule allows", "last_success", st.lastSuccess, "max_age", st.maxAge)
	m := notify.StaleMessage(d.a.Alerts.Stack, st.lastSuccess, st.started, st.maxAge, st.lastErr)
	d.delivered(d.a.Alerts.notify(ctx, m))
}

// StaleName is the file in the cache directory that remembers the last
// success whose staleness was notified, across restarts.
const StaleName = "platback-stale.json"

type staleState struct {
	Notified time.Time `json:"notified_stale_since"`
}

// loadStale reads which stale period was notified before this start.
func (d *daemon) loadStale() {
	var st staleState
	found, err := readJSON(d.a.Config.CacheDir, StaleName, &st)
	if err != nil {
		d.a.Log.Warn("could not read the stale notification record", "err", err)
	}
	if found && !st.Notified.IsZero() {
		d.mu.Lock()
		d.staleSent, d.staleSince = true, st.Notified
		d.mu.Unlock()
	}
}

// ownRun applies a run of the daemon itself: the runner recorded its
// metrics already. It is marked as applied before the file is written, so
// refresh never counts it twice.
func (d *daemon) ownRun(res runner.Result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if res.Start.After(d.applied) {
		d.applied = res.Start
	}
	d.health.finished(res)
	d.lifecycleFromRun(res)
	d.runProvesCheck(res)
}

// runProvesCheck ends a failing start-up check when a run succeeded: it
// got through everything the check looks at.
func (d *daemon) runProvesCheck(res runner.Result) {
	if res.OK() && !d.health.checkPassed() {
		end := res.Start.Add(res.Duration)
		d.health.checked(end, nil)
		d.m.StartupCheck(end, nil)
		d.a.Log.Info("a successful run ended the start-up check")
	}
}

// fresh makes h see the latest run before it answers.
func (d *daemon) fresh(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.refresh(false)
		h.ServeHTTP(w, r)
	})
}

// refresh applies the last-run file when it holds a run newer than any
// applied yet: a `sidecar run-once` in this container, or (at start-up,
// replayed) the last run before this daemon started.
func (d *daemon) refresh(startup bool) {
	if startup {
		d.loadStale()
	}
	d.refreshCheck(startup)
	d.refreshVerify(startup)
	path := filepath.Join(d.a.Config.CacheDir, LastRunName)
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen != nil && fi.ModTime().Equal(d.seen.ModTime()) && fi.Size() == d.seen.Size() {
		return
	}
	lr, ok, err := LoadLastRun(d.a.Config.CacheDir)
	if err != nil {
		d.a.Log.Warn("could not read the last run's result", "err", err)
	}
	if !ok {
		return
	}
	d.seen = fi
	res := lr.Result
	if !res.Start.After(d.applied) {
		return
	}
	d.applied = res.Start
	end := res.Start.Add(res.Duration)
	for _, t := range res.Targets {
		phase := metrics.PhaseDump
		if t.Kind == string(discover.KindVolume) {
			phase = metrics.PhaseBackup
		}
		// Targets ran one after the other within the run; their own start
		// times are not in the result, the run's start stands for them.
		d.m.Record(metrics.Phase{Target: t.Path, Kind: t.Kind, Phase: phase, Start: res.Start, Duration: t.Duration, Err: t.Err,
			BytesAdded: t.BytesAdded, FilesNew: t.FilesNew, FilesChanged: t.Changed, HasFiles: true, Replayed: startup})
	}
	for _, h := range res.Hooks {
		d.m.Hook(metrics.Hook{Service: h.Service, Stage: h.Stage, Duration: h.Duration, Failed: h.Error != "", Replayed: startup})
	}
	if c := res.Copy; c != nil {
		d.m.Copy(metrics.Copy{End: end, Duration: c.Duration, Err: c.Err, Snapshots: c.Snapshots, LastSuccess: lr.LastCopySuccess, Replayed: startup})
	}
	d.m.Run(end, res.Duration, res.OK())
	d.health.finished(res)
	d.health.succeededAt(lr.LastSuccess)
	d.lifecycleFromRun(res)
	if !startup {
		d.delivered(lr.Delivery) // a run-once's notifications and pings
	}
	if startup {
		d.a.Log.Info("last run before this start", "by", lr.By, "start", res.Start, "ok", res.OK(), "last_success", lr.LastSuccess)
	} else {
		d.a.Log.Info("applied a run of "+lr.By, "start", res.Start, "ok", res.OK(), "targets", len(res.Targets))
		d.runProvesCheck(res)
	}
}

// lifecycleFromRun sets the bucket metrics from a run's warnings, when the
// run got past EnsureRepo (it then has projects) on an S3 repository; d.mu
// is held.
func (d *daemon) lifecycleFromRun(res runner.Result) {
	if len(res.Projects) == 0 {
		return
	}
	expiring := 0
	var unreadable error
	for _, w := range res.Warnings {
		switch {
		case strings.HasPrefix(w, backup.WarnExpirationRule):
			expiring++
		case strings.HasPrefix(w, backup.WarnLifecycleUnreadable):
			unreadable = errors.New(w)
		}
	}
	if expiring > 0 || unreadable != nil {
		d.s3 = true
	}
	if d.s3 {
		d.m.Lifecycle(expiring, unreadable)
	}
}

// checkUntilOK runs the start-up check until it succeeds, a run succeeds
// (which proves the same) or the daemon stops.
func (d *daemon) checkUntilOK(ctx context.Context, o Options) {
	for attempt := 1; !d.health.checkPassed(); attempt++ {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, o.CheckTimeout)
		probe, err := d.check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		end := time.Now()
		if d.health.checkPassed() {
			return // a run succeeded meanwhile
		}
		d.health.checked(end, err)
		d.m.StartupCheck(end, err)
		took := end.Sub(start).Round(time.Millisecond)
		if err != nil {
			d.a.Log.Error("start-up check failed: the next run will fail the same way unless this is fixed; retrying",
				"attempt", attempt, "err", err, "took", took, "retry_in", o.CheckRetry)
			if attempt == 1 { // once: it is retried every CheckRetry
				d.delivered(d.a.Alerts.notify(ctx, notify.StartupCheckMessage(d.a.Alerts.Stack, err.Error())))
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(o.CheckRetry):
			}
			continue
		}
		attrs := []any{"attempt", attempt, "took", took}
		if probe.BucketMissing {
			attrs = append(attrs, "bucket", "missing: the first run creates it")
		}
		if probe.RepoMissing {
			attrs = append(attrs, "repository", "not initialised yet: the first run initialises it")
		}
		d.a.Log.Info("start-up check passed: credentials, S3 and the repository are usable", attrs...)
		return
	}
}

// check is one attempt of the start-up check: the credentials (a Vault
// login and read), the plan (the Docker engine), then backup.Repo.Probe: the
// bucket, its lifecycle rules and `restic cat config`, creating nothing.
func (d *daemon) check(ctx context.Context) (backup.ProbeResult, error) {
	// Shared: the check does not hold the run lock, so it must leave the
	// locks of a run in progress alone.
	s, _, err := d.a.Runner.Open(ctx, runner.OpenOptions{Shared: true})
	if err != nil {
		return backup.ProbeResult{}, err
	}
	probe, err := s.Repo.Probe(ctx)
	if err != nil {
		return probe, err
	}
	loc, _ := backup.ParseLocation(s.URL)
	d.mu.Lock()
	d.s3 = loc.Kind == "s3"
	if d.s3 && !probe.BucketMissing {
		d.m.Lifecycle(len(probe.ExpirationRules), probe.LifecycleErr)
	}
	d.mu.Unlock()
	return probe, nil
}

// runRetention applies the policy to every target on its own schedule,
// under the run lock: it never prunes while a backup or restore runs.
func runRetention(ctx context.Context, a *Daemon) error {
	return a.Runner.Exclusive(ctx, true, func() error {
		s, _, err := a.Runner.Open(ctx, runner.OpenOptions{})
		if err != nil {
			return err
		}
		errs := a.Runner.Retention(ctx, s, s.Plan.Targets)
		if err := a.Runner.CopyRetention(ctx, s, s.Plan.Targets); err != nil {
			errs = append(errs, err.Error())
		}
		if len(errs) > 0 {
			return errors.New("retention failed for: " + strings.Join(errs, "; "))
		}
		return nil
	})
}
