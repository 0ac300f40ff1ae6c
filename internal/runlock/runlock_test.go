package runlock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	a, b := New(dir), New(dir)
	inside := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.Do(context.Background(), false, func() error {
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	err := b.Do(context.Background(), false, func() error { t.Error("ran while the lock was held"); return nil })
	require.ErrorIs(t, err, ErrBusy)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = b.Do(ctx, true, func() error { t.Error("ran while the lock was held"); return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded, "a waiting caller gives up with its context")

	waited := make(chan error, 1)
	go func() { waited <- b.Do(context.Background(), true, func() error { return errors.New("ran") }) }()
	time.Sleep(100 * time.Millisecond)
	close(release)
	require.NoError(t, <-done)
	assert.EqualError(t, <-waited, "ran", "a waiting caller runs once the lock is free")
}

func TestLockNamesABadDirectory(t *testing.T) {
	err := New("/proc/no-such-place/cache").Do(context.Background(), false, func() error { return nil })
	require.ErrorContains(t, err, `PLATBACK_CACHE_DIR="/proc/no-such-place/cache"`)
}
