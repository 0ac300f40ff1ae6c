package daemon

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/schedule"
)

func TestHealthReport(t *testing.T) {
	table, err := schedule.ParseSpec(schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"})
	require.NoError(t, err)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ok := runner.Result{Start: now.Add(-10 * time.Hour), Targets: []runner.TargetResult{{Path: "/volumes/app/data"}}}
	failed := runner.Result{Start: now.Add(-time.Hour), Err: errors.New("credentials: vault sealed")}
	tests := []struct {
		name    string
		started time.Time
		runs    []runner.Result
		healthy bool
		reason  string
	}{
		{name: "just started", started: now.Add(-time.Hour), healthy: true, reason: "no run yet"},
		{name: "never ran for three days", started: now.Add(-72 * time.Hour), reason: "no run for"},
		{name: "last run succeeded", started: now.Add(-24 * time.Hour), runs: []runner.Result{ok}, healthy: true, reason: "succeeded"},
		{name: "last run failed", started: now.Add(-24 * time.Hour), runs: []runner.Result{ok, failed}, reason: "vault sealed"},
		{name: "success too old", started: now.Add(-100 * time.Hour), runs: []runner.Result{{Start: now.Add(-72 * time.Hour), Targets: ok.Targets}}, reason: "older than 48h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &healthState{started: tt.started, factor: 2, table: table}
			for _, r := range tt.runs {
				h.finished(r)
			}
			r := h.report(now)
			assert.Equal(t, tt.healthy, r.Healthy, r.Reason)
			assert.Contains(t, r.Reason, tt.reason)
		})
	}
}

// The max age follows the schedule's own gaps: an irregular schedule is
// not unhealthy while no run was missed, and is once HEALTH_MAX_AGE_FACTOR
// gaps passed without a success.
func TestHealthFollowsScheduleGaps(t *testing.T) {
	utc := func(y int, m time.Month, d, hh, mm, ss int) time.Time {
		return time.Date(y, m, d, hh, mm, ss, 0, time.UTC)
	}
	weekdays := schedule.Spec{Cron: "0 2 * * 1-5", TZ: "UTC"}
	monthly := schedule.Spec{Cron: "0 2 1 * *", TZ: "UTC"}
	december := schedule.Spec{Cron: "0 2 * 12 *", TZ: "UTC"}
	every := schedule.Spec{Cron: "@every 6h"}
	staggered := schedule.Spec{Cron: "@every 6h", Stagger: 20 * time.Minute, Name: "n8n"} // runs at hh:11:27
	paris := schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris"}
	friday := utc(2026, 11, 27, 2, 0, 5) // a run started 5 s after 02:00
	var none time.Time
	require.Equal(t, time.Friday, friday.Weekday())

	tests := []struct {
		name    string
		spec    schedule.Spec
		factor  float64
		success time.Time // start of the last successful run; zero: none yet
		started time.Time
		now     time.Time
		healthy bool
	}{
		{"weekdays: Saturday after Friday's run", weekdays, 2, friday, none, utc(2026, 11, 28, 12, 0, 0), true},
		{"weekdays: Sunday after Friday's run", weekdays, 2, friday, none, utc(2026, 11, 29, 12, 0, 0), true},
		{"weekdays: Monday's run missed", weekdays, 2, friday, none, utc(2026, 11, 30, 23, 0, 0), true},
		{"weekdays: Monday's and Tuesday's runs missed", weekdays, 2, friday, none, utc(2026, 12, 1, 2, 30, 0), false},
		{"weekdays: started Friday noon, no run yet on Monday night", weekdays, 2, none, utc(2026, 11, 27, 12, 0, 0), utc(2026, 11, 30, 1, 0, 0), true},
		{"weekdays: started Friday noon, Monday's and Tuesday's runs missed", weekdays, 2, none, utc(2026, 11, 27, 12, 0, 0), utc(2026, 12, 1, 6, 0, 0), false},
		{"monthly: January's run missed, end of January", monthly, 2, utc(2026, 12, 1, 2, 0, 5), none, utc(2027, 1, 31, 12, 0, 0), true},
		{"monthly: January's and February's runs missed", monthly, 2, utc(2026, 12, 1, 2, 0, 5), none, utc(2027, 2, 1, 3, 0, 0), false},
		{"monthly, factor 1: a 31-day gap before a 28-day one", monthly, 1, utc(2027, 1, 1, 2, 0, 5), none, utc(2027, 1, 31, 12, 0, 0), true},
		{"monthly, factor 1: February's run missed", monthly, 1, utc(2027, 1, 1, 2, 0, 5), none, utc(2027, 2, 1, 3, 0, 0), false},
		{"December only: in June", december, 2, utc(2026, 12, 31, 2, 0, 5), none, utc(2027, 6, 15, 12, 0, 0), true},
		{"December only: the night before December", december, 2, utc(2026, 12, 31, 2, 0, 5), none, utc(2027, 11, 30, 23, 0, 0), true},
		{"December only: December 1 and 2 missed", december, 2, utc(2026, 12, 31, 2, 0, 5), none, utc(2027, 12, 2, 3, 0, 0), false},
		{"@every 6h: one run missed", every, 2, utc(2026, 11, 27, 6, 0, 5), none, utc(2026, 11, 27, 17, 0, 0), true},
		{"@every 6h: two runs missed", every, 2, utc(2026, 11, 27, 6, 0, 5), none, utc(2026, 11, 27, 18, 30, 0), false},
		{"@every 6h with stagger, factor 1.5: just before", staggered, 1.5, utc(2026, 11, 27, 6, 11, 30), none, utc(2026, 11, 27, 15, 11, 29), true},
		{"@every 6h with stagger, factor 1.5: just after", staggered, 1.5, utc(2026, 11, 27, 6, 11, 30), none, utc(2026, 11, 27, 15, 11, 31), false},
		// Paris 2026-10-25: clocks go back, the gap from Sunday's 02:00 CEST
		// (00:00 UTC) to Monday's 02:00 CET (01:00 UTC) is 25h.
		{"fall-back: the 25h gap, before Monday's run", paris, 1, utc(2026, 10, 25, 0, 0, 5), none, utc(2026, 10, 26, 0, 30, 0), true},
		{"fall-back: Monday's run due", paris, 1, utc(2026, 10, 25, 0, 0, 5), none, utc(2026, 10, 26, 1, 0, 10), false},
		// Paris 2026-03-29: clocks jump forward, the gap from Sunday's run
		// (at the jump, 01:00 UTC) to Monday's 02:00 CEST (00:00 UTC) is 23h.
		{"spring-forward: Sunday's run missed", paris, 2, utc(2026, 3, 28, 1, 0, 5), none, utc(2026, 3, 29, 23, 30, 0), true},
		{"spring-forward: Sunday's and Monday's runs missed", paris, 2, utc(2026, 3, 28, 1, 0, 5), none, utc(2026, 3, 30, 0, 30, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table, err := schedule.ParseSpec(tt.spec)
			require.NoError(t, err)
			h := &healthState{started: tt.started, factor: tt.factor, table: table}
			if !tt.success.IsZero() {
				h.started = tt.success.Add(-30 * 24 * time.Hour)
				h.finished(runner.Result{Start: tt.success, Targets: []runner.TargetResult{{Path: "/volumes/app/data"}}})
			}
			r := h.report(tt.now)
			assert.Equal(t, tt.healthy, r.Healthy, "%s (deadline %s, max age %s)", r.Reason, r.Deadline, r.MaxAge)
		})
	}
}

