package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/dbdump"
	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/internal/worker"
)

type restoreOptions struct {
	path, snapshot, into string
	toVolume, toDB       bool
}

func newRestoreCmd() *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:   "restore --path PATH (--into DIR | --to-volume | --to-database)",
		Short: "Restore a target: into a directory, back into its volume, or into its database",
		Long: `Restore the snapshot of one target (its path as in "sidecar plan", e.g.
/volumes/app/data or /databases/postgres/app.sql):

  --into DIR      restore files (or the dump file) under DIR
  --to-volume     write the files back into the target's volume (stop the app first)
  --to-database   pipe the dump into the database container's client (psql, mariadb)`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			modes := 0
			for _, on := range []bool{o.into != "", o.toVolume, o.toDB} {
				if on {
					modes++
				}
			}
			if o.path == "" || modes != 1 {
				return errors.New("restore needs --path and exactly one of --into DIR, --to-volume, --to-database")
			}
			return withSession(cmd, func(ctx context.Context, a *app, s *runner.Session) error {
				return restore(ctx, a, s, o)
			})
		},
	}
	cmd.Flags().StringVar(&o.path, "path", "", "the target's snapshot path")
	cmd.Flags().StringVar(&o.snapshot, "snapshot", "latest", "snapshot id, or latest")
	cmd.Flags().StringVar(&o.into, "into", "", "restore under this directory")
	cmd.Flags().BoolVar(&o.toVolume, "to-volume", false, "restore back into the target's volume")
	cmd.Flags().BoolVar(&o.toDB, "to-database", false, "restore the dump into the target's database container")
	return cmd
}

func restore(ctx context.Context, a *app, s *runner.Session, o restoreOptions) error {
	filter := backup.Filter{Host: s.Host, Paths: []string{o.path}}
	if o.into != "" {
		sum, err := s.Repo.Restore(ctx, o.snapshot, o.into, backup.RestoreOptions{Filter: filter, Include: []string{o.path}})
		if err != nil {
			return err
		}
		fmt.Printf("restored %s (%d files, %d bytes) under %s\n", o.path, sum.FilesRestored, sum.BytesRestored, o.into)
		return nil
	}
	t, err := findTarget(s.Plan, o.path)
	if err != nil {
		return err
	}
	if o.toVolume {
		if t.Volume == nil {
			return fmt.Errorf("%s is a database dump: use --to-database or --into", o.path)
		}
		spec, err := a.runner.WorkerSpec(ctx, s.Plan, t, false)
		if err != nil {
			return err
		}
		resp, err := worker.Run(ctx, a.docker, spec, worker.Request{Op: worker.OpRestore, Repository: s.URL, Env: s.Env,
			Host: s.Host, Snapshot: o.snapshot, Path: o.path, Timeout: a.cfg.BackupTimeout, LogLevel: a.cfg.LogLevel})
		if err != nil {
			return err
		}
		if err := resp.Err(); err != nil {
			return err
		}
		fmt.Printf("restored %s into volume %s (%d files, %d bytes)\n", o.path, t.Volume.Source, resp.Restore.FilesRestored, resp.Restore.BytesRestored)
		return nil
	}
	if t.Database == nil {
		return fmt.Errorf("%s is a volume: use --to-volume or --into", o.path)
	}
	pr, pw := io.Pipe()
	dumped := make(chan error, 1)
	go func() {
		err := s.Repo.Dump(ctx, o.snapshot, o.path, filter, pw)
		pw.CloseWithError(err)
		dumped <- err
	}()
	rerr := dbdump.Restore(ctx, a.docker, a.disc, t, pr)
	pr.CloseWithError(errors.New("restore ended"))
	if err := errors.Join(<-dumped, rerr); err != nil {
		return err
	}
	fmt.Printf("restored %s into %s (%s)\n", o.path, t.Container.Name, t.Database.Engine)
	return nil
}

// findTarget finds the target with a snapshot path in the current plan.
func findTarget(plan discover.Plan, path string) (discover.Target, error) {
	for _, t := range plan.Targets {
		if t.Path == path {
			return t, nil
		}
	}
	var paths []string
	for _, t := range plan.Targets {
		paths = append(paths, t.Path)
	}
	return discover.Target{}, fmt.Errorf("no target %q in the current plan (targets: %v); to restore a target that no longer exists use --into DIR", path, paths)
}
