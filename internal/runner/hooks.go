package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/platback/platback/dbengine"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/internal/outbuf"
)

// DefaultHookTimeout bounds one hook command when Config.HookTimeout is 0.
const DefaultHookTimeout = 5 * time.Minute

// hookOutputSize bounds what is kept of a hook's output for the log: the
// first bytes of its stdout, the last of its stderr.
const hookOutputSize = 4 << 10

// hookErrorSize bounds the stderr quoted in a hook's error.
const hookErrorSize = 512

// HookError is a hook command that failed: it exited non-zero, timed out,
// or could not run.
type HookError struct {
	Hook discover.Hook
	// Code is the exit status, -1 when the command did not exit by itself.
	Code int
	Err  error
}

func (e *HookError) Error() string {
	where := e.Hook.Container.Name
	if where == "" {
		where = "service " + e.Hook.Context
	}
	return fmt.Sprintf("%s hook %s (%q in %s) failed: %v", e.Hook.Stage, e.Hook.Label, e.Hook.Cmd, where, e.Err)
}

func (e *HookError) Unwrap() error { return e.Err }

// HookResult is one hook command that ran in a run: the last-run file keeps
// them, so the daemon's metrics count the hooks of a `sidecar run-once` too.
type HookResult struct {
	// Service is the compose service whose labels carry the hook.
	Service  string        `json:"service"`
	Stage    string        `json:"stage"`
	Label    string        `json:"label"`
	Duration time.Duration `json:"duration"`
	Error    string        `json:"error,omitempty"`
}

// recordHook keeps a hook's outcome in the session and the metrics.
func (rn *Runner) recordHook(s *Session, h discover.Hook, d time.Duration, err error) {
	r := HookResult{Service: h.Source.Service, Stage: string(h.Stage), Label: h.Label, Duration: d}
	if err != nil {
		r.Error = err.Error()
	}
	if s != nil {
		s.mu.Lock()
		s.hooks = append(s.hooks, r)
		s.mu.Unlock()
	}
	if rn.Metrics != nil {
		rn.Metrics.Hook(metrics.Hook{Service: r.Service, Stage: r.Stage, Duration: d, Failed: err != nil})
	}
}

// hookResults are the hooks the session ran, in order.
func (s *Session) hookResults() []HookResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hooks)
}

// hookOutput is what a hook printed, bounded.
type hookOutput struct {
	Stdout, Stderr string
}

// runHooks runs hooks one after the other. A failing hook with on-error
// continue is logged and the next one runs; one with abort stops the
// stage, and its *HookError is returned.
func (rn *Runner) runHooks(ctx context.Context, s *Session, hooks []discover.Hook) error {
	for _, h := range hooks {
		err := rn.runHook(ctx, s, h)
		if err == nil {
			continue
		}
		if h.OnError == discover.HookContinue {
			rn.Log.Warn("hook failed, continuing (on-error continue)", "hook", h.Label, "err", err)
			continue
		}
		return err
	}
	return nil
}

// runHook runs one hook in its container, within the hook timeout, and
// logs its output.
func (rn *Runner) runHook(ctx context.Context, s *Session, h discover.Hook) error {
	log := rn.Log.With("hook", h.Label, "container", h.Container.Name)
	if h.Container.ID == "" {
		err := &HookError{Hook: h, Code: -1, Err: fmt.Errorf("no running container of service %q (its %s.context label)", h.Context, h.Label)}
		log.Error("hook failed", "err", err)
		rn.recordHook(s, h, 0, err)
		return err
	}
	timeout := rn.Config.HookTimeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	hctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("timed out after %s (HOOK_TIMEOUT)", timeout))
	defer cancel()
	log.Info("hook started", "stage", h.Stage, "cmd", h.Cmd)
	start := time.Now()
	out, code, err := rn.steps().hook(hctx, s, h)
	took := time.Since(start)
	attrs := []any{"duration", took.Round(time.Millisecond), "stdout", out.Stdout, "stderr", out.Stderr}
	if err != nil {
		if hctx.Err() != nil {
			err = context.Cause(hctx)
		}
		herr := &HookError{Hook: h, Code: code, Err: err}
		log.Error("hook failed", append(attrs, "exit_code", code, "err", herr)...)
		rn.recordHook(s, h, took, herr)
		return herr
	}
	log.Info("hook done", attrs...)
	rn.recordHook(s, h, took, nil)
	return nil
}

