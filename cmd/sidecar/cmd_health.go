package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/schedule"
)

// healthState answers /healthz: healthy while the last run succeeded and is
// younger than HEALTH_MAX_AGE_FACTOR schedule intervals (before the first
// run: while the sidecar is younger than that).
type healthState struct {
	mu          sync.Mutex
	started     time.Time
	factor      float64
	table       *schedule.Timetable
	lastRun     time.Time
	lastOK      bool
	lastSuccess time.Time
	lastError   string
}

func (h *healthState) finished(res runner.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastRun, h.lastOK, h.lastError = res.Start, res.OK(), ""
	if res.OK() {
		h.lastSuccess = res.Start
	} else if res.Err != nil {
		h.lastError = res.Err.Error()
	} else {
		h.lastError = "one or more targets failed"
	}
}

// interval is the time between two scheduled runs around now.
func (h *healthState) interval(now time.Time) time.Duration {
	if d := h.table.Interval(); d > 0 {
		return d
	}
	a := h.table.Next(now)
	return h.table.Next(a).Sub(a)
}

type healthReport struct {
	Healthy     bool      `json:"healthy"`
	Reason      string    `json:"reason"`
	LastRun     time.Time `json:"last_run,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	MaxAge      string    `json:"max_age"`
}

func (h *healthState) report(now time.Time) healthReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	maxAge := time.Duration(h.factor * float64(h.interval(now)))
	r := healthReport{LastRun: h.lastRun, LastSuccess: h.lastSuccess, MaxAge: maxAge.String()}
	switch {
	case h.lastRun.IsZero() && now.Sub(h.started) <= maxAge:
		r.Healthy, r.Reason = true, "no run yet"
	case h.lastRun.IsZero():
		r.Reason = "no run for " + now.Sub(h.started).Round(time.Second).String()
	case !h.lastOK:
		r.Reason = "last run failed: " + h.lastError
	case now.Sub(h.lastSuccess) > maxAge:
		r.Reason = "last success is older than " + maxAge.String()
	default:
		r.Healthy, r.Reason = true, "last run succeeded"
	}
	return r
}

func (h *healthState) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	r := h.report(time.Now())
	w.Header().Set("Content-Type", "application/json")
	if !r.Healthy {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(r)
}

func newHealthCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when the daemon's last run succeeded recently (Docker HEALTHCHECK)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(os.Getenv)
			if err != nil {
				return fmt.Errorf("configuration:\n%w", err)
			}
			if cfg.Listen == "" {
				return fmt.Errorf("METRICS_LISTEN is empty: the health check needs the daemon's /healthz endpoint")
			}
			_, port, _ := net.SplitHostPort(cfg.Listen)
			client := &http.Client{Timeout: 5 * time.Second}
			resp, err := client.Get("http://127.0.0.1:" + port + "/healthz")
			if err != nil {
				return fmt.Errorf("health: %w", err)
			}
			defer resp.Body.Close()
			var r healthReport
			_ = json.NewDecoder(resp.Body).Decode(&r)
			fmt.Println(r.Reason)
			if !r.Healthy {
				return exitError{code: 1}
			}
			return nil
		},
	}
}
