package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/daemon"
	"github.com/platback/platback/internal/notify"
	"github.com/platback/platback/internal/runlock"
	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/internal/stopstate"
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
	cfg, err := config.Load(config.Env(os.LookupEnv))
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(os.Stderr, cfg)
	// Packages that log through slog's default (dbengine) then log in the
	// sidecar's format and level too.
	slog.SetDefault(log)
	creds, err := vaultcreds.NewSource(cfg.Credentials, vaultcreds.WithLogger(log))
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
		Stops: stopstate.Open(cfg.CacheDir + "/platback-stopped.json"), Lock: runlock.New(cfg.CacheDir), Log: log,
	}
	return a, nil
}

// alerts are the health pings and notifications of the configuration,
// naming the sidecar's own stack and container.
func (a *app) alerts(ctx context.Context) (daemon.Alerts, error) {
	al, err := daemon.NewAlerts(a.cfg, a.log)
	if err != nil {
		return al, err
	}
	al.Stack = notify.Stack{Project: a.cfg.Project}
	if self, err := a.disc.Self(ctx); err == nil {
		al.Stack = notify.Stack{Project: self.Project, Container: self.ContainerName}
	}
	return al, nil
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
		return a.runner.Exclusive(ctx, false, func() error {
			s, _, err := a.runner.Open(ctx, runner.OpenOptions{})
			if err != nil {
				return err
			}
			return fn(ctx, a, s)
		})
	})
}
