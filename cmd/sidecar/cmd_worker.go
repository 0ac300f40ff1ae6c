package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/dbdump"
	"github.com/platback/platback/internal/worker"
)

// newWorkerCmd is the entrypoint of the worker containers the sidecar starts:
// the job, credentials included, arrives on stdin.
func newWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "worker",
		Short:  "Run one job sent on stdin (started by the sidecar in a worker container)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			restic := os.Getenv("PLATBACK_RESTIC")
			if restic == "" {
				restic = "restic"
			}
			return worker.Serve(cmd.Context(), os.Stdin, os.Stdout, os.Stderr, restic)
		},
	}
}

// newDumpCmd writes a database target's dump to stdout; restic runs it as
// the --stdin-from-command producer, so a non-zero exit keeps no snapshot.
func newDumpCmd() *cobra.Command {
	var target string
	cmd := &cobra.Command{
		Use:    "dump --target JSON",
		Short:  "Write a database target's dump to stdout (run by restic)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var t discover.Target
			if err := json.Unmarshal([]byte(target), &t); err != nil {
				return fmt.Errorf("--target: %w", err)
			}
			cli, err := discover.NewClient()
			if err != nil {
				return err
			}
			defer cli.Close()
			d, err := discover.New(cli, discover.Options{Self: discover.SelfOptions{Project: t.Project}})
			if err != nil {
				return err
			}
			err = dbdump.Dump(cmd.Context(), d, t, os.Stdout)
			if path := os.Getenv(backup.StreamStderrEnv); err != nil && path != "" {
				// restic may exit before it reads our stderr: leave the
				// reason where the engine reads it too.
				if f, ferr := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); ferr == nil {
					fmt.Fprintln(f, err)
					f.Close()
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "the target, as JSON")
	return cmd
}