// execHook runs h.Cmd with `sh -c` in h.Container through the Engine
// API's exec, as database dumps run: no variable is added to the
// container's own environment, and the command line is the label's value,
// which the container's labels show anyway. A hook given up on (timeout,
// cancelled run) is stopped in the container when it has /bin/sh.
func (rn *Runner) execHook(ctx context.Context, h discover.Hook) (hookOutput, int, error) {
	cli := rn.client()
	if cli == nil {
		return hookOutput{}, -1, errors.New("no Docker client to run hooks")
	}
	stdout, wait, err := dbengine.ExecStream(ctx, cli, h.Container.ID, []string{"sh", "-c", h.Cmd}, nil)
	if err != nil {
		return hookOutput{}, -1, err
	}
	head := outbuf.NewHead(hookOutputSize)
	_, _ = io.Copy(head, stdout)
	stdout.Close()
	code, tail, err := wait()
	out := hookOutput{Stdout: strings.TrimSpace(head.String()), Stderr: strings.TrimSpace(tail)}
	var exit *dbengine.ExitError
	if errors.As(err, &exit) {
		msg := fmt.Sprintf("exited with status %d", exit.Code)
		if t := lastBytes(out.Stderr, hookErrorSize); t != "" {
			msg += ": " + t
		} else if exit.StartError != "" {
			msg += ": " + exit.StartError
		}
		err = errors.New(msg)
	}
	return out, code, err
}

func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + strings.ToValidUTF8(s[len(s)-n:], "")
}

// preHooks runs the pre hooks of each container that has hooks, in plan
// order, before anything is stopped or backed up. It returns, for each
// container whose pre hooks failed (abort), the error: its targets are
// not backed up.
func (rn *Runner) preHooks(ctx context.Context, s *Session) map[string]error {
	failed := map[string]error{}
	for _, src := range s.Plan.HookSources() {
		if err := rn.runHooks(ctx, s, s.Plan.HooksOf(src.ID, discover.HookPre)); err != nil {
			failed[src.ID] = err
		}
	}
	return failed
}

// hookSkips maps the plan's targets of the containers whose pre hooks
// failed to the error they fail with.
func hookSkips(plan discover.Plan, failed map[string]error) map[int]error {
	skip := map[int]error{}
	for i, t := range plan.Targets {
		if err := failed[t.Container.ID]; err != nil {
			skip[i] = fmt.Errorf("not backed up: %w", err)
		}
	}
	return skip
}

// afterHooks runs, for each container that has hooks, once the backups
// are done and the stopped containers run again: its post hooks when its
// pre hooks and all its targets succeeded, else its error hooks (also
// after a failed post hook), then its finally hooks. A failure of these
// is added to the container's targets' results. They run even when the
// run is being cancelled (each within the hook timeout), so a maintenance
// mode a pre hook turned on is turned off.
func (rn *Runner) afterHooks(ctx context.Context, s *Session, preFailed map[string]error, results []TargetResult) {
	ctx = context.WithoutCancel(ctx)
	byPath := map[string]*TargetResult{}
	for i := range results {
		byPath[results[i].Path] = &results[i]
	}
	for _, src := range s.Plan.HookSources() {
		var mine []*TargetResult
		ok := preFailed[src.ID] == nil
		for _, t := range s.Plan.Targets {
			if t.Container.ID != src.ID {
				continue
			}
			r := byPath[t.Path]
			if r == nil || r.Err != nil {
				ok = false // failed, or never got to (an interrupted run)
			}
			if r != nil {
				mine = append(mine, r)
			}
		}
		fail := func(err error) {
			if len(mine) == 0 {
				rn.Log.Error("hook failed for a container with no target", "container", src.Name, "err", err)
			}
			for _, r := range mine {
				e := err
				if r.Err == nil && r.SnapshotID != "" {
					e = fmt.Errorf("backed up (snapshot %s), but then: %w", r.SnapshotID, err)
				}
				r.Err = errors.Join(r.Err, e)
				r.Error = r.Err.Error()
			}
		}
		if ok {
			if err := rn.runHooks(ctx, s, s.Plan.HooksOf(src.ID, discover.HookPost)); err != nil {
				fail(err)
				ok = false
			}
		}
		if !ok {
			if err := rn.runHooks(ctx, s, s.Plan.HooksOf(src.ID, discover.HookError)); err != nil {
				fail(err)
			}
		}
		if err := rn.runHooks(ctx, s, s.Plan.HooksOf(src.ID, discover.HookFinally)); err != nil {
			fail(err)
		}
	}
}
