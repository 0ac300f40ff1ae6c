package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/platback/platback/internal/daemon"
)

func newRunCmd() *cobra.Command {
	var o daemon.Options
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run as the stack's backup daemon: scheduled backups, /metrics and /healthz",
		Long: `Run as the stack's backup daemon: scheduled backups, /metrics and /healthz.

At start-up it checks what a run needs (the Vault login and secret, the
Docker engine, the S3 bucket and that the repository opens with the
password, creating nothing) and reports the result in its log, in
platback_startup_check_ok and in /healthz; while the check fails it is
retried every --check-retry, and the daemon keeps running.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, func(ctx context.Context, a *app) error {
				alerts, err := daemon.NewAlerts(a.cfg, a.log)
				if err != nil {
					return err
				}
				d := &daemon.Daemon{Config: a.cfg, Runner: a.runner, Self: a.disc.Self, Version: version, Log: a.log,
					Report: printResult, Alerts: alerts, Options: o}
				return d.Run(ctx)
			})
		},
	}
	cmd.Flags().DurationVar(&o.CheckRetry, "check-retry", daemon.DefaultCheckRetry, "how long to wait before retrying a failed start-up check")
	cmd.Flags().DurationVar(&o.CheckTimeout, "check-timeout", daemon.DefaultCheckTimeout, "deadline of one attempt of the start-up check")
	return cmd
}
