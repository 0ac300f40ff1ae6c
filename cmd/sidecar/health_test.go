package main

import (
	"bytes"
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

func TestPrintResult(t *testing.T) {
	var b bytes.Buffer
	printResult(&b, runner.Result{Duration: 3 * time.Second, Targets: []runner.TargetResult{
		{Path: "/volumes/app/data", Kind: "volume", SnapshotID: "0123456789abcdef", FilesNew: 3, BytesAdded: 1000},
		{Path: "/databases/db/all_databases.sql", Kind: "mariadb", Err: errors.New("x"), Error: "mariadb-dump exited with status 2"},
	}})
	out := b.String()
	assert.Contains(t, out, "01234567")
	assert.Contains(t, out, "mariadb-dump exited with status 2")
	assert.Contains(t, out, "FAILED: 2 target(s)")
}
