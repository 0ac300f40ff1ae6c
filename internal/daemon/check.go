package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/internal/notify"
	"github.com/platback/platback/internal/runner"
)

// CheckStateName is the file in the cache directory that holds the
// repository checks' rotation (the part of the data the next check reads)
// and the last check's result, whoever ran it (CHECK_CRON or `sidecar
// check`): it survives restarts of the sidecar.
const CheckStateName = "platback-check.json"

// CheckState is the content of CheckStateName.
type CheckState struct {
	// NextPart is the part (1-based) of Parts the next rotating check reads.
	NextPart int `json:"next_part"`
	Parts    int `json:"parts"`
	// Last is the last check's result; nil before the first one.
	Last *CheckResult `json:"last,omitempty"`
	// LastSuccess is when a check last passed (its end).
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// CheckResult is one repository check.
type CheckResult struct {
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	// Part and Parts: the check read part Part of Parts of the data
	// (--read-data-subset Part/Parts); 0 when it did not rotate.
	Part  int `json:"part,omitempty"`
	Parts int `json:"parts,omitempty"`
	// Subset is the --read-data-subset given to restic ("" for none).
	Subset string `json:"subset,omitempty"`
	Error  string `json:"error,omitempty"`
	By     string `json:"by"` // "daemon" or "sidecar check"
	Err    error  `json:"-"`
}

// OK reports whether the check passed.
func (r CheckResult) OK() bool { return r.Err == nil }

// CheckOptions say how RunCheck checks.
type CheckOptions struct {
	// Wait for the run lock (behind a running backup); else fail with
	// runlock.ErrBusy at once.
	Wait bool
	// Parts > 0 reads the next part of Parts of the data (the rotation
	// kept in CheckStateName), and moves the rotation on when the check
	// passed. Otherwise Subset, when not empty, is the fixed
	// --read-data-subset.
	Parts  int
	Subset string
	By     string
}

// RunCheck runs `restic check` under the run lock, after removing the
// repository locks this sidecar's killed processes left (runner.Open), and
// records its result, and the rotation, in CheckStateName. err is an error
// getting the lock (runlock.ErrBusy, ctx ended); the check's own error is
// in the result.
func RunCheck(ctx context.Context, rn *runner.Runner, o CheckOptions) (CheckResult, error) {
	var res CheckResult
	err := rn.Exclusive(ctx, o.Wait, func() error {
		dir := rn.Config.CacheDir
		st, err := LoadCheckState(dir)
		if err != nil {
			rn.Log.Warn("could not read the checks' rotation: starting again with part 1", "err", err)
			st = CheckState{}
		}
		res = CheckResult{Start: time.Now(), By: o.By, Subset: o.Subset}
		if o.Parts > 0 {
			res.Part, res.Parts = st.Part(o.Parts), o.Parts
			res.Subset = fmt.Sprintf("%d/%d", res.Part, res.Parts)
		}
		s, _, err := rn.Open(ctx, runner.OpenOptions{})
		if err == nil {
			err = s.Repo.Check(ctx, backup.CheckOptions{ReadDataSubset: res.Subset})
		}
		res.Duration = time.Since(res.Start)
		if err != nil && ctx.Err() != nil {
			return ctx.Err() // stopped, not failed: the same part next time
		}
		if res.Err = err; err != nil {
			res.Error = err.Error()
		}
		st.record(res)
		if err := writeJSON(dir, CheckStateName, st); err != nil {
			rn.Log.Warn("could not record the check's result and rotation", "err", err)
		}
		return nil
	})
	return res, err
}

// Part is the part of parts the next rotating check reads: NextPart, or 1
// when there is none yet or parts changed below it.
func (st CheckState) Part(parts int) int {
	if st.NextPart < 1 || st.NextPart > parts {
		return 1
	}
	return st.NextPart
}

// record stores a check's result; a rotating check that passed moves the
// rotation on to the next part, wrapping after the last.
func (st *CheckState) record(res CheckResult) {
	st.Last = &res
	if !res.OK() {
		return
	}
	st.LastSuccess = res.Start.Add(res.Duration)
	if res.Parts > 0 {
		st.Parts = res.Parts
		st.NextPart = res.Part%res.Parts + 1
	}
}

// LoadCheckState reads the checks' state; the zero state when there is
// none yet. The last check's error is restored from its text.
func LoadCheckState(dir string) (CheckState, error) {
	var st CheckState
	if _, err := readJSON(dir, CheckStateName, &st); err != nil {
		return CheckState{}, err
	}
	if st.Last != nil && st.Last.Error != "" {
		st.Last.Err = errors.New(st.Last.Error)
	}
	return st, nil
}

// scheduledCheck is CHECK_CRON's job: a rotating check that waits for a
// running backup, its metrics, its log and its notification (a failure at
// NOTIFICATION_LEVEL error, a pass at info).
func (d *daemon) scheduledCheck(ctx context.Context) error {
	res, err := RunCheck(ctx, d.a.Runner, CheckOptions{Wait: true, Parts: d.a.Config.CheckParts, By: "daemon"})
	if err != nil {
		return err
	}
	d.applyCheck(res, time.Time{}, false)
	attrs := []any{"took", res.Duration.Round(time.Millisecond)}
	if res.Subset != "" {
		attrs = append(attrs, "read_data_subset", res.Subset)
	}
	if res.Err != nil {
		d.a.Log.Error("scheduled repository check failed: the repository may be damaged; the same part is checked again next time",
			append(attrs, "err", res.Err)...)
	} else {
		d.a.Log.Info("scheduled repository check passed", attrs...)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DeliveryTimeout)
	defer cancel()
	d.delivered(d.a.Alerts.notify(dctx, notify.CheckMessage(d.a.Alerts.Stack, res.Subset, res.Duration, res.Error)))
	if res.Err != nil {
		return errors.New("repository check failed")
	}
	return nil
}

// applyCheck sets the check metrics from a result; lastSuccess, when not
// zero, is the last passing check before it (a replayed result).
func (d *daemon) applyCheck(res CheckResult, lastSuccess time.Time, replayed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !res.Start.After(d.checkApplied) {
		return
	}
	d.checkApplied = res.Start
	d.m.Check(metrics.Check{End: res.Start.Add(res.Duration), Duration: res.Duration, Err: res.Err,
		Part: res.Part, Parts: res.Parts, LastSuccess: lastSuccess, Replayed: replayed})
}

// refreshCheck applies a check newer than any applied yet from the state
// file: one of `sidecar check` in this container or, at start-up
// (replayed), the last before this daemon started.
func (d *daemon) refreshCheck(startup bool) {
	st, err := LoadCheckState(d.a.Config.CacheDir)
	if err != nil || st.Last == nil {
		return
	}
	d.applyCheck(*st.Last, st.LastSuccess, startup)
}
