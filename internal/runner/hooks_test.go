package runner

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/metrics"
)

// hookMetric is the value of a hook metric of service and stage, failing
// the test when it is absent.
func hookMetric(t *testing.T, m *metrics.Metrics, name, service, stage string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range s.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["service"] != service || l["stage"] != stage {
				continue
			}
			if s.GetCounter() != nil {
				return s.GetCounter().GetValue()
			}
			return s.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s{service=%q,stage=%q}", name, service, stage)
	return 0
}

// hook runs a hook in the fake: it records "hook <label> in <container>"
// and fails as engine.failOn says; the command "hang" waits for its
// deadline.
func (f *fakeSteps) hook(ctx context.Context, _ *Session, h discover.Hook) (hookOutput, int, error) {
	err := f.engine.record("hook " + h.Label + " in " + h.Container.ID)
	if h.Cmd == "hang" {
		<-ctx.Done()
		return hookOutput{}, -1, ctx.Err()
	}
	if err != nil {
		return hookOutput{Stderr: err.Error()}, 3, err
	}
	return hookOutput{Stdout: "ok"}, 0, nil
}

func mkHook(src discover.ContainerRef, stage discover.HookStage, n int, onError string) discover.Hook {
	label := "stack-back.hooks." + string(stage) + "." + string(rune('0'+n))
	return discover.Hook{Stage: stage, Order: n, Label: label, Cmd: "cmd " + label, OnError: onError, Source: src, Container: src}
}

func owned(path string, c discover.ContainerRef, stop ...discover.ContainerRef) discover.Target {
	t := vol(path, stop...)
	t.Container, t.Service = c, c.Service
	return t
}

