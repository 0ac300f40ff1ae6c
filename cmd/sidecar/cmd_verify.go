package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/platback/platback/internal/daemon"
)

func newVerifyCmd() *cobra.Command {
	var paths []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [--path PATH]... [--json]",
		Short: "Restore drill: restore the latest snapshot of each target into scratch space and check it",
		Long: `Restore the latest snapshot of each target (or of each --path) into scratch
space, check it, and delete the scratch, holding the run lock:

  a volume     is restored into a new temporary volume through a worker
               container and compared with the snapshot's own file list:
               every file present with its size
  a database   dump is loaded into a throwaway container of the image the
               database container runs (a random password of its own, no
               network), then its databases, tables and rows are counted

A volume snapshot larger than VERIFY_MAX_BYTES, or than the free space of
the scratch volume (less a margin), is refused. Exits 1 when a target failed.
VERIFY_CRON runs the same on a schedule.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, func(ctx context.Context, a *app) error {
				run, err := daemon.RunVerify(ctx, a.runner, daemon.VerifyOptions{Paths: paths, By: "sidecar verify"})
				if err != nil {
					return err
				}
				if asJSON {
					if err := writeJSON(os.Stdout, run.Results); err != nil {
						return err
					}
				} else {
					printVerify(os.Stdout, run)
				}
				if !run.OK() {
					return exitError{code: 1}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&paths, "path", nil, "verify only this target (its snapshot path, as in `sidecar plan`); repeatable")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	return cmd
}

func printVerify(w io.Writer, run daemon.VerifyRun) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tRESULT\tSNAPSHOT\tAGE\tFOUND\tTOOK")
	for _, r := range run.Results {
		result := "ok"
		if !r.OK() {
			result = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Target, result, r.Snapshot, r.Age.Round(time.Second), r.Detail(), r.Duration.Round(time.Millisecond))
	}
	tw.Flush()
	for _, r := range run.Results {
		if !r.OK() {
			fmt.Fprintf(w, "%s: %s\n", r.Target, r.Error)
		}
	}
	if run.OK() {
		fmt.Fprintf(w, "restore drill: %d target(s) passed\n", len(run.Results))
	} else {
		fmt.Fprintf(w, "restore drill: %d of %d target(s) FAILED\n", run.Failed(), len(run.Results))
	}
}
