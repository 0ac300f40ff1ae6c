package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/internal/stopstate"
)

// fakeEngine records the containers a run stops and starts, in order.
type fakeEngine struct {
	Docker // methods a test does not expect panic (nil interface)
	mu     sync.Mutex
	calls  []string
	failOn map[string]error // "stop app" → error
}

func (f *fakeEngine) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.failOn[call]
}

func (f *fakeEngine) ContainerStop(_ context.Context, id string, _ client.ContainerStopOptions) (client.ContainerStopResult, error) {
	return client.ContainerStopResult{}, f.record("stop " + id)
}

func (f *fakeEngine) ContainerStart(_ context.Context, id string, _ client.ContainerStartOptions) (client.ContainerStartResult, error) {
	return client.ContainerStartResult{}, f.record("start " + id)
}

// fakeSteps backs up and forgets without restic; it records what ran and
// fails the paths it is told to.
type fakeSteps struct {
	engine    *fakeEngine
	mu        sync.Mutex
	backedUp  []string
	workers   [][]string // the targets of each worker, in order
	forgotten []string
	forgets   int
	verified  int
	verifyErr error
	fail      map[string]error
	running   int
	most      int
}

func (f *fakeSteps) verify(context.Context, *Session) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verified++
	f.engine.record("verify")
	return f.verifyErr
}

// start and end bracket a unit of work: a worker or a dump.
func (f *fakeSteps) start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running++
	f.most = max(f.most, f.running)
}

func (f *fakeSteps) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running--
}

func (f *fakeSteps) backupOne(t discover.Target) (backup.Summary, error) {
	time.Sleep(5 * time.Millisecond)
	f.engine.record("backup " + t.Path)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backedUp = append(f.backedUp, t.Path)
	if err := f.fail[t.Path]; err != nil {
		return backup.Summary{}, err
	}
	return backup.Summary{SnapshotID: "snap-" + t.Path}, nil
}

func (f *fakeSteps) backupVolumes(_ context.Context, _ *Session, targets []discover.Target, done func(int, backup.Summary, error)) {
	f.start()
	defer f.end()
	var ps []string
	for _, t := range targets {
		ps = append(ps, t.Path)
	}
	f.mu.Lock()
	f.workers = append(f.workers, ps)
	f.mu.Unlock()
	for j, t := range targets {
		sum, err := f.backupOne(t)
		done(j, sum, err)
	}
}

func (f *fakeSteps) backupDatabase(_ context.Context, _ *Session, t discover.Target) (backup.Summary, error) {
	f.start()
	defer f.end()
	return f.backupOne(t)
}

func (f *fakeSteps) forget(_ context.Context, _ *Session, targets []discover.Target) (backup.ForgetResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgets++
	for _, t := range targets {
		f.forgotten = append(f.forgotten, t.Path)
	}
	return backup.ForgetResult{}, nil
}

func testRunner(t *testing.T, cfg config.Config) (*Runner, *fakeEngine, *fakeSteps) {
	engine := &fakeEngine{failOn: map[string]error{}}
	steps := &fakeSteps{engine: engine, fail: map[string]error{}}
	if cfg.Policy.Validate() != nil {
		cfg.Policy = backup.DefaultPolicy()
	}
	rn := &Runner{Config: cfg, Docker: engine, Log: slog.New(slog.DiscardHandler), testSteps: steps,
		Stops: stopstate.Open(filepath.Join(t.TempDir(), "stopped.json"))}
	return rn, engine, steps
}

func vol(path string, stop ...discover.ContainerRef) discover.Target {
	return discover.Target{Kind: discover.KindVolume, Path: path, Volume: &discover.VolumeTarget{Type: "volume", Name: path, Stop: stop}}
}

func dump(path string) discover.Target {
	return discover.Target{Kind: discover.KindPostgres, Path: path, Database: &discover.DatabaseTarget{Engine: discover.KindPostgres}}
}

// session is an opened session: EnsureRepo opened the repository.
func session(targets ...discover.Target) *Session {
	return &Session{Plan: discover.Plan{Projects: []string{"p"}, Targets: targets}, Host: "p", opened: true}
}