func TestRunHooks(t *testing.T) {
	app := discover.ContainerRef{ID: "app", Name: "app", Project: "p", Service: "app"}
	web := discover.ContainerRef{ID: "web", Name: "web", Project: "p", Service: "web"}
	abort, cont := discover.HookAbort, discover.HookContinue
	const pre1, pre2 = "hook stack-back.hooks.pre.1 in ", "hook stack-back.hooks.pre.2 in "

	t.Run("pre before any stop, in order; post, then finally, once the containers run again", func(t *testing.T) {
		rn, engine, _ := testRunner(t, config.Config{})
		s := session(owned("/volumes/app/a", app, app), owned("/volumes/web/w", web))
		s.Plan.Hooks = []discover.Hook{mkHook(app, discover.HookPre, 1, abort), mkHook(app, discover.HookPre, 2, abort),
			mkHook(app, discover.HookPost, 1, abort), mkHook(app, discover.HookError, 1, abort), mkHook(app, discover.HookFinally, 1, abort)}
		var res Result
		rn.runSession(context.Background(), s, &res)
		require.True(t, res.OK(), "%+v", res)
		assert.Equal(t, []string{pre1 + "app", pre2 + "app", "stop app", "backup /volumes/app/a", "start app", "backup /volumes/web/w",
			"hook stack-back.hooks.post.1 in app", "hook stack-back.hooks.finally.1 in app"}, engine.calls)
	})

	t.Run("a failed pre hook (abort) fails its container's targets with the hook named; the others are backed up; error and finally run", func(t *testing.T) {
		rn, engine, steps := testRunner(t, config.Config{})
		engine.failOn[pre1+"app"] = errors.New("maintenance mode refused")
		s := session(owned("/volumes/app/a", app, app), owned("/volumes/app/b", app, app), owned("/volumes/web/w", web))
		s.Plan.Hooks = []discover.Hook{mkHook(app, discover.HookPre, 1, abort), mkHook(app, discover.HookPre, 2, abort),
			mkHook(app, discover.HookPost, 1, abort), mkHook(app, discover.HookError, 1, abort), mkHook(app, discover.HookFinally, 1, abort),
			mkHook(web, discover.HookPre, 1, abort), mkHook(web, discover.HookPost, 1, abort)}
		var res Result
		rn.runSession(context.Background(), s, &res)
		require.Len(t, res.Targets, 3)
		for _, r := range res.Targets[:2] {
			assert.ErrorContains(t, r.Err, `not backed up: pre hook stack-back.hooks.pre.1 ("cmd stack-back.hooks.pre.1" in app) failed: maintenance mode refused`)
			var he *HookError
			assert.ErrorAs(t, r.Err, &he)
		}
		assert.NoError(t, res.Targets[2].Err)
		assert.Equal(t, []string{"/volumes/web/w"}, steps.backedUp)
		assert.NotContains(t, engine.calls, pre2+"app", "abort: the stage stops")
		assert.NotContains(t, engine.calls, "stop app", "nothing stopped for targets that are not backed up")
		assert.NotContains(t, engine.calls, "hook stack-back.hooks.post.1 in app")
		assert.Equal(t, []string{pre1 + "app", pre1 + "web", "backup /volumes/web/w", "hook stack-back.hooks.error.1 in app",
			"hook stack-back.hooks.finally.1 in app", "hook stack-back.hooks.post.1 in web"}, engine.calls)
		assert.Equal(t, []string{"/volumes/web/w"}, steps.forgotten)
	})

	t.Run("on-error continue: the failure is logged and the next hook and the backup run", func(t *testing.T) {
		rn, engine, _ := testRunner(t, config.Config{})
		engine.failOn[pre1+"app"] = errors.New("exit 1")
		s := session(owned("/volumes/app/a", app))
		s.Plan.Hooks = []discover.Hook{mkHook(app, discover.HookPre, 1, cont), mkHook(app, discover.HookPre, 2, abort), mkHook(app, discover.HookPost, 1, abort)}
		var res Result
		rn.runSession(context.Background(), s, &res)
		require.True(t, res.OK(), "%+v", res)
		assert.Equal(t, []string{pre1 + "app", pre2 + "app", "backup /volumes/app/a", "hook stack-back.hooks.post.1 in app"}, engine.calls)
	})

	t.Run("every hook that ran is in the result and the metrics: a failure counted for its service and stage, on-error continue too", func(t *testing.T) {
		rn, engine, _ := testRunner(t, config.Config{})
		rn.Metrics = metrics.New("p", "v", "0.19.1")
		engine.failOn[pre1+"app"] = errors.New("exit 1")
		s := session(owned("/volumes/app/a", app))
		s.Plan.Hooks = []discover.Hook{mkHook(app, discover.HookPre, 1, cont), mkHook(app, discover.HookPre, 2, abort), mkHook(app, discover.HookFinally, 1, abort)}
		var res Result
		rn.runSession(context.Background(), s, &res)
		require.True(t, res.OK(), "%+v", res)
		require.Len(t, res.Hooks, 3)
		assert.Equal(t, HookResult{Service: "app", Stage: "pre", Label: "stack-back.hooks.pre.1", Duration: res.Hooks[0].Duration,
			Error: `pre hook stack-back.hooks.pre.1 ("cmd stack-back.hooks.pre.1" in app) failed: exit 1`}, res.Hooks[0])
		assert.Empty(t, res.Hooks[1].Error)
		assert.Equal(t, "finally", res.Hooks[2].Stage)
		assert.Equal(t, 1.0, hookMetric(t, rn.Metrics, "platback_hook_failures_total", "app", "pre"))
		assert.Equal(t, 0.0, hookMetric(t, rn.Metrics, "platback_hook_failures_total", "app", "finally"))
		assert.Equal(t, res.Hooks[2].Duration.Seconds(), hookMetric(t, rn.Metrics, "platback_hook_last_duration_seconds", "app", "finally"))

		b, err := json.Marshal(res)
		require.NoError(t, err)
		var back Result
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, res.Hooks, back.Hooks, "the last-run file keeps them")
	})

	t.Run("a failed backup runs error, not post; a failed post runs error and fails the target naming its snapshot", func(t *testing.T) {
		rn, engine, steps := testRunner(t, config.Config{})
		steps.fail["/volumes/app/a"] = errors.New("restic failed")
		s := session(owned("/volumes/app/a", app))
		s.Plan.Hooks = []discover.Hook{mkHook(app, discover.HookPost, 1, abort), mkHook(app, discover.HookError, 1, abort), mkHook(app, discover.HookFinally, 1, abort)}
		var res Result
		rn.runSession(context.Background(), s, &res)
		assert.Equal(t, []string{"backup /volumes/app/a", "hook stack-back.hooks.error.1 in app", "hook stack-back.hooks.finally.1 in app"}, engine.calls)

		rn, engine, _ = testRunner(t, config.Config{})
		engine.failOn["hook stack-back.hooks.post.1 in app"] = errors.New("cache flush failed")
		s = session(owned("/volumes/app/a", app))
		s.Plan.Hooks = []discover.Hook{mkHook(app, discover.HookPost, 1, abort), mkHook(app, discover.HookError, 1, abort), mkHook(app, discover.HookFinally, 1, abort)}
		res = Result{}
		rn.runSession(context.Background(), s, &res)
		require.Len(t, res.Targets, 1)
		assert.EqualError(t, res.Targets[0].Err, `backed up (snapshot snap-/volumes/app/a), but then: post hook stack-back.hooks.post.1 ("cmd stack-back.hooks.post.1" in app) failed: cache flush failed`)
		assert.Equal(t, res.Targets[0].Err.Error(), res.Targets[0].Error)
		assert.Contains(t, engine.calls, "hook stack-back.hooks.error.1 in app")
		assert.Contains(t, engine.calls, "hook stack-back.hooks.finally.1 in app")
	})

	t.Run("a hanging hook fails after HOOK_TIMEOUT; a context with no container fails without running", func(t *testing.T) {
		rn, engine, _ := testRunner(t, config.Config{HookTimeout: 50 * time.Millisecond})
		h := mkHook(app, discover.HookPre, 1, abort)
		h.Cmd = "hang"
		nowhere := mkHook(app, discover.HookFinally, 1, abort)
		nowhere.Context, nowhere.Container = "gone", discover.ContainerRef{}
		s := session(owned("/volumes/app/a", app))
		s.Plan.Hooks = []discover.Hook{h, nowhere}
		var res Result
		start := time.Now()
		rn.runSession(context.Background(), s, &res)
		assert.Less(t, time.Since(start), 5*time.Second)
		require.Len(t, res.Targets, 1)
		assert.ErrorContains(t, res.Targets[0].Err, `pre hook stack-back.hooks.pre.1 ("hang" in app) failed: timed out after 50ms (HOOK_TIMEOUT)`)
		assert.ErrorContains(t, res.Targets[0].Err, `finally hook stack-back.hooks.finally.1 ("cmd stack-back.hooks.finally.1" in service gone) failed: no running container of service "gone"`)
		assert.Equal(t, []string{pre1 + "app"}, engine.calls)
	})

	t.Run("a cancelled run still runs error and finally hooks", func(t *testing.T) {
		rn, engine, _ := testRunner(t, config.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s := session(owned("/volumes/app/a", app))
		s.Plan.Hooks = []discover.Hook{mkHook(app, discover.HookError, 1, abort), mkHook(app, discover.HookFinally, 1, abort)}
		var res Result
		rn.runSession(ctx, s, &res)
		assert.ErrorIs(t, res.Err, context.Canceled)
		assert.Equal(t, []string{"hook stack-back.hooks.error.1 in app", "hook stack-back.hooks.finally.1 in app"}, engine.calls)
	})
}
