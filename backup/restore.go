package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// RestoreOptions select what to restore.
type RestoreOptions struct {
	// Filter picks the snapshot when the snapshot id is "latest".
	Filter Filter
	// Include restricts the restore to these paths inside the snapshot.
	Include []string
	// Verify reads the restored files back and compares them (restic --verify).
	Verify bool
	// Delete makes the target a mirror of the snapshot: files under the
	// restored paths that the snapshot does not hold are deleted (restic
	// --delete). Without it, a restore merges: such files stay.
	Delete bool
	// DryRun writes nothing: the summary counts what would change and
	// Changes lists it (restic --dry-run -vv).
	DryRun bool
}

// RestoreChange is one file or directory a restore writes or deletes.
type RestoreChange struct {
	// Action is "restored" (new), "updated" or "deleted".
	Action string `json:"action"`
	Item   string `json:"item"`
	Size   uint64 `json:"size,omitempty"`
}

// maxChanges bounds RestoreSummary.Changes; the counts stay exact.
const maxChanges = 1000

// RestoreSummary is restic's report of a restore.
type RestoreSummary struct {
	TotalFiles    uint64 `json:"total_files"`
	FilesRestored uint64 `json:"files_restored"`
	FilesSkipped  uint64 `json:"files_skipped"`
	TotalBytes    uint64 `json:"total_bytes"`
	BytesRestored uint64 `json:"bytes_restored"`
	BytesSkipped  uint64 `json:"bytes_skipped"`
	FilesDeleted  uint64 `json:"files_deleted"`
	// Changes lists, on a dry run, what would be written or deleted (not
	// what is unchanged), at most the first 1000 items.
	Changes []RestoreChange `json:"changes,omitempty"`
	// MoreChanges counts the changes left out of Changes.
	MoreChanges int `json:"more_changes,omitempty"`
	// ChangeCounts counts every change of a dry run by action.
	ChangeCounts map[string]int `json:"change_counts,omitempty"`
}

// Restore restores snapshot (an id, or "latest" of o.Filter) into target.
func (r *Repo) Restore(ctx context.Context, snapshot, target string, o RestoreOptions) (RestoreSummary, error) {
	if target == "" {
		return RestoreSummary{}, errors.New("restore: no target directory given")
	}
	if !o.DryRun {
		if err := os.MkdirAll(target, 0o700); err != nil {
			return RestoreSummary{}, fmt.Errorf("restore: create target %s: %w", target, err)
		}
	}
	args, err := snapshotArgs(snapshot, o.Filter)
	if err != nil {
		return RestoreSummary{}, err
	}
	args = append(args, "--target", target)
	for _, p := range o.Include {
		args = append(args, "--include", p)
	}
	if o.Verify {
		args = append(args, "--verify")
	}
	if o.Delete {
		args = append(args, "--delete")
	}
	if o.DryRun {
		args = append(args, "--dry-run", "-vv")
	}
	var sum RestoreSummary
	var changes []RestoreChange
	more := 0
	counts := map[string]int{}
	var restoreErrors []string
	err = r.run(ctx, invocation{command: "restore", args: args, json: true, locking: true,
		timeout: r.opts.Timeouts.Restore, onLine: func(b []byte) {
			var m struct {
				Type string `json:"message_type"`
				RestoreSummary
				Error struct {
					Message string `json:"message"`
				} `json:"error"`
				Item   string `json:"item"`
				Action string `json:"action"`
				Size   uint64 `json:"size"`
			}
			if json.Unmarshal(b, &m) != nil {
				return
			}
			switch m.Type {
			case "verbose_status":
				if m.Action == "unchanged" {
					return
				}
				counts[m.Action]++
				if len(changes) < maxChanges {
					changes = append(changes, RestoreChange{Action: m.Action, Item: m.Item, Size: m.Size})
				} else {
					more++
				}
			case "summary":
				sum = m.RestoreSummary
			case "error":
				restoreErrors = append(restoreErrors, r.redact.String(m.Item+": "+m.Error.Message))
			}
		}})
	sum.Changes, sum.MoreChanges = changes, more
	if o.DryRun {
		sum.ChangeCounts = counts
	}
	if err != nil {
		return sum, fmt.Errorf("restore %s into %s: %w", snapshot, target, err)
	}
	if len(restoreErrors) > 0 {
		return sum, fmt.Errorf("restore %s into %s: %d error(s): %v", snapshot, target, len(restoreErrors), first(restoreErrors, 5))
	}
	return sum, nil
}

// Dump writes one file of a snapshot (e.g. a database dump saved by
// BackupStream) to w.
func (r *Repo) Dump(ctx context.Context, snapshot, path string, f Filter, w io.Writer) error {
	args, err := snapshotArgs(snapshot, f)
	if err != nil {
		return err
	}
	args = append(args, path)
	if err := r.run(ctx, invocation{command: "dump", args: args, locking: true,
		timeout: r.opts.Timeouts.Restore, stdout: w}); err != nil {
		return fmt.Errorf("dump %s from %s: %w", path, snapshot, err)
	}
	return nil
}

// snapshotArgs turns a snapshot id or "latest" plus a filter into arguments.
func snapshotArgs(snapshot string, f Filter) ([]string, error) {
	if snapshot == "" {
		snapshot = "latest"
	}
	filter, err := f.args()
	if err != nil {
		return nil, err
	}
	return append(filter, snapshot), nil
}