// On a regular schedule the deadline is exactly factor gaps after the last
// success, wherever in its gap that success was.
func TestHealthDeadlineRegularSchedule(t *testing.T) {
	since := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		spec   schedule.Spec
		factor float64
		want   time.Duration
	}{
		{schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"}, 2, 48 * time.Hour},
		{schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"}, 1.5, 36 * time.Hour},
		{schedule.Spec{Cron: "0 2 * * *", TZ: "UTC", Stagger: 20 * time.Minute, Name: "mattermost"}, 2.25, 54 * time.Hour},
		{schedule.Spec{Cron: "@every 6h"}, 2, 12 * time.Hour},
		{schedule.Spec{Cron: "@every 90m", Stagger: time.Hour, Name: "vault"}, 3.5, 315 * time.Minute},
		{schedule.Spec{Cron: "*/20 * * * *", TZ: "UTC"}, 1000, 20000 * time.Minute},
	}
	for _, tt := range tests {
		table, err := schedule.ParseSpec(tt.spec)
		require.NoError(t, err)
		for _, s := range []time.Time{since, since.Add(7*time.Minute + 13*time.Second + 7), table.Next(since)} {
			got := deadline(table, s, tt.factor)
			assert.Equal(t, tt.want, got.Sub(s), "%s ×%v from %s", table, tt.factor, s)
		}
	}
}

// sidecar health asks the address the daemon listens on.
func TestHealthURL(t *testing.T) {
	for listen, want := range map[string]string{
		":9095":               "http://127.0.0.1:9095/healthz",
		"0.0.0.0:9095":        "http://127.0.0.1:9095/healthz",
		"[::]:9095":           "http://127.0.0.1:9095/healthz",
		"127.0.0.1:9095":      "http://127.0.0.1:9095/healthz",
		"10.0.0.5:9095":       "http://10.0.0.5:9095/healthz",
		"[::1]:9095":          "http://[::1]:9095/healthz",
		"[fd00::5]:8080":      "http://[fd00::5]:8080/healthz",
		"[fe80::1%eth0]:9095": "http://[fe80::1%25eth0]:9095/healthz",
		"backup.internal:80":  "http://backup.internal:80/healthz",
		"localhost:9095":      "http://localhost:9095/healthz",
	} {
		assert.Equal(t, want, HealthURL(listen), listen)
	}
}
