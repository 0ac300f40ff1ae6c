package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/platback/platback/internal/runner"
)

func newRunOnceCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run-once",
		Short: "Back up every target now; exit 0 only if every target succeeded",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, func(ctx context.Context, a *app) error {
				var res runner.Result
				if err := a.runner.Exclusive(ctx, false, func() error {
					res = a.runner.Run(ctx)
					// The daemon of this container reads it: /metrics and
					// /healthz then show this run too.
					if err := saveLastRun(a.cfg.CacheDir, res, "run-once"); err != nil {
						a.log.Warn("could not record the run's result for the daemon", "err", err)
					}
					return nil
				}); err != nil {
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

// lastRunName is the file in the cache directory that holds the result of
// the last run, whoever started it (the daemon's schedule or `sidecar
// run-once`): the daemon applies a newer one to its metrics and health.
const lastRunName = "platback-last-run.json"

// lastRun is the content of lastRunName. A Result holds no secret: paths,
// counts, snapshot ids and error texts, which every package builds without
// credentials.
type lastRun struct {
	Result runner.Result `json:"result"`
	OK     bool          `json:"ok"`
	// LastSuccess is the start of the last successful run: this one, or
	// one before it (carried over from the previous file).
	LastSuccess time.Time `json:"last_success,omitzero"`
	// By is who ran it: "daemon" or "run-once".
	By string `json:"by"`
}

// saveLastRun writes res as the last run, atomically (a temporary file
// renamed over the old one) and durably (both synced, then the directory).
// Runs hold the run lock, so two writers never race.
func saveLastRun(dir string, res runner.Result, by string) error {
	lr := lastRun{Result: res, OK: res.OK(), By: by}
	if lr.OK {
		lr.LastSuccess = res.Start
	} else if prev, ok, _ := loadLastRun(dir); ok {
		lr.LastSuccess = prev.LastSuccess
	}
	data, err := json.MarshalIndent(lr, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+lastRunName+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename: nothing left to remove
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, lastRunName)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadLastRun reads the last run; ok is false when there is none yet. The
// errors of the result are restored from their texts, so Result.OK works.
func loadLastRun(dir string) (lr lastRun, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, lastRunName))
	if errors.Is(err, fs.ErrNotExist) {
		return lr, false, nil
	}
	if err != nil {
		return lr, false, err
	}
	if err := json.Unmarshal(data, &lr); err != nil {
		return lr, false, fmt.Errorf("%s: %w", filepath.Join(dir, lastRunName), err)
	}
	r := &lr.Result
	if r.Error != "" {
		r.Err = errors.New(r.Error)
	}
	for i := range r.Targets {
		if t := &r.Targets[i]; t.Error != "" {
			t.Err = errors.New(t.Error)
		}
	}
	if r.Start.IsZero() {
		return lr, false, fmt.Errorf("%s: no run start time", filepath.Join(dir, lastRunName))
	}
	return lr, true, nil
}

// printResult prints a run's result table.
func printResult(w io.Writer, res runner.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tKIND\tSNAPSHOT\tFILES NEW\tCHANGED\tBYTES ADDED\tDURATION\tERROR")
	for _, t := range res.Targets {
		id := t.SnapshotID
		if len(id) > 8 {
			id = id[:8]
		}
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
	if res.Err != nil {
		fmt.Fprintln(w, "run failed:", res.Err)
	}
	status := "OK"
	if !res.OK() {
		status = "FAILED"
	}
	fmt.Fprintf(w, "%s: %d target(s) in %s\n", status, len(res.Targets), res.Duration.Round(time.Millisecond))
}
