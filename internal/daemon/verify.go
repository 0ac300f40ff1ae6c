package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/internal/notify"
	"github.com/platback/platback/internal/runner"
)

// VerifyStateName is the file in the cache directory that holds the last
// restore drill's results (VERIFY_CRON's or `sidecar verify`'s), so the
// daemon exports them after a restart and after a `sidecar verify`.
const VerifyStateName = "platback-verify.json"

// VerifyRun is one restore drill of some targets.
type VerifyRun struct {
	Start    time.Time             `json:"start"`
	Duration time.Duration         `json:"duration_ns"`
	By       string                `json:"by"` // "daemon" or "sidecar verify"
	Results  []runner.VerifyResult `json:"results"`
}

// OK reports whether every target passed.
func (r VerifyRun) OK() bool {
	for _, res := range r.Results {
		if !res.OK() {
			return false
		}
	}
	return true
}

// Failed counts the targets that failed.
func (r VerifyRun) Failed() int {
	n := 0
	for _, res := range r.Results {
		if !res.OK() {
			n++
		}
	}
	return n
}

// VerifyState is the content of VerifyStateName.
type VerifyState struct {
	Last *VerifyRun `json:"last,omitempty"`
	// LastSuccess is, per target, when its drill last passed.
	LastSuccess map[string]time.Time `json:"last_success,omitempty"`
}

// VerifyOptions say how RunVerify verifies.
type VerifyOptions struct {
	// Wait for the run lock (behind a running backup); else fail with
	// runlock.ErrBusy at once.
	Wait  bool
	Paths []string
	By    string
}

// RunVerify runs a restore drill (runner.Verify) under the run lock and
// records its results in VerifyStateName. err is an error getting the
// lock or opening the repository, or an unknown path; each target's own
// failure is in its result.
func RunVerify(ctx context.Context, rn *runner.Runner, o VerifyOptions) (VerifyRun, error) {
	run := VerifyRun{By: o.By}
	err := rn.Exclusive(ctx, o.Wait, func() error {
		run.Start = time.Now()
		s, _, err := rn.Open(ctx, runner.OpenOptions{})
		if err != nil {
			return err
		}
		run.Results, err = rn.Verify(ctx, s, runner.VerifyOptions{Paths: o.Paths, MaxBytes: rn.Config.VerifyMaxBytes})
		run.Duration = time.Since(run.Start)
		if err != nil {
			return err
		}
		dir := rn.Config.CacheDir
		st, err := LoadVerifyState(dir)
		if err != nil {
			rn.Log.Warn("could not read the last restore drill's results", "err", err)
		}
		st.record(run)
		if err := writeJSON(dir, VerifyStateName, st); err != nil {
			rn.Log.Warn("could not record the restore drill's results", "err", err)
		}
		return nil
	})
	return run, err
}

// record stores a drill's results; the targets that passed get their
// LastSuccess.
func (st *VerifyState) record(run VerifyRun) {
	st.Last = &run
	if st.LastSuccess == nil {
		st.LastSuccess = map[string]time.Time{}
	}
	for _, res := range run.Results {
		if res.OK() {
			st.LastSuccess[res.Target] = run.Start.Add(run.Duration)
		}
	}
}

// LoadVerifyState reads the drills' state; the zero state when there is
// none yet. Each failed target's error is restored from its text.
func LoadVerifyState(dir string) (VerifyState, error) {
	var st VerifyState
	if _, err := readJSON(dir, VerifyStateName, &st); err != nil {
		return VerifyState{}, err
	}
	if st.Last != nil {
		for i, res := range st.Last.Results {
			if res.Error != "" {
				st.Last.Results[i].Err = errors.New(res.Error)
			}
		}
	}
	return st, nil
}

// scheduledVerify is VERIFY_CRON's job: a drill of every target that waits
// for a running backup, its metrics, its log and a notification for each
// target that failed (at NOTIFICATION_LEVEL error; a pass at info).
func (d *daemon) scheduledVerify(ctx context.Context) error {
	run, err := RunVerify(ctx, d.a.Runner, VerifyOptions{Wait: true, By: "daemon"})
	if err != nil {
		d.a.Log.Error("scheduled restore drill could not run", "err", err)
		return err
	}
	d.applyVerify(run, nil, false)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DeliveryTimeout)
	defer cancel()
	d.delivered(d.a.Alerts.notify(dctx, notify.VerifyMessage(d.a.Alerts.Stack, verifyTargets(run))))
	if !run.OK() {
		return fmt.Errorf("restore drill failed for %d target(s)", run.Failed())
	}
	d.a.Log.Info("scheduled restore drill passed", "targets", len(run.Results), "took", run.Duration.Round(time.Millisecond))
	return nil
}

// verifyTargets is a drill as the notify package takes it.
func verifyTargets(run VerifyRun) []notify.VerifyTarget {
	var out []notify.VerifyTarget
	for _, res := range run.Results {
		out = append(out, notify.VerifyTarget{Path: res.Target, Snapshot: res.Snapshot, Age: res.Age, Detail: res.Detail(), Error: res.Error})
	}
	return out
}

// applyVerify sets the drill metrics from a run newer than any applied;
// lastSuccess, when not nil, holds each target's last pass (a replayed
// run).
func (d *daemon) applyVerify(run VerifyRun, lastSuccess map[string]time.Time, replayed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !run.Start.After(d.verifyApplied) {
		return
	}
	d.verifyApplied = run.Start
	end := run.Start.Add(run.Duration)
	for _, res := range run.Results {
		d.m.Verify(metrics.Verify{Target: res.Target, End: end, OK: res.OK(), SnapshotAge: res.Age,
			LastSuccess: lastSuccess[res.Target], Replayed: replayed})
	}
}

// refreshVerify applies a drill newer than any applied yet from the state
// file: one of `sidecar verify` in this container or, at start-up
// (replayed), the last before this daemon started.
func (d *daemon) refreshVerify(startup bool) {
	st, err := LoadVerifyState(d.a.Config.CacheDir)
	if err != nil || st.Last == nil {
		return
	}
	d.applyVerify(*st.Last, st.LastSuccess, startup)
}
