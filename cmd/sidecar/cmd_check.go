package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/runner"
)

func newCheckCmd() *cobra.Command {
	var subset string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the repository (restic check)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withLockedSession(cmd, func(ctx context.Context, _ *app, s *runner.Session) error {
				if err := s.Repo.Check(ctx, backup.CheckOptions{ReadDataSubset: subset}); err != nil {
					return err
				}
				fmt.Println("repository check: no errors")
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "also read this part of the data, e.g. 5%")
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
