package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/daemon"
)

func newHealthCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when the daemon's last run succeeded recently (Docker HEALTHCHECK)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Only METRICS_LISTEN and HEALTH_MAX_AGE_FACTOR: no credential
			// and no secret file at every Docker health check.
			h, err := config.LoadHealth(config.Env(os.LookupEnv))
			if err != nil {
				return fmt.Errorf("configuration:\n%w", err)
			}
			if h.Listen == "" {
				return fmt.Errorf("METRICS_LISTEN is empty: the health check needs the daemon's /healthz endpoint")
			}
			client := &http.Client{Timeout: 5 * time.Second}
			resp, err := client.Get(daemon.HealthURL(h.Listen))
			if err != nil {
				return fmt.Errorf("health: %w", err)
			}
			defer resp.Body.Close()
			var r daemon.HealthReport
			_ = json.NewDecoder(resp.Body).Decode(&r)
			fmt.Println(r.Reason)
			if !r.Healthy {
				return exitError{code: 1}
			}
			return nil
		},
	}
}
