package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Policy is a retention policy, as restic forget's --keep-* flags. Within is
// a restic duration such as "30d" or "1y6m"; it counts back from the newest
// snapshot of a group, not from now.
type Policy struct {
	Within  string
	Last    int
	Hourly  int
	Daily   int
	Weekly  int
	Monthly int
	Yearly  int
	// Tags keeps every snapshot carrying one of these tags (restic --keep-tag).
	Tags []string
}

// DefaultPolicy keeps every snapshot of the last 30 days of each group.
func DefaultPolicy() Policy { return Policy{Within: "30d"} }

var durationRE = regexp.MustCompile(`^(\d+y)?(\d+m)?(\d+d)?(\d+h)?$`)

// Validate refuses an empty policy (restic would keep everything, which is
// never what a caller who asked for retention meant), negative counts and
// durations restic cannot read.
func (p Policy) Validate() error {
	if p.Within != "" && !durationRE.MatchString(p.Within) {
		return fmt.Errorf("retention: keep-within %q is not a restic duration; use a count with y, m, d or h, e.g. 30d, 72h or 1y6m", p.Within)
	}
	counts := map[string]int{"last": p.Last, "hourly": p.Hourly, "daily": p.Daily, "weekly": p.Weekly, "monthly": p.Monthly, "yearly": p.Yearly}
	if err := checkTags(p.Tags); err != nil {
		return fmt.Errorf("retention: keep-tag: %w", err)
	}
	empty := p.Within == "" && len(p.Tags) == 0
	for name, n := range counts {
		if n < 0 {
			return fmt.Errorf("retention: keep-%s is %d; it must be 0 (unused) or more", name, n)
		}
		if n > 0 {
			empty = false
		}
	}
	if empty {
		return errors.New("retention: the policy keeps nothing; set at least one of keep-within, keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly")
	}
	return nil
}

func (p Policy) args() []string {
	var args []string
	if p.Within != "" {
		args = append(args, "--keep-within", p.Within)
	}
	for _, kv := range []struct {
		flag string
		n    int
	}{{"last", p.Last}, {"hourly", p.Hourly}, {"daily", p.Daily}, {"weekly", p.Weekly}, {"monthly", p.Monthly}, {"yearly", p.Yearly}} {
		if kv.n > 0 {
			args = append(args, "--keep-"+kv.flag, strconv.Itoa(kv.n))
		}
	}
	for _, t := range p.Tags {
		args = append(args, "--keep-tag", t)
	}
	return args
}

// String is the policy as restic flags.
func (p Policy) String() string { return strings.Join(p.args(), " ") }

// DefaultGroupBy is the grouping Forget uses unless told otherwise: each
// combination of host, paths and tags is its own group.
const DefaultGroupBy = "host,paths,tags"

// ForgetOptions scope a retention run.
type ForgetOptions struct {
	// Filter selects the snapshots the policy applies to. Filter.Host
	// defaults to Options.Host.
	Filter Filter
	// GroupBy is restic's --group-by; default "host,paths,tags": snapshots
	// of different paths never share a group, even when their tags are the
	// same (two volumes of one service, two replicas), so one target's
	// snapshots can never be forgotten because of another's.
	GroupBy string
	// NoPrune only forgets; the data is removed by a later prune.
	NoPrune bool
}

// ForgetGroup is one group of snapshots and what the policy does to it.
type ForgetGroup struct {
	Host   string     `json:"host"`
	Tags   []string   `json:"tags"`
	Paths  []string   `json:"paths"`
	Keep   []Snapshot `json:"keep"`
	Remove []Snapshot `json:"remove"`
}

// ForgetResult says what a retention run kept and removed.
type ForgetResult struct {
	Groups  []ForgetGroup
	Kept    int
	Removed int
}

// Forget applies a retention policy. It first asks restic what the policy
// would do (--dry-run); if any group would lose every snapshot it returns
// ErrPolicyRemovesAll and removes nothing. Otherwise it forgets exactly the
// snapshots that dry run listed and prunes (unless NoPrune).
func (r *Repo) Forget(ctx context.Context, p Policy, o ForgetOptions) (ForgetResult, error) {
	if err := p.Validate(); err != nil {
		return ForgetResult{}, err
	}
	if o.Filter.Host == "" {
		o.Filter.Host = r.opts.Host
	}
	if o.GroupBy == "" {
		o.GroupBy = DefaultGroupBy
	}
	filter, err := o.Filter.args()
	if err != nil {
		return ForgetResult{}, err
	}
	args := append([]string{"--dry-run", "--group-by", o.GroupBy}, filter...)
	args = append(args, p.args()...)
	var out []byte
	err = r.run(ctx, invocation{command: "forget", args: args, json: true, locking: true,
		timeout: r.opts.Timeouts.Forget, onLine: func(b []byte) { out = append(out, b...) }})
	if err != nil && strings.Contains(err.Error(), "refusing to delete last snapshot") {
		// restic's own guard, which agrees with ours.
		return ForgetResult{}, fmt.Errorf("%w: policy %q; nothing was removed, widen the policy: %v", ErrPolicyRemovesAll, p, err)
	}
	if err != nil {
		return ForgetResult{}, fmt.Errorf("retention dry run (%s): %w", p, err)
	}
	res, err := planForget(out)
	if err != nil {
		return res, err
	}
	if err := refuseRemoveAll(res.Groups, p); err != nil {
		return res, err
	}
	if res.Removed == 0 {
		return res, nil
	}
	ids := make([]string, 0, res.Removed)
	for _, g := range res.Groups {
		for _, s := range g.Remove {
			ids = append(ids, s.ID)
		}
	}
	args = nil
	if !o.NoPrune {
		args = append(args, "--prune")
	}
	args = append(append(args, "--"), ids...)
	if err := r.run(ctx, invocation{command: "forget", args: args, locking: true,
		timeout: r.opts.Timeouts.Forget, onLine: discard}); err != nil {
		return res, fmt.Errorf("forget %d snapshot(s): %w", len(ids), err)
	}
	r.log.Info("retention applied", "policy", p.String(), "kept", res.Kept, "removed", res.Removed, "pruned", !o.NoPrune)
	return res, nil
}

// planForget reads restic forget --dry-run --json output.
func planForget(out []byte) (ForgetResult, error) {
	var res ForgetResult
	if len(strings.TrimSpace(string(out))) == 0 {
		return res, nil
	}
	if err := json.Unmarshal(out, &res.Groups); err != nil {
		return res, fmt.Errorf("read restic forget output: %w", err)
	}
	for _, g := range res.Groups {
		res.Kept += len(g.Keep)
		res.Removed += len(g.Remove)
	}
	return res, nil
}

// refuseRemoveAll returns ErrPolicyRemovesAll when a group would keep nothing.
func refuseRemoveAll(groups []ForgetGroup, p Policy) error {
	for _, g := range groups {
		if len(g.Keep) == 0 && len(g.Remove) > 0 {
			return fmt.Errorf("%w: policy %q would remove all %d snapshot(s) of host %q paths %v tags %v; nothing was removed, widen the policy",
				ErrPolicyRemovesAll, p, len(g.Remove), g.Host, g.Paths, g.Tags)
		}
	}
	return nil
}
