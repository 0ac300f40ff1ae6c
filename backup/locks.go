package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/platback/platback/internal/ids"
)

// Lock is a lock in the repository, as restic wrote it.
type Lock struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Hostname  string    `json:"hostname"`
	// Username is the user restic ran as: where restic cannot look the
	// user up (a FROM-scratch image has no /etc/passwd), the value of
	// $USER, which Options.Owner sets.
	Username string `json:"username"`
	PID      int    `json:"pid"`
}

// ErrLocksUnsupported: the repository's backend is not one whose lock
// files this package can remove (local and S3 are).
var ErrLocksUnsupported = errors.New("removing single locks is supported for local and S3 repositories only")

var lockIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Locks lists the repository's locks without taking one itself. For local
// and S3 repositories the lock files are listed directly (no restic process
// when there are none); restic reads each one.
func (r *Repo) Locks(ctx context.Context) ([]Lock, error) {
	lockIDs, err := r.lockIDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	locks := make([]Lock, 0, len(lockIDs))
	for _, id := range lockIDs {
		var out bytes.Buffer
		err := r.run(ctx, invocation{command: "cat", args: []string{"lock", id, "--no-lock"}, timeout: r.opts.Timeouts.Snapshot, stdout: &out})
		if err != nil {
			// Removed meanwhile (its process ended): nothing to report.
			r.log.Debug("lock vanished while listing", "lock", ids.Snapshot(id), "err", err)
			continue
		}
		l := Lock{ID: id}
		if err := json.Unmarshal(out.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("read lock %s: %w", ids.Snapshot(id), err)
		}
		l.ID = id
		locks = append(locks, l)
	}
	return locks, nil
}

// lockIDs lists the ids of the lock files.
func (r *Repo) lockIDs(ctx context.Context) ([]string, error) {
	var ids []string
	switch r.loc.Kind {
	case "local":
		entries, err := os.ReadDir(filepath.Join(r.loc.Path, "locks"))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if lockIDRE.MatchString(e.Name()) {
				ids = append(ids, e.Name())
			}
		}
		return ids, nil
	case "s3":
		c, err := r.s3Client()
		if err != nil {
			return nil, err
		}
		prefix := r.loc.key("locks/")
		for obj := range c.ListObjects(ctx, r.loc.Bucket, minio.ListObjectsOptions{Prefix: prefix}) {
			if obj.Err != nil {
				return nil, r.bucketError("list the locks in", obj.Err)
			}
			if id := strings.TrimPrefix(obj.Key, prefix); lockIDRE.MatchString(id) {
				ids = append(ids, id)
			}
		}
		return ids, nil
	}
	err := r.run(ctx, invocation{command: "list", args: []string{"locks", "--no-lock"}, timeout: r.opts.Timeouts.Snapshot,
		onLine: func(b []byte) {
			if id := strings.TrimSpace(string(b)); lockIDRE.MatchString(id) {
				ids = append(ids, id)
			}
		}})
	return ids, err
}

// RemoveLocksOf removes the locks whose Username is owner — the locks of
// processes that ran with Options.Owner set to owner — and returns them.
// The caller must know that none of those processes still runs: restic
// never removes a live process's lock, and neither should its caller.
// Other locks are never touched (compare Unlock, which removes what restic
// thinks is stale).
func (r *Repo) RemoveLocksOf(ctx context.Context, owner string) ([]Lock, error) {
	return r.removeLocks(ctx, func(l Lock) bool { return l.Username == owner })
}

// RemoveLocksWithOwnerPrefix is RemoveLocksOf for every owner that starts
// with prefix.
func (r *Repo) RemoveLocksWithOwnerPrefix(ctx context.Context, prefix string) ([]Lock, error) {
	if prefix == "" {
		return nil, errors.New("remove locks: empty owner prefix would match every lock")
	}
	return r.removeLocks(ctx, func(l Lock) bool { return strings.HasPrefix(l.Username, prefix) })
}

func (r *Repo) removeLocks(ctx context.Context, match func(Lock) bool) ([]Lock, error) {
	if r.loc.Kind != "local" && r.loc.Kind != "s3" {
		return nil, ErrLocksUnsupported
	}
	locks, err := r.Locks(ctx)
	if err != nil {
		return nil, err
	}
	var removed []Lock
	var errs []error
	for _, l := range locks {
		if !match(l) {
			continue
		}
		if err := r.removeLockFile(ctx, l.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove lock %s of %s (pid %d on %s): %w", ids.Snapshot(l.ID), l.Username, l.PID, l.Hostname, err))
			continue
		}
		r.log.Info("removed a lock left by a process that is gone", "lock", ids.Snapshot(l.ID), "owner", l.Username, "pid", l.PID,
			"host", l.Hostname, "locked_at", l.Time)
		removed = append(removed, l)
	}
	return removed, errors.Join(errs...)
}

func (r *Repo) removeLockFile(ctx context.Context, id string) error {
	switch r.loc.Kind {
	case "local":
		err := os.Remove(filepath.Join(r.loc.Path, "locks", id))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	case "s3":
		c, err := r.s3Client()
		if err != nil {
			return err
		}
		err = c.RemoveObject(ctx, r.loc.Bucket, r.loc.key("locks/"+id), minio.RemoveObjectOptions{})
		if err != nil {
			return r.bucketError("remove a lock in", err)
		}
		return nil
	}
	return ErrLocksUnsupported
}
