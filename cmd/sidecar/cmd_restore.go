package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/platback/platback/internal/runner"
)

type restoreOptions struct {
	path, snapshot, into, mode string
	toVolume, toDB             bool
	dryRun, noStop             bool
}

func newRestoreCmd() *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:   "restore --path PATH (--into DIR | --to-volume --mode mirror|merge | --to-database)",
		Short: "Restore a target: into a directory, back into its volume, or into its database",
		Long: `Restore the snapshot of one target (its path as in "sidecar plan", e.g.
/volumes/app/data or /databases/postgres/all_databases.sql):

  --into DIR      restore the files (or the dump file) under DIR, inside the
                  sidecar container: mount a host directory there, or copy
                  them out with docker cp
  --to-volume     write the files back into the target's volume; the running
                  containers of the stack that use the volume are stopped for
                  it and started again (--no-stop keeps them running)
  --to-database   pipe the dump into the database container's client (psql,
                  mariadb); refused when the database still holds data

--mode says what happens to files the snapshot does not hold: "mirror"
deletes them (the volume becomes the snapshot), "merge" keeps them. It is
required with --to-volume. --dry-run shows what would change and writes
nothing. --snapshot takes an id from "sidecar snapshots --path PATH"; an id
of another target is refused.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.into != "" && o.mode == "" {
				o.mode = "merge"
			}
			if err := o.check(); err != nil {
				return err
			}
			if o.into != "" {
				o.into = filepath.Clean(o.into)
			}
			return withApp(cmd, func(ctx context.Context, a *app) error {
				// A path no target can have is refused before the lock,
				// restic or any directory.
				p, err := runner.CheckRestorePath(o.path)
				if err != nil {
					return fmt.Errorf("%w; %s", err, stackTargets(ctx, a))
				}
				o.path = p
				return a.runner.Exclusive(ctx, false, func() error {
					s, _, err := a.runner.Open(ctx, runner.OpenOptions{IncludeStopped: true})
					if err != nil {
						return err
					}
					return restore(ctx, a.runner, s, o, os.Stdout)
				})
			})
		},
	}
	cmd.Flags().StringVar(&o.path, "path", "", "the target's snapshot path")
	cmd.Flags().StringVar(&o.snapshot, "snapshot", "latest", "snapshot id, or latest")
	cmd.Flags().StringVar(&o.into, "into", "", "restore under this directory")
	cmd.Flags().BoolVar(&o.toVolume, "to-volume", false, "restore back into the target's volume")
	cmd.Flags().BoolVar(&o.toDB, "to-database", false, "restore the dump into the target's database container")
	cmd.Flags().StringVar(&o.mode, "mode", "", "mirror (delete files the snapshot does not hold) or merge (keep them); required with --to-volume")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "show what would change, write nothing")
	cmd.Flags().BoolVar(&o.noStop, "no-stop", false, "with --to-volume: do not stop the containers that use the volume")
	return cmd
}

func (o restoreOptions) check() error {
	modes := 0
	for _, on := range []bool{o.into != "", o.toVolume, o.toDB} {
		if on {
			modes++
		}
	}
	switch {
	case o.path == "" || modes != 1:
		return errors.New("restore needs --path and exactly one of --into DIR, --to-volume, --to-database")
	case o.toVolume && o.mode == "":
		return errors.New("restore --to-volume needs --mode mirror (files the snapshot does not hold are deleted) or --mode merge (they stay); try --dry-run first")
	case o.mode != "" && o.mode != "mirror" && o.mode != "merge":
		return fmt.Errorf("--mode %q: want mirror or merge", o.mode)
	case o.toDB && (o.mode != "" || o.dryRun):
		return errors.New("--mode and --dry-run apply to files (--into, --to-volume), not to --to-database")
	case o.noStop && !o.toVolume:
		return errors.New("--no-stop applies to --to-volume only")
	case o.into != "" && !filepath.IsAbs(o.into):
		return fmt.Errorf("--into %q: want an absolute directory inside the sidecar container, e.g. /restore (the files land at DIR/<snapshot path>)", o.into)
	case o.into != "" && filepath.Clean(o.into) == "/":
		return fmt.Errorf("--into %q: the files would land at /volumes/… and /databases/… of the container's own root; give a directory of their own, e.g. /restore", o.into)
	}
	return nil
}

// stackTargets lists the stack's targets (stopped containers' too) for a
// refusal, so the user sees which paths exist.
func stackTargets(ctx context.Context, a *app) string {
	plan, err := a.runner.DiscoverAll.Plan(ctx)
	if err != nil {
		return "the stack's targets could not be listed (" + err.Error() + "); see `sidecar plan`"
	}
	if len(plan.Targets) == 0 {
		return "the stack has no target now (see `sidecar plan`); `sidecar snapshots` lists what the repository holds"
	}
	var paths []string
	for _, t := range plan.Targets {
		paths = append(paths, t.Path)
	}
	return "the stack's targets: " + strings.Join(paths, ", ")
}

func restore(ctx context.Context, rn *runner.Runner, s *runner.Session, o restoreOptions, out io.Writer) error {
	ro := runner.RestoreOptions{Snapshot: o.snapshot, Mirror: o.mode == "mirror", DryRun: o.dryRun, NoStop: o.noStop}
	if o.into != "" {
		res, err := rn.RestoreInto(ctx, s, o.path, o.into, ro)
		if err != nil {
			return err
		}
		printRestore(out, res, o, "under "+o.into)
		return nil
	}
	t, ok := s.Plan.FindTarget(o.path)
	if !ok {
		var paths []string
		for _, t := range s.Plan.Targets {
			paths = append(paths, t.Path)
		}
		return fmt.Errorf("no target %q in the stack (targets: %s); to restore a target that no longer exists use --into DIR", o.path, strings.Join(paths, ", "))
	}
	if o.toVolume {
		res, err := rn.RestoreVolume(ctx, s, t, o.path, ro)
		for _, c := range res.Stopped {
			fmt.Fprintf(out, "stopped %s for the restore and started it again\n", c.Name)
		}
		if err != nil {
			return err
		}
		printRestore(out, res, o, "into volume "+t.Source)
		return nil
	}
	res, err := rn.RestoreDatabase(ctx, s, t, o.path, o.snapshot)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "restored %s from snapshot %s into %s (%s)\n", o.path, res.Snapshot.ShortID, t.Container.Name, t.Database.Engine)
	return nil
}

func printRestore(w io.Writer, res runner.RestoreResult, o restoreOptions, where string) {
	sum := res.Summary
	if !o.dryRun {
		fmt.Fprintf(w, "restored %s from snapshot %s %s (%s): %d files, %d bytes written, %d unchanged, %d deleted\n",
			o.path, res.Snapshot.ShortID, where, o.mode, sum.FilesRestored, sum.BytesRestored, sum.FilesSkipped, sum.FilesDeleted)
		return
	}
	counts := sum.ChangeCounts
	fmt.Fprintf(w, "dry run: restoring %s from snapshot %s %s (%s) would write %d new and %d changed item(s) and delete %d; nothing was written\n",
		o.path, res.Snapshot.ShortID, where, o.mode, counts["restored"], counts["updated"], counts["deleted"])
	for _, c := range sum.Changes {
		fmt.Fprintf(w, "  %-8s %s\n", c.Action, c.Item)
	}
	if sum.MoreChanges > 0 {
		fmt.Fprintf(w, "  … and %d more\n", sum.MoreChanges)
	}
}
