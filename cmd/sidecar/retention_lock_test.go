package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// RETENTION_CRON's job must never prune while a backup or restore of this
// sidecar runs: it waits for the run lock.
func TestScheduledRetentionTakesTheRunLock(t *testing.T) {
	dockerbed.Client(t) // the sidecar talks to the engine
	cache := t.TempDir()
	t.Setenv("RESTIC_REPOSITORY", filepath.Join(t.TempDir(), "repo"))
	t.Setenv("RESTIC_PASSWORD", "retention-lock")
	t.Setenv("PLATBACK_PROJECT", dockerbed.UniqueName("retlock"))
	t.Setenv("PLATBACK_CACHE_DIR", cache)
	t.Setenv("PLATBACK_RESTIC", testbed.Tool(t, "restic"))
	t.Setenv("METRICS_LISTEN", "")
	ctx := context.Background()
	a, err := newApp(ctx)
	require.NoError(t, err)
	defer a.close(ctx)

	run := flock.New(filepath.Join(cache, "platback-run.lock"))
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
