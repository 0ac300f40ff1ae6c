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
	forgotten []string
	fail      map[string]bool
	running   int
	most      int
}

func (f *fakeSteps) backup(ctx context.Context, _ *Session, t discover.Target) (backup.Summary, error) {
	f.mu.Lock()
	f.running++
	f.most = max(f.most, f.running)
	f.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	f.engine.record("backup " + t.Path)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running--
	f.backedUp = append(f.backedUp, t.Path)
	if f.fail[t.Path] {
		return backup.Summary{}, fmt.Errorf("backup of %s failed", t.Path)
	}
	return backup.Summary{SnapshotID: "snap-" + t.Path}, nil
}

func (f *fakeSteps) forget(_ context.Context, _ *Session, t discover.Target) (backup.ForgetResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgotten = append(f.forgotten, t.Path)
	return backup.ForgetResult{}, nil
}

func testRunner(t *testing.T, cfg config.Config) (*Runner, *fakeEngine, *fakeSteps) {
	engine := &fakeEngine{failOn: map[string]error{}}
	steps := &fakeSteps{engine: engine, fail: map[string]bool{}}
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

func session(targets ...discover.Target) *Session {
	return &Session{Plan: discover.Plan{Projects: []string{"p"}, Targets: targets}, Host: "p"}
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
		rn, engine, _ := testRunner(t, config.Config{})
		s := session(vol("/volumes/app/a", app), vol("/volumes/app/b", app), vol("/volumes/app/shared", app, db), vol("/volumes/web/w"), dump("/databases/pg/all_databases.sql"))
		var res Result
		rn.runSession(context.Background(), s, &res)
		require.True(t, res.OK(), "%+v", res)
		assert.Equal(t, []string{"stop app", "stop db", "backup /volumes/app/a", "backup /volumes/app/b", "backup /volumes/app/shared",
			"start db", "start app", "backup /volumes/web/w", "backup /databases/pg/all_databases.sql"}, engine.calls)
		assert.Equal(t, paths(res.Targets), []string{"/volumes/app/a", "/volumes/app/b", "/volumes/app/shared", "/volumes/web/w", "/databases/pg/all_databases.sql"},
			"results in plan order")
		list, err := rn.Stops.List()
		require.NoError(t, err)
		assert.Empty(t, list, "the state file forgets what runs again")
	})

	t.Run("one failing target hides no other, and retention covers only the ones that succeeded", func(t *testing.T) {
		rn, engine, steps := testRunner(t, config.Config{})
		steps.fail["/volumes/app/b"] = true
		s := session(vol("/volumes/app/a", app), vol("/volumes/app/b", app), dump("/databases/pg/all_databases.sql"))
		var res Result
		rn.runSession(context.Background(), s, &res)
		assert.False(t, res.OK())
		require.Len(t, res.Targets, 3)
		assert.Error(t, res.Targets[1].Err)
		assert.NoError(t, res.Targets[0].Err)
		assert.NoError(t, res.Targets[2].Err)
		assert.Equal(t, []string{"/volumes/app/a", "/databases/pg/all_databases.sql"}, steps.forgotten)
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

	t.Run("PLATBACK_PARALLEL bounds the targets at once; a window stays in order", func(t *testing.T) {
		rn, engine, steps := testRunner(t, config.Config{Parallel: 3})
		var targets []discover.Target
		for i := range 12 {
			targets = append(targets, vol(fmt.Sprintf("/volumes/s%02d/data", i)))
		}
		targets = append(targets, vol("/volumes/app/a", app), vol("/volumes/app/b", app))
		var res Result
		rn.runSession(context.Background(), session(targets...), &res)
		require.True(t, res.OK())
		assert.Equal(t, 3, steps.most)
		a := slices.Index(engine.calls, "backup /volumes/app/a")
		b := slices.Index(engine.calls, "backup /volumes/app/b")
		assert.Less(t, slices.Index(engine.calls, "stop app"), a)
		assert.Less(t, a, b)
		assert.Less(t, b, slices.Index(engine.calls, "start app"))
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
