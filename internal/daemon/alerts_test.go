package daemon

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/notify"
	"github.com/platback/platback/internal/runner"
)

// recorder is a Notifier that keeps the messages; fail makes every send fail.
type recorder struct {
	mu   sync.Mutex
	msgs []notify.Message
	fail bool
}

func (r *recorder) Notify(_ context.Context, m notify.Message) notify.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	if r.fail {
		return notify.Delivery{Failed: 1, Errs: []error{errors.New("generic+http://127.0.0.1:9/***: connection refused")}}
	}
	return notify.Delivery{Sent: 1}
}

func (r *recorder) texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.msgs {
		out = append(out, m.Text)
	}
	return out
}

// A backup gone stale is notified once per stale period, not at every
// tick; a new success that goes stale again is notified again.
func TestStaleNotifiedOncePerPeriod(t *testing.T) {
	d := newTestDaemon(t, t.TempDir())
	rec := &recorder{}
	d.a.Alerts = Alerts{Notifier: rec, Stack: notify.Stack{Project: "shop", Container: "shop-backup-1"}, Log: d.a.Log}
	ok := runner.Result{Start: time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC), Targets: []runner.TargetResult{{Path: "/volumes/app/data"}}}
	d.health.finished(ok)

	ctx := context.Background()
	d.staleAlert(ctx, time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)) // 34h after: within 2 daily gaps
	assert.Empty(t, rec.texts())
	for _, at := range []time.Time{time.Date(2026, 11, 25, 2, 0, 1, 0, time.UTC), time.Date(2026, 11, 25, 2, 0, 31, 0, time.UTC), time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)} {
		d.staleAlert(ctx, at)
	}
	require.Len(t, rec.texts(), 1, "once per stale period")
	assert.Contains(t, rec.texts()[0], "the last successful backup of stack shop is older than 48h0m0s: 2026-11-23T02:00:00Z")
	assert.Equal(t, "1", metricValue(t, d.m, "platback_notifications_sent_total", nil))

	failed := runner.Result{Start: time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC), Err: errors.New("credentials: Vault sealed")}
	d.health.finished(failed)
	d.staleAlert(ctx, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	assert.Len(t, rec.texts(), 1, "a failed run does not start a new stale period")

	ok.Start = time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	d.health.finished(ok)
	d.staleAlert(ctx, time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC))
	assert.Len(t, rec.texts(), 1, "fresh again")
	rec.fail = true
	d.staleAlert(ctx, time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC))
	d.staleAlert(ctx, time.Date(2026, 11, 29, 4, 0, 0, 0, time.UTC))
	assert.Len(t, rec.texts(), 2, "the new success went stale: notified again, once")
	assert.Equal(t, "1", metricValue(t, d.m, "platback_notifications_failed_total", nil))
}

// A restarted daemon does not notify again a stale period its previous
// start notified (before, every restart sent it once more); a new stale
// period is notified.
func TestStaleNotifiedOnceAcrossRestarts(t *testing.T) {
	cache := t.TempDir()
	ctx := context.Background()
	lastOK := runner.Result{Start: time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC), Duration: time.Minute, Projects: []string{"shop"},
		Targets: []runner.TargetResult{{Path: "/volumes/app/data", Kind: "volume"}}}
	require.NoError(t, SaveLastRun(cache, lastOK, "daemon"))
	start := func() (*daemon, *recorder) {
		d := newTestDaemon(t, cache)
		rec := &recorder{}
		d.a.Alerts = Alerts{Notifier: rec, Stack: notify.Stack{Project: "shop"}, Log: d.a.Log}
		d.refresh(true)
		return d, rec
	}
	d, rec := start()
	d.staleAlert(ctx, time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	require.Len(t, rec.texts(), 1)

	d, rec = start()
	d.staleAlert(ctx, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	assert.Empty(t, rec.texts(), "the same stale period, after a restart")

	lastOK.Start = time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	require.NoError(t, SaveLastRun(cache, lastOK, "run-once"))
	d, rec = start()
	d.staleAlert(ctx, time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC))
	assert.Len(t, rec.texts(), 1, "a new success that went stale is notified")
}

// Before any run, a sidecar that never succeeded goes stale from its start.
func TestStaleWithoutRun(t *testing.T) {
	d := newTestDaemon(t, t.TempDir())
	rec := &recorder{}
	d.a.Alerts = Alerts{Notifier: rec, Log: d.a.Log}
	d.staleAlert(context.Background(), time.Now().Add(72*time.Hour))
	require.Len(t, rec.texts(), 1)
	assert.Contains(t, rec.texts()[0], "no backup of this stack has succeeded since the sidecar started")
}

// The notifications and pings of a run-once reach the daemon's counters
// through the last-run file, once; a replay at start-up counts nothing.
func TestRunOnceDeliveryCounted(t *testing.T) {
	cache := t.TempDir()
	d := newTestDaemon(t, cache)
	res := runner.Result{Start: time.Now().Add(-time.Minute), Targets: []runner.TargetResult{{Path: "/volumes/app/data", Kind: "volume"}}}
	require.NoError(t, saveLastRun(cache, res, "run-once", Delivery{NotificationsSent: 1, NotificationsFailed: 2, PingsSent: 1, PingsFailed: 1}))
	d.refresh(false)
	d.refresh(false)
	assert.Equal(t, "1", metricValue(t, d.m, "platback_notifications_sent_total", nil))
	assert.Equal(t, "2", metricValue(t, d.m, "platback_notifications_failed_total", nil))
	assert.Equal(t, "1", metricValue(t, d.m, "platback_health_pings_sent_total", nil))
	assert.Equal(t, "1", metricValue(t, d.m, "platback_health_pings_failed_total", nil))

	d2 := newTestDaemon(t, cache)
	d2.refresh(true)
	assert.Equal(t, "0", metricValue(t, d2.m, "platback_notifications_failed_total", nil))
}

// The end of a run: the ping and the notification follow the outcome and
// the level; the failure ping carries the failed targets and their errors.
func TestAlertsFinished(t *testing.T) {
	rec := &recorder{}
	al := Alerts{Notifier: rec, Stack: notify.Stack{Project: "fallback"}}
	boom := errors.New("pg_dumpall: connection refused")
	failed := runner.Result{Projects: []string{"shop"}, Targets: []runner.TargetResult{{Path: "/volumes/a", Kind: "volume"},
		{Path: "/databases/db/all.sql", Kind: "postgres", Err: boom}}}
	dl := al.finished(context.Background(), failed)
	assert.Equal(t, Delivery{NotificationsSent: 1}, dl)
	require.Len(t, rec.msgs, 1)
	assert.Equal(t, notify.LevelError, rec.msgs[0].Level)
	assert.Contains(t, rec.msgs[0].Text, "backup of stack shop FAILED: 1 of 2 target(s) failed\n- /databases/db/all.sql (postgres): pg_dumpall: connection refused")
	assert.Equal(t, "1 of 2 target(s) failed: /databases/db/all.sql: pg_dumpall: connection refused", failure(failed))

	dl = al.finished(context.Background(), runner.Result{Err: errors.New("credentials: Vault sealed")})
	assert.Contains(t, rec.msgs[1].Text, "backup of stack fallback FAILED: credentials: Vault sealed", "no project in the result: the sidecar's")
	assert.Equal(t, 1, dl.NotificationsSent)
}
