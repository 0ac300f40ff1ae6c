package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/runlock"
	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/internal/stopstate"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/vaultcreds"
)

// RETENTION_CRON's job must never prune while a backup or restore of this
// sidecar runs: it waits for the run lock.
func TestScheduledRetentionTakesTheRunLock(t *testing.T) {
	cli := dockerbed.Client(t) // the runner talks to the engine
	cache := t.TempDir()
	env := map[string]string{
		"RESTIC_REPOSITORY": filepath.Join(t.TempDir(), "repo"), "RESTIC_PASSWORD": "retention-lock",
		"PLATBACK_PROJECT": dockerbed.UniqueName("retlock"), "PLATBACK_CACHE_DIR": cache,
		"PLATBACK_RESTIC": testbed.Tool(t, "restic"), "METRICS_LISTEN": config.Off,
	}
	cfg, err := config.Load(func(name string) string { return env[name] })
	require.NoError(t, err)
	creds, err := vaultcreds.NewSource(cfg.Credentials)
	require.NoError(t, err)
	disc, err := discover.New(cli, discover.Options{Self: discover.SelfOptions{Project: cfg.Project, MountInfoPath: "/nonexistent", Hostname: "laptop"}}) // the test runs on the host: its mounts and name must not make a running container "the sidecar"
	require.NoError(t, err)
	log := slog.New(slog.DiscardHandler)
	rn := &runner.Runner{Config: cfg, Docker: cli, Discover: disc, Creds: creds, Restic: cfg.Restic,
		Stops: stopstate.Open(filepath.Join(cache, "stopped.json")), Lock: runlock.New(cache), Log: log}
	a := &Daemon{Config: cfg, Runner: rn, Log: log}
	ctx := context.Background()

	run := flock.New(filepath.Join(cache, runlock.FileName))
	locked, err := run.TryLock()
	require.NoError(t, err)
	require.True(t, locked)
	done := make(chan error, 1)
	go func() { done <- runRetention(ctx, a) }()
	select {
	case err := <-done:
		t.Fatalf("retention ran while a run held the lock (err %v)", err)
	case <-time.After(3 * time.Second):
	}
	require.NoError(t, run.Unlock())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("retention did not run once the lock was free")
	}
}