func paths(rs []TargetResult) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Path)
	}
	return out
}

func TestRunDecisions(t *testing.T) {
	db := discover.ContainerRef{ID: "db", Name: "db", Project: "p", Service: "db"}
	app := discover.ContainerRef{ID: "app", Name: "app", Project: "p", Service: "app", DependsOn: []string{"db"}}

	t.Run("a stop window stops its containers once, dependents first, and restarts them, dependencies first", func(t *testing.T) {
		rn, engine, steps := testRunner(t, config.Config{})
		s := session(vol("/volumes/app/a", app), vol("/volumes/app/b", app), vol("/volumes/app/shared", app, db), vol("/volumes/web/w"), dump("/databases/pg/all_databases.sql"))
		var res Result
		rn.runSession(context.Background(), s, &res)
		require.True(t, res.OK(), "%+v", res)
		assert.Equal(t, []string{"stop app", "stop db", "backup /volumes/app/a", "backup /volumes/app/b", "backup /volumes/app/shared",
			"start db", "start app", "backup /volumes/web/w", "backup /databases/pg/all_databases.sql"}, engine.calls)
		assert.Equal(t, paths(res.Targets), []string{"/volumes/app/a", "/volumes/app/b", "/volumes/app/shared", "/volumes/web/w", "/databases/pg/all_databases.sql"},
			"results in plan order")
		assert.Equal(t, [][]string{{"/volumes/app/a", "/volumes/app/b", "/volumes/app/shared"}, {"/volumes/web/w"}}, steps.workers,
			"one worker for the stop window, one for the volumes that need no stop")
		assert.Equal(t, 1, steps.forgets, "one retention call for every target")
		assert.Zero(t, steps.verified, "the repository was opened already")
		list, err := rn.Stops.List()
		require.NoError(t, err)
		assert.Empty(t, list, "the state file forgets what runs again")
	})

	t.Run("one failing target hides no other, and retention covers only the ones that succeeded", func(t *testing.T) {
		rn, engine, steps := testRunner(t, config.Config{})
		steps.fail["/volumes/app/b"] = errors.New("backup of /volumes/app/b failed")
		s := session(vol("/volumes/app/a", app), vol("/volumes/app/b", app), dump("/databases/pg/all_databases.sql"))
		var res Result
		rn.runSession(context.Background(), s, &res)
		assert.False(t, res.OK())
		require.Len(t, res.Targets, 3)
		assert.Error(t, res.Targets[1].Err)
		assert.NoError(t, res.Targets[0].Err)
		assert.NoError(t, res.Targets[2].Err)
		assert.Equal(t, []string{"/volumes/app/a", "/databases/pg/all_databases.sql"}, steps.forgotten)
		assert.Equal(t, 1, steps.forgets)
		assert.Contains(t, engine.calls, "start app", "restarted after a failed target")
	})

	t.Run("a container that cannot be stopped fails its window's targets, and is restarted", func(t *testing.T) {
		rn, engine, steps := testRunner(t, config.Config{})
		engine.failOn["stop app"] = errors.New("engine said no")
		s := session(vol("/volumes/app/a", app), vol("/volumes/web/w"))
		var res Result
		rn.runSession(context.Background(), s, &res)
		require.Len(t, res.Targets, 2)
		assert.ErrorContains(t, res.Targets[0].Err, "engine said no")
		assert.NoError(t, res.Targets[1].Err)
		assert.Equal(t, []string{"/volumes/web/w"}, steps.backedUp, "nothing of the window was backed up")
		assert.Contains(t, engine.calls, "start app")
	})

	t.Run("an empty plan is a failed run", func(t *testing.T) {
		rn, _, steps := testRunner(t, config.Config{LabelPrefix: "stack-back."})
		var res Result
		rn.runSession(context.Background(), session(), &res)
		assert.False(t, res.OK())
		assert.ErrorContains(t, res.Err, "nothing to back up")
		assert.Empty(t, steps.backedUp)
	})

	t.Run("with RETENTION_CRON a run forgets nothing", func(t *testing.T) {
		rn, _, steps := testRunner(t, config.Config{RetentionCron: "0 4 * * *"})
		var res Result
		rn.runSession(context.Background(), session(vol("/volumes/web/w")), &res)
		require.True(t, res.OK())
		assert.Empty(t, steps.forgotten)
	})

	t.Run("a run that created the repository needs no forget: each target's first snapshot is kept and counted", func(t *testing.T) {
		for _, tc := range []struct {
			policy  backup.Policy
			forgets int
		}{
			{backup.Policy{Last: 1}, 0},
			{backup.Policy{Within: "1d"}, 0},
			{backup.Policy{Daily: 7, Tags: []string{"keep"}}, 0},
			{backup.Policy{Tags: []string{"keep"}}, 1}, // restic decides: it may refuse to empty a group
		} {
			rn, _, steps := testRunner(t, config.Config{Policy: tc.policy})
			rn.Metrics = metrics.New("p", "test", "0.19.1")
			steps.fail["/volumes/b/y"] = errors.New("backup of /volumes/b/y failed")
			s := session(vol("/volumes/a/x"), vol("/volumes/b/y"), dump("/databases/pg/all.sql"))
			s.initialized = true
			var res Result
			rn.runSession(context.Background(), s, &res)
			require.Len(t, res.Targets, 3)
			assert.Equal(t, tc.forgets, steps.forgets, "policy %s", tc.policy)
			if tc.forgets > 0 {
				continue
			}
			assert.Empty(t, res.Retention)
			for path, want := range map[string]float64{"/volumes/a/x": 1, "/volumes/b/y": 0, "/databases/pg/all.sql": 1} {
				assert.Equal(t, want, snapshotMetric(t, rn.Metrics, path), "%s, policy %s", path, tc.policy)
			}
		}
	})

	t.Run("PLATBACK_PARALLEL bounds the workers and dumps at once and shares out the volumes that need no stop; a window stays in order", func(t *testing.T) {
		rn, engine, steps := testRunner(t, config.Config{Parallel: 3})
		var targets []discover.Target
		for i := range 12 {
			targets = append(targets, vol(fmt.Sprintf("/volumes/s%02d/data", i)))
		}
		targets = append(targets, vol("/volumes/app/a", app), vol("/volumes/app/b", app), dump("/databases/pg/all.sql"), dump("/databases/pg2/all.sql"))
		var res Result
		rn.runSession(context.Background(), session(targets...), &res)
		require.True(t, res.OK())
		assert.Len(t, res.Targets, 16)
		assert.Equal(t, 3, steps.most)
		assert.Len(t, steps.workers, 4, "three workers share the 12 volumes that need no stop, one for the window")
		for _, w := range steps.workers {
			if !slices.Contains(w, "/volumes/app/a") {
				assert.Len(t, w, 4)
			}
		}
		a := slices.Index(engine.calls, "backup /volumes/app/a")
		b := slices.Index(engine.calls, "backup /volumes/app/b")
		assert.Less(t, slices.Index(engine.calls, "stop app"), a)
		assert.Less(t, a, b)
		assert.Less(t, b, slices.Index(engine.calls, "start app"))
	})

	t.Run("with PLATBACK_PARALLEL 1 one worker backs up every volume that needs no stop", func(t *testing.T) {
		rn, _, steps := testRunner(t, config.Config{Parallel: 1})
		s := session(vol("/volumes/a/x"), dump("/databases/pg/all.sql"), vol("/volumes/b/y"), vol("/volumes/c/z"))
		var res Result
		rn.runSession(context.Background(), s, &res)
		require.True(t, res.OK())
		assert.Equal(t, [][]string{{"/volumes/a/x", "/volumes/b/y", "/volumes/c/z"}}, steps.workers)
		assert.Equal(t, paths(res.Targets), []string{"/volumes/a/x", "/databases/pg/all.sql", "/volumes/b/y", "/volumes/c/z"})
	})

	t.Run("a wrong password fails the run as such; nothing more starts, nothing is forgotten", func(t *testing.T) {
		rn, engine, steps := testRunner(t, config.Config{})
		steps.fail["/volumes/a/x"] = fmt.Errorf("backup paths /volumes/a/x: %w", backup.ErrWrongPassword)
		steps.fail["/volumes/b/y"] = fmt.Errorf("backup paths /volumes/b/y: %w", backup.ErrWrongPassword)
		s := session(vol("/volumes/a/x"), vol("/volumes/b/y"), dump("/databases/pg/all.sql"), vol("/volumes/app/a", app))
		s.opened = false // EnsureRepo found the config file and did not open the repository
		var res Result
		rn.runSession(context.Background(), s, &res)
		require.ErrorIs(t, res.Err, backup.ErrWrongPassword)
		assert.Empty(t, res.Targets, "the run failed, not its targets, as when EnsureRepo finds a wrong password")
		assert.NotContains(t, steps.backedUp, "/databases/pg/all.sql", "the dump did not start")
		assert.NotContains(t, engine.calls, "stop app", "no container stopped for a repository that does not open")
		assert.Zero(t, steps.verified, "the failed backups said enough")
		assert.Zero(t, steps.forgets)
	})

	t.Run("containers are stopped only once the repository opened with the password", func(t *testing.T) {
		rn, engine, steps := testRunner(t, config.Config{})
		s := session(vol("/volumes/app/a", app), vol("/volumes/web/w"))
		s.opened = false
		var res Result
		rn.runSession(context.Background(), s, &res)
		require.True(t, res.OK())
		assert.Equal(t, []string{"verify", "stop app", "backup /volumes/app/a", "start app", "backup /volumes/web/w"}, engine.calls)

		rn, engine, steps = testRunner(t, config.Config{})
		s = session(vol("/volumes/web/w"), vol("/volumes/app/a", app))
		s.opened = false
		rn.runSession(context.Background(), s, &res)
		assert.Equal(t, []string{"backup /volumes/web/w", "stop app", "backup /volumes/app/a", "start app"}, engine.calls,
			"a backup before the window proved the password")
		assert.Zero(t, steps.verified)

		rn, engine, steps = testRunner(t, config.Config{})
		steps.verifyErr = fmt.Errorf("open repository: %w", backup.ErrWrongPassword)
		s = session(vol("/volumes/app/a", app), vol("/volumes/app/b", app))
		s.opened = false
		res = Result{}
		rn.runSession(context.Background(), s, &res)
		assert.ErrorIs(t, res.Err, backup.ErrWrongPassword)
		assert.Equal(t, []string{"verify"}, engine.calls, "nothing stopped, nothing backed up")
		assert.Empty(t, res.Targets)
	})

	t.Run("a cancelled run starts nothing more and says it was interrupted", func(t *testing.T) {
		rn, _, steps := testRunner(t, config.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var res Result
		rn.runSession(ctx, session(vol("/volumes/a/x"), vol("/volumes/b/y")), &res)
		assert.ErrorIs(t, res.Err, context.Canceled)
		assert.Empty(t, steps.forgotten, "no retention after an interrupted run")
	})
}

// A result read back from JSON (the last-run file, run-once --json) still
// matches backup's sentinel errors.
func TestResultErrorsSurviveJSON(t *testing.T) {
	res := Result{Start: time.Now(), Err: fmt.Errorf("open: %w", backup.ErrWrongPassword), Targets: []TargetResult{
		{Path: "/volumes/app/data", Err: fmt.Errorf("worker: %w", backup.ErrLocked)},
		{Path: "/volumes/app/ok"},
	}}
	raw, err := json.Marshal(res)
	require.NoError(t, err)
	var back Result
	require.NoError(t, json.Unmarshal(raw, &back))
	assert.ErrorIs(t, back.Err, backup.ErrWrongPassword)
	assert.ErrorIs(t, back.Targets[0].Err, backup.ErrLocked)
	assert.EqualError(t, back.Targets[0].Err, "worker: "+backup.ErrLocked.Error())
	assert.NoError(t, back.Targets[1].Err)
	assert.False(t, back.OK())
}

// snapshotMetric is platback_snapshots of target.
func snapshotMetric(t *testing.T, m *metrics.Metrics, target string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "platback_snapshots" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if lp.GetName() == "target" && lp.GetValue() == target {
					return s.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no platback_snapshots{target=%q}", target)
	return 0
}
