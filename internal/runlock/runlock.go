// Package runlock is the lock that makes a sidecar's runs, restores,
// checks and scheduled retention exclusive: a file lock in the cache
// volume, shared by the daemon and the commands run in the same container
// (`sidecar run-once`, `restore`…), released by the kernel when its holder
// dies.
package runlock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// ErrBusy: another process of this sidecar holds the lock.
var ErrBusy = errors.New("another backup run of this sidecar is in progress; try again when it has ended")

// FileName is the lock file's name in the cache directory.
const FileName = "platback-run.lock"

// Lock is the run lock of one cache directory.
type Lock struct{ dir string }

// New returns the run lock kept in dir (PLATBACK_CACHE_DIR).
func New(dir string) *Lock { return &Lock{dir: dir} }

// Do runs fn holding the lock. With wait it waits for the lock (until ctx
// ends); otherwise it returns ErrBusy at once when another process holds it.
func (l *Lock) Do(ctx context.Context, wait bool, fn func() error) error {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return fmt.Errorf("PLATBACK_CACHE_DIR=%q: %w", l.dir, err)
	}
	path := filepath.Join(l.dir, FileName)
	fl := flock.New(path)
	var ok bool
	var err error
	if wait {
		ok, err = fl.TryLockContext(ctx, time.Second)
	} else {
		ok, err = fl.TryLock()
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("run lock %s: %w", path, err)
	case !ok:
		return ErrBusy
	}
	defer fl.Unlock()
	return fn()
}
