package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/internal/notify"
	"github.com/platback/platback/internal/runlock"
	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/internal/stopstate"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/schedule"
	"github.com/platback/platback/vaultcreds"
)

// checkBed is a local restic repository holding one snapshot, and a
// daemon whose runner checks it, as CHECK_CRON's job does.
type checkBed struct {
	repo, cache, restic string
	env                 map[string]string
	rn                  *runner.Runner
	hooks               *hookBodies
}

// hookBodies is a webhook on 127.0.0.1 keeping the bodies it received.
type hookBodies struct {
	mu     sync.Mutex
	bodies []string
}

func (h *hookBodies) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.bodies
	h.bodies = nil
	return out
}

func newCheckBed(t *testing.T, parts int) *checkBed {
	t.Helper()
	cli := dockerbed.Client(t) // the runner plans through the engine
	b := &checkBed{repo: filepath.Join(t.TempDir(), "repo"), cache: t.TempDir(), restic: testbed.Tool(t, "restic"), hooks: &hookBodies{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.hooks.mu.Lock()
		b.hooks.bodies = append(b.hooks.bodies, string(body))
		b.hooks.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	b.env = map[string]string{
		"RESTIC_REPOSITORY": b.repo, "RESTIC_PASSWORD": "check-rotation",
		"PLATBACK_PROJECT": dockerbed.UniqueName("checkrot"), "PLATBACK_CACHE_DIR": b.cache,
		"PLATBACK_RESTIC": b.restic, "METRICS_LISTEN": config.Off,
		"CHECK_CRON": "@daily", "CHECK_READ_DATA_PARTS": strconv.Itoa(parts),
		"NOTIFICATION_URLS": "generic+" + srv.URL + "/hook",
	}
	cfg, err := config.Load(func(name string) string { return b.env[name] })
	require.NoError(t, err)
	creds, err := vaultcreds.NewSource(cfg.Credentials)
	require.NoError(t, err)
	disc, err := discover.New(cli, discover.Options{Self: discover.SelfOptions{Project: cfg.Project, MountInfoPath: "/nonexistent", Hostname: "laptop"}}) // the test runs on the host: its mounts and name must not make a running container "the sidecar"
	require.NoError(t, err)
	log := slog.New(slog.DiscardHandler)
	b.rn = &runner.Runner{Config: cfg, Docker: cli, Discover: disc, Creds: creds, Restic: cfg.Restic,
		Stops: stopstate.Open(filepath.Join(b.cache, "stopped.json")), Lock: runlock.New(b.cache), Log: log}

	data := t.TempDir()
	testbed.MakeTree(t, data, 1<<20)
	b.restic_(t, "init")
	b.restic_(t, "backup", "--host", "checkrot", data)
	return b
}

// restic_ runs restic on the repository and returns its output.
func (b *checkBed) restic_(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(b.restic, append([]string{"--no-cache", "-q"}, args...)...)
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+b.repo, "RESTIC_PASSWORD="+b.env["RESTIC_PASSWORD"])
	out, err := cmd.Output()
	require.NoError(t, err, "restic %v", args)
	return string(out)
}

// dataPack is the path of a pack file holding file data (not trees): the
// structure check does not read it, only --read-data-subset of its part.
func (b *checkBed) dataPack(t *testing.T) string {
	t.Helper()
	for id := range strings.FieldsSeq(b.restic_(t, "list", "index")) {
		var idx struct {
			Packs []struct {
				ID    string `json:"id"`
				Blobs []struct {
					Type string `json:"type"`
				} `json:"blobs"`
			} `json:"packs"`
		}
		require.NoError(t, json.Unmarshal([]byte(b.restic_(t, "cat", "index", id)), &idx))
		for _, p := range idx.Packs {
			if len(p.Blobs) > 0 && p.Blobs[0].Type == "data" {
				return filepath.Join(b.repo, "data", p.ID[:2], p.ID)
			}
		}
	}
	t.Fatal("no data pack in the repository")
	return ""
}

// daemon is a daemon of the bed with fresh metrics: a newly started
// sidecar.
func (b *checkBed) daemon(t *testing.T) *daemon {
	t.Helper()
	al, err := NewAlerts(b.rn.Config, b.rn.Log)
	require.NoError(t, err)
	al.Stack = notify.Stack{Project: "shop", Container: "shop-backup-1"}
	a := &Daemon{Config: b.rn.Config, Runner: b.rn, Log: b.rn.Log, Alerts: al}
	return &daemon{a: a, m: metrics.New("shop", "test", "0.19.1"), health: &healthState{started: time.Now(), factor: 2}}
}

// gauge is a metric's value in d's registry, or -1 when it is absent.
func gauge(t *testing.T, d *daemon, name string) float64 {
	t.Helper()
	mfs, err := d.m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			if c := mf.GetMetric()[0].GetCounter(); c != nil {
				return c.GetValue()
			}
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// CHECK_CRON's job against a real repository: each check reads the next
// part (1/3, 2/3, 3/3, then 1/3 again), and the rotation survives a restart
// of the sidecar. A data pack damaged in place is found only by the check
// of its own part: that check fails (metric 0, a notification to the
// webhook naming the part) and is retried with the same part until the
// pack is repaired. A pack that is gone fails the check whatever part it
// reads.
func TestScheduledCheckRotates(t *testing.T) {
	const parts = 3
	b := newCheckBed(t, parts)
	ctx := context.Background()
	d := b.daemon(t)
	assert.Equal(t, -1.0, gauge(t, d, "platback_check_last_ok"), "absent before the first check")

	check := func(d *daemon, wantPart int, wantOK bool) {
		t.Helper()
		err := d.scheduledCheck(ctx)
		st, lerr := LoadCheckState(b.cache)
		require.NoError(t, lerr)
		require.NotNil(t, st.Last)
		assert.Equal(t, strconv.Itoa(wantPart)+"/"+strconv.Itoa(parts), st.Last.Subset)
		assert.Equal(t, float64(wantPart), gauge(t, d, "platback_check_read_data_part"))
		assert.Equal(t, float64(parts), gauge(t, d, "platback_check_read_data_parts"))
		if wantOK {
			require.NoError(t, err, "part %d: %s", wantPart, st.Last.Error)
			assert.Equal(t, 1.0, gauge(t, d, "platback_check_last_ok"))
			assert.Equal(t, wantPart%parts+1, st.NextPart, "moves on after a pass")
		} else {
			require.Error(t, err, "part %d", wantPart)
			assert.Equal(t, 0.0, gauge(t, d, "platback_check_last_ok"))
			assert.Equal(t, wantPart, st.NextPart, "the same part next time")
		}
	}

	for _, part := range []int{1, 2, 3, 1} {
		check(d, part, true)
	}
	assert.Empty(t, b.hooks.take(), "a passing check notifies at level info only")
	assert.Equal(t, 0.0, gauge(t, d, "platback_check_failures_total"))

	// A restarted sidecar: the last check's result is replayed into its
	// metrics, and the rotation goes on where it was.
	d = b.daemon(t)
	d.refreshCheck(true)
	assert.Equal(t, 1.0, gauge(t, d, "platback_check_last_ok"))
	assert.Equal(t, 1.0, gauge(t, d, "platback_check_read_data_part"))
	check(d, 2, true)

	// Damage a data pack in place (same size: the structure check cannot
	// see it). restic puts pack p in part p[0] % t + 1.
	pack := b.dataPack(t)
	first, err := strconv.ParseUint(filepath.Base(pack)[:2], 16, 8)
	require.NoError(t, err)
	bad := int(first)%parts + 1
	orig, err := os.ReadFile(pack)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(pack, 0o644))
	damaged := append([]byte(nil), orig...)
	for i := len(damaged) / 3; i < len(damaged)/3+64; i++ {
		damaged[i] ^= 0xff
	}
	require.NoError(t, os.WriteFile(pack, damaged, 0o644))

	next := 3
	for next != bad {
		check(d, next, true)
		next = next%parts + 1
	}
	check(d, bad, false)
	check(d, bad, false) // retried, not skipped
	assert.Equal(t, 2.0, gauge(t, d, "platback_check_failures_total"))
	assert.NotEqual(t, -1.0, gauge(t, d, "platback_check_last_success_timestamp_seconds"), "the last success is kept")
	sent := b.hooks.take()
	require.Len(t, sent, 2, "one notification per failed check")
	want := "restic check of the repository of stack shop FAILED (structure and data part " + strconv.Itoa(bad) + "/3)"
	assert.Contains(t, sent[0], want)
	assert.Contains(t, sent[0], "docker exec shop-backup-1 sidecar check")
	assert.NotContains(t, sent[0], b.env["RESTIC_PASSWORD"])

	// A restart keeps the failure in the metrics (not counted again) and
	// the part to retry.
	d = b.daemon(t)
	d.refreshCheck(true)
	assert.Equal(t, 0.0, gauge(t, d, "platback_check_last_ok"))
	assert.Equal(t, 0.0, gauge(t, d, "platback_check_failures_total"))

	require.NoError(t, os.WriteFile(pack, orig, 0o644)) // repaired
	check(d, bad, true)

	// A pack that is gone: the structure check fails, whatever part.
	require.NoError(t, os.Remove(pack))
	st, err := LoadCheckState(b.cache)
	require.NoError(t, err)
	check(d, st.NextPart, false)
	assert.Len(t, b.hooks.take(), 1)
}

// A check due while a backup of this sidecar runs waits for the run lock,
// then runs; a check that waited or ran is not counted as a failure.
func TestScheduledCheckWaitsForTheRunLock(t *testing.T) {
	b := newCheckBed(t, 2)
	d := b.daemon(t)
	run := flock.New(filepath.Join(b.cache, runlock.FileName))
	locked, err := run.TryLock()
	require.NoError(t, err)
	require.True(t, locked)
	done := make(chan error, 1)
	go func() { done <- d.scheduledCheck(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("the check ran while a run held the lock (err %v)", err)
	case <-time.After(3 * time.Second):
	}
	assert.Equal(t, -1.0, gauge(t, d, "platback_check_last_ok"))
	require.NoError(t, run.Unlock())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("the check did not run once the lock was free")
	}
	assert.Equal(t, 1.0, gauge(t, d, "platback_check_last_ok"))
	assert.Equal(t, 1.0, gauge(t, d, "platback_check_read_data_part"))
}

// CHECK_CRON gets its own scheduler, in BACKUP_TZ; none without it.
func TestCheckScheduler(t *testing.T) {
	for _, tt := range []struct {
		cron string
		want int
	}{{"", 1}, {"30 3 * * SUN", 2}} {
		d := newTestDaemon(t, t.TempDir())
		d.a.Config.Schedule = schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris"}
		d.a.Config.CheckCron = tt.cron
		scheds, err := d.a.schedulers(d, "shop")
		require.NoError(t, err)
		require.Len(t, scheds, tt.want, "CHECK_CRON=%q", tt.cron)
		if tt.cron != "" {
			spec := scheds[1].Timetable().Spec()
			assert.Equal(t, schedule.Spec{Cron: tt.cron, TZ: "Europe/Paris"}, spec)
		}
	}
}

// The rotation's bookkeeping: part 1 first, a pass moves on and wraps, a
// failure stays, and a smaller CHECK_READ_DATA_PARTS than the saved next
// part starts again at 1.
func TestCheckStatePart(t *testing.T) {
	var st CheckState
	assert.Equal(t, 1, st.Part(12))
	st.record(CheckResult{Part: 12, Parts: 12})
	assert.Equal(t, 1, st.Part(12), "wraps after the last")
	st.record(CheckResult{Part: 5, Parts: 12})
	assert.Equal(t, 6, st.Part(12))
	st.record(CheckResult{Part: 6, Parts: 12, Error: "x", Err: errors.New("x")})
	assert.Equal(t, 6, st.Part(12), "a failed part is retried")
	assert.Equal(t, 1, st.Part(4), "fewer parts than the next: start again")
	st.record(CheckResult{}) // a check by hand without --rotate
	assert.Equal(t, 6, st.Part(12), "leaves the rotation alone")
}
