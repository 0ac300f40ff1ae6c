package backup

import (
	"context"
	"fmt"
)

// CheckOptions adjust a repository check.
type CheckOptions struct {
	// ReadDataSubset also reads this part of the data, e.g. "5%" or "1/10"
	// (restic --read-data-subset); empty checks the structure only.
	ReadDataSubset string
}

// Check verifies the repository's structure (and optionally some data).
func (r *Repo) Check(ctx context.Context, o CheckOptions) error {
	var args []string
	if o.ReadDataSubset != "" {
		args = append(args, "--read-data-subset", o.ReadDataSubset)
	}
	if err := r.run(ctx, invocation{command: "check", args: args, locking: true,
		timeout: r.opts.Timeouts.Check, onLine: discard}); err != nil {
		return fmt.Errorf("check repository: %w", err)
	}
	return nil
}

// Unlock removes stale locks only: locks of dead processes on this host and
// locks older than 30 minutes. It never removes every lock (--remove-all),
// which could break a backup that is still running elsewhere.
func (r *Repo) Unlock(ctx context.Context) error {
	if err := r.run(ctx, invocation{command: "unlock", timeout: r.opts.Timeouts.Snapshot, onLine: discard}); err != nil {
		return fmt.Errorf("remove stale locks: %w", err)
	}
	return nil
}
