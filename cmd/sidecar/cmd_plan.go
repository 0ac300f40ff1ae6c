package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/runner"
)

func newPlanCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what would be backed up, and why other containers and mounts are skipped",
		Long: `Show what would be backed up, and why other containers and mounts are skipped.

It also reads the lifecycle rules of the repository's S3 bucket (nothing is
created or written) and warns about any rule that would expire, and so
destroy, the repository's objects, or that the rules could not be read.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, func(ctx context.Context, a *app) error {
				plan, err := a.disc.Plan(ctx)
				if err != nil {
					return err
				}
				if err := writeOutput(os.Stdout, asJSON, plan, plan.WriteTable); err != nil {
					return err
				}
				if plan.Empty() {
					fmt.Fprintln(os.Stderr, "warning: nothing to back up")
				}
				planLifecycle(ctx, a, os.Stderr)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	return cmd
}

// planLifecycleTimeout bounds the lifecycle check of `sidecar plan` (a
// Vault that does not answer would otherwise hold it for VAULT_RETRY_TIMEOUT).
const planLifecycleTimeout = 30 * time.Second

// planLifecycle prints a warning for each lifecycle rule of the bucket that
// can delete the repository's objects, or why the rules are unknown. It
// opens the repository's session without touching the repository (the
// credentials are fetched, the bucket's configuration read).
func planLifecycle(ctx context.Context, a *app, w io.Writer) {
	if loc, err := backup.ParseLocation(a.cfg.Repository); err == nil && loc.Kind != "s3" {
		return // no bucket
	}
	ctx, cancel := context.WithTimeout(ctx, planLifecycleTimeout)
	defer cancel()
	s, _, err := a.runner.Open(ctx, runner.OpenOptions{Shared: true}) // no run lock held
	if err != nil {
		fmt.Fprintf(w, "warning: the S3 bucket's lifecycle rules were not checked, so a rule that expires the repository's objects cannot be ruled out: %v\n", err)
		return
	}
	l := s.Repo.CheckLifecycle(ctx)
	for _, warning := range l.Warnings {
		fmt.Fprintln(w, "warning:", warning)
	}
	if l.BucketMissing {
		if a.cfg.CreateBucket {
			fmt.Fprintln(w, "note: the repository's bucket does not exist yet; the first run creates it (PLATBACK_CREATE_BUCKET=true)")
		} else {
			fmt.Fprintln(w, "warning: the repository's bucket does not exist and PLATBACK_CREATE_BUCKET=false: create it before the first run")
		}
	}
}
