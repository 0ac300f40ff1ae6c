package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/platback/platback/internal/daemon"
	"github.com/platback/platback/internal/runner"
)

func newCheckCmd() *cobra.Command {
	var subset string
	var rotate bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the repository (restic check)",
		Long: "Check the repository with restic check, holding the run lock (refused while a run is going).\n" +
			"--rotate reads the next part of the data, as CHECK_CRON does (CHECK_READ_DATA_PARTS).",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, func(ctx context.Context, a *app) error {
				o := daemon.CheckOptions{Subset: subset, By: "sidecar check"}
				if rotate {
					if subset != "" {
						return errors.New("--rotate and --read-data-subset: give one of them")
					}
					if a.cfg.CheckParts == 0 {
						return errors.New("--rotate: CHECK_READ_DATA_PARTS=0 reads no data; set it to the number of parts, e.g. 12")
					}
					o.Parts = a.cfg.CheckParts
				}
				res, err := daemon.RunCheck(ctx, a.runner, o)
				if err != nil {
					return err
				}
				if res.Err != nil {
					return res.Err
				}
				if res.Subset != "" {
					fmt.Printf("repository check: no errors (read data subset %s)\n", res.Subset)
				} else {
					fmt.Println("repository check: no errors")
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "also read this part of the data, e.g. 5% or 1/10")
	cmd.Flags().BoolVar(&rotate, "rotate", false, "read the next part of CHECK_READ_DATA_PARTS, as the scheduled checks do")
	return cmd
}

func newUnlockCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unlock",
		Short: "Remove stale repository locks (never locks of running processes)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withLockedSession(cmd, func(ctx context.Context, _ *app, s *runner.Session) error {
				return s.Repo.Unlock(ctx)
			})
		},
	}
}
