package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/platback/platback/internal/daemon"
	"github.com/platback/platback/internal/ids"
	"github.com/platback/platback/internal/runner"
)

func newRunOnceCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run-once",
		Short: "Back up every target now; exit 0 only if every target succeeded",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, func(ctx context.Context, a *app) error {
				alerts, err := a.alerts(ctx)
				if err != nil {
					return err
				}
				// As a scheduled run: pings, notification, and the last-run
				// file the daemon of this container reads (its /metrics and
				// /healthz then show this run too).
				res, err := daemon.Backup(ctx, a.runner, alerts, "run-once", false, nil)
				if err != nil {
					return err
				}
				if asJSON {
					_ = json.NewEncoder(os.Stdout).Encode(res)
				} else {
					printResult(os.Stdout, res)
				}
				if !res.OK() {
					return exitError{code: 1}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// printResult prints a run's result table.
func printResult(w io.Writer, res runner.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tKIND\tSNAPSHOT\tFILES NEW\tCHANGED\tBYTES ADDED\tDURATION\tERROR")
	for _, t := range res.Targets {
		id := ids.Snapshot(t.SnapshotID)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", t.Path, t.Kind, id, t.FilesNew, t.Changed, t.BytesAdded,
			t.Duration.Round(time.Millisecond), t.Error)
	}
	tw.Flush()
	for _, w2 := range res.Warnings {
		fmt.Fprintln(w, "warning:", w2)
	}
	for _, e := range res.Retention {
		fmt.Fprintln(w, "retention failed:", e)
	}
	if res.Check != "" {
		fmt.Fprintln(w, "check failed:", res.Check)
	}
	if c := res.Copy; c != nil {
		switch {
		case !c.OK():
			fmt.Fprintf(w, "copy to %s FAILED (the backup itself is not affected; the next run copies what this one missed): %s\n", c.Repository, c.Error)
		case c.Snapshots >= 0:
			fmt.Fprintf(w, "copied to %s in %s: it holds %d snapshot(s) of this stack\n", c.Repository, c.Duration.Round(time.Millisecond), c.Snapshots)
		default:
			fmt.Fprintf(w, "copied to %s in %s\n", c.Repository, c.Duration.Round(time.Millisecond))
		}
	}
	if res.Err != nil {
		fmt.Fprintln(w, "run failed:", res.Err)
	}
	status := "OK"
	if !res.OK() {
		status = "FAILED"
	}
	fmt.Fprintf(w, "%s: %d target(s) in %s\n", status, len(res.Targets), res.Duration.Round(time.Millisecond))
}
