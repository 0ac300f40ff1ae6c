package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/internal/stopstate"
	"github.com/platback/platback/internal/worker"
	"github.com/platback/platback/vaultcreds"
)

// app is the wiring every command shares.
type app struct {
	cfg    config.Config
	log    *slog.Logger
	docker *client.Client
	disc   *discover.Discoverer
	runner *runner.Runner
}

// newApp checks the whole configuration first: a bad variable stops the
// sidecar at start-up with a message naming it.
func newApp(ctx context.Context) (*app, error) {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(os.Stderr, cfg)
	creds, err := vaultcreds.SourceFromEnv(os.Getenv, vaultcreds.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	docker, err := discover.NewClient()
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	opts := discover.Options{
		LabelPrefix: cfg.LabelPrefix, Projects: cfg.Projects, ExcludeBinds: cfg.ExcludeBinds,
		Self: discover.SelfOptions{Project: cfg.Project, Container: cfg.Container},
	}
	disc, err := discover.New(docker, opts)
	if err != nil {
		return nil, err
	}
	opts.IncludeStopped = true
	discAll, err := discover.New(docker, opts)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, docker: docker, disc: disc}
	a.runner = &runner.Runner{
		Config: cfg, Docker: docker, Discover: disc, DiscoverAll: discAll, Creds: creds, Restic: cfg.Restic, Exe: exe,
		Stops: stopstate.Open(cfg.CacheDir + "/platback-stopped.json"), Log: log,
	}
	return a, nil
}

// errBusy: another process of this sidecar holds the run lock.
var errBusy = errors.New("another backup run of this sidecar is in progress; try again when it has ended")

// exclusive runs fn holding the run lock, a file lock in the cache volume
// shared by the daemon and run-once (the kernel releases it when its holder
// dies). Under the lock, what a killed run left behind is cleaned up first:
// no other run can still be using it. With wait, it waits for the lock;
// otherwise it returns errBusy at once.
func (a *app) exclusive(ctx context.Context, wait bool, fn func() error) error {
	if err := os.MkdirAll(a.cfg.CacheDir, 0o700); err != nil {
		return fmt.Errorf("PLATBACK_CACHE_DIR=%q: %w", a.cfg.CacheDir, err)
	}
	path := filepath.Join(a.cfg.CacheDir, "platback-run.lock")
	l := flock.New(path)
	var ok bool
	var err error
	if wait {
		ok, err = l.TryLockContext(ctx, time.Second)
	} else {
		ok, err = l.TryLock()
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("run lock %s: %w", path, err)
	case !ok:
		return errBusy
	}
	defer l.Unlock()
	a.cleanLeftovers(ctx)
	return fn()
}

// cleanLeftovers restarts containers a killed run had stopped and removes
// the worker containers it left behind: only this sidecar's own (labelled
// with its identity), never another sidecar's, and only under the run lock,
// when none of this sidecar's runs or restores can be using them.
func (a *app) cleanLeftovers(ctx context.Context) {
	restarted, err := a.runner.Stops.RestartAll(ctx, a.docker)
	for _, c := range restarted {
		a.log.Warn("restarted a container a previous run had stopped", "container", c.Name, "stopped_at", c.StoppedAt)
	}
	if err != nil {
		a.log.Error("could not restart containers a previous run had stopped", "err", err)
	}
	identity, err := a.runner.Identity(ctx)
	if err != nil {
		a.log.Warn("could not look for leftover worker containers", "err", err)
		return
	}
	list, err := a.docker.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", worker.SidecarLabel+"="+identity)})
	if err != nil {
		a.log.Warn("could not list leftover worker containers", "err", err)
		return
	}
	for _, c := range list.Items {
		if c.State == "running" {
			// Its sidecar is gone (we hold the run lock): a worker notices
			// that and stops on its own; one that has not yet gets the
			// stop grace, so its restic removes its lock.
			grace := int(a.cfg.StopTimeout / time.Second)
			_, _ = a.docker.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &grace})
		}
		if _, err := a.docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			a.log.Warn("could not remove a leftover worker container", "container", c.ID[:12], "err", err)
			continue
		}
		a.log.Warn("removed a worker container a previous run left behind", "container", c.ID[:12])
	}
}

func (a *app) close(ctx context.Context) {
	if err := a.runner.Creds.Close(ctx); err != nil {
		a.log.Warn("closing the credentials source", "err", err)
	}
	a.docker.Close()
}

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// withApp runs fn with the wired app and closes it afterwards (revoking a
// Vault token), also when ctx was cancelled.
func withApp(cmd *cobra.Command, fn func(ctx context.Context, a *app) error) error {
	ctx := cmd.Context()
	a, err := newApp(ctx)
	if err != nil {
		return err
	}
	defer a.close(context.WithoutCancel(ctx))
	return fn(ctx, a)
}

// withSession is withApp with the repository opened (never created),
// without the run lock: for commands that only read.
func withSession(cmd *cobra.Command, fn func(ctx context.Context, a *app, s *runner.Session) error) error {
	return withApp(cmd, func(ctx context.Context, a *app) error {
		s, _, err := a.runner.Open(ctx, runner.OpenOptions{Shared: true})
		if err != nil {
			return err
		}
		return fn(ctx, a, s)
	})
}

// withLockedSession is withSession holding the run lock (refused while a
// run is going), after the leftovers of a killed run are cleaned up.
func withLockedSession(cmd *cobra.Command, fn func(ctx context.Context, a *app, s *runner.Session) error) error {
	return withApp(cmd, func(ctx context.Context, a *app) error {
		return a.exclusive(ctx, false, func() error {
			s, _, err := a.runner.Open(ctx, runner.OpenOptions{})
			if err != nil {
				return err
			}
			return fn(ctx, a, s)
		})
	})
}
