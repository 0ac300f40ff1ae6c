package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/schedule"
)

// shutdownGrace is how long a running backup gets to stop after SIGTERM
// (restic is interrupted, stopped containers are restarted).
const shutdownGrace = 60 * time.Second

func newRunCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run as the stack's backup daemon: scheduled backups, /metrics and /healthz",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, runDaemon)
		},
	}
}

func runDaemon(ctx context.Context, a *app) error {
	// Restart what a killed sidecar had stopped, unless a run-once is busy.
	if err := a.exclusive(ctx, false, func() error { return nil }); err != nil && !errors.Is(err, errBusy) {
		return err
	}
	self, err := a.disc.Self(ctx)
	if err != nil {
		return err
	}
	project := self.Project
	if len(a.cfg.Projects) > 0 {
		project = a.cfg.Projects[0]
	}
	spec := a.cfg.Schedule
	spec.Name = project

	// restic missing or of an unsupported version: say so at start-up.
	resticVersion, err := backup.ResticVersion(ctx, a.cfg.Restic)
	if err != nil {
		return err
	}
	m := metrics.New(project, version, resticVersion)
	a.runner.Metrics = m
	health := &healthState{started: time.Now(), factor: a.cfg.HealthFactor}

	job := func(ctx context.Context) error {
		var res runner.Result
		if err := a.exclusive(ctx, true, func() error { res = a.runner.Run(ctx); return nil }); err != nil {
			return err
		}
		health.finished(res)
		printResult(os.Stderr, res)
		if !res.OK() {
			return errors.New("backup run failed")
		}
		return nil
	}
	sched, err := schedule.New(spec, job, schedule.WithLogger(a.log),
		schedule.OnSkip(func(due time.Time) {
			m.Skipped()
			a.log.Warn("previous run still going: skipped the run due", "due", due)
		}))
	if err != nil {
		return err
	}
	health.table = sched.Timetable()
	var retention *schedule.Scheduler
	if a.cfg.RetentionCron != "" {
		retention, err = schedule.New(schedule.Spec{Cron: a.cfg.RetentionCron, TZ: spec.TZ}, func(ctx context.Context) error {
			return runRetention(ctx, a)
		}, schedule.WithLogger(a.log))
		if err != nil {
			return err
		}
	}

	var srv *http.Server
	if a.cfg.Listen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		mux.Handle("/healthz", health)
		srv = &http.Server{Addr: a.cfg.Listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("metrics endpoint failed", "addr", a.cfg.Listen, "err", err)
			}
		}()
	}

	sched.Start()
	if retention != nil {
		retention.Start()
	}
	next, _ := sched.NextRun()
	m.NextRun(next)
	a.log.Info("sidecar started", "project", project, "schedule", sched.Timetable().String(), "next_run", next, "found_by", self.FoundBy)
	ticker := time.NewTicker(30 * time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			if next, err := sched.NextRun(); err == nil {
				m.NextRun(next)
			}
			continue
		case <-ctx.Done():
		}
		break
	}

	a.log.Info("stopping: cancelling any running backup", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = sched.Shutdown(sctx)
	if retention != nil {
		err = errors.Join(err, retention.Shutdown(sctx))
	}
	if srv != nil {
		_ = srv.Shutdown(sctx)
	}
	a.log.Info("stopped")
	return err
}

// runRetention applies the policy to every target on its own schedule,
// under the run lock: it never prunes while a backup or restore runs.
func runRetention(ctx context.Context, a *app) error {
	return a.exclusive(ctx, true, func() error {
		s, _, err := a.runner.Open(ctx, runner.OpenOptions{})
		if err != nil {
			return err
		}
		if errs := a.runner.Retention(ctx, s, s.Plan.Targets); len(errs) > 0 {
			return errors.New("retention failed for: " + strings.Join(errs, "; "))
		}
		return nil
	})
}
