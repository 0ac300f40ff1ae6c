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

// KeepsNewest reports whether the policy keeps the newest snapshot of
// every group whatever the group holds: it has keep-within (counted back
// from that snapshot) or a count. A keep-tag-only policy does not.
func (p Policy) KeepsNewest() bool {
	return p.Within != "" || p.Last > 0 || p.Hourly > 0 || p.Daily > 0 || p.Weekly > 0 || p.Monthly > 0 || p.Yearly > 0
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
	// Select, when set, picks among the groups Filter selects those the
	// policy applies to; the others keep every snapshot (ForgetResult.Others).
	// It is how one call covers several targets: restic's own filter cannot
	// select several (paths, tags) groups at once, as several --path must
	// all be in one snapshot.
	Select func(ForgetGroup) bool
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

// Snapshots is the number of snapshots the group held.
func (g ForgetGroup) Snapshots() int { return len(g.Keep) + len(g.Remove) }

// ForgetResult says what a retention run kept and removed.
type ForgetResult struct {
	// Groups are the groups the policy was applied to.
	Groups []ForgetGroup
	// Others are, with ForgetOptions.Select, the groups it did not select,
	// with what the policy would have done to them: nothing was removed.
	Others  []ForgetGroup
	Kept    int
	Removed int
}

// Forget applies a retention policy; a policy that would remove every
// snapshot of a group fails with ErrPolicyRemovesAll and removes nothing.
//
// Without Select it is one restic process: `forget --prune` with the
// filter and the policy (restic refuses, before it removes anything, a
// policy that would empty a group). With Select it is one restic process
// that asks what the policy would do to every group the filter selects
// (--dry-run, no lock), and, only when a selected group loses snapshots, a
// second that forgets exactly those and prunes.
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
	args := append([]string{"--group-by", o.GroupBy}, filter...)
	args = append(args, p.args()...)
	inv := invocation{command: "forget", json: true, locking: true, timeout: r.opts.Timeouts.Forget}
	switch {
	case o.Select != nil:
		inv.args, inv.locking = append([]string{"--dry-run", "--no-lock"}, args...), false
	case !o.NoPrune:
		inv.args = append([]string{"--prune"}, args...)
	default:
		inv.args = args
	}
	var out []byte
	inv.onLine = func(b []byte) { out = append(out, b...) }
	err = r.run(ctx, inv)
	if err != nil && strings.Contains(err.Error(), "refusing to delete last snapshot") {
		// restic's own guard: it stopped before it removed anything.
		return ForgetResult{}, fmt.Errorf("%w: policy %q; nothing was removed, widen the policy: %v", ErrPolicyRemovesAll, p, err)
	}
	if err != nil && o.Select != nil {
		return ForgetResult{}, fmt.Errorf("retention dry run (%s): %w", p, err)
	}
	if err != nil {
		return ForgetResult{}, fmt.Errorf("retention (%s): %w", p, err)
	}
	res, err := planForget(out, o.Select)
	if err != nil {
		return res, err
	}
	if o.Select == nil {
		if res.Removed > 0 {
			r.log.Info("retention applied", "policy", p.String(), "kept", res.Kept, "removed", res.Removed, "pruned", !o.NoPrune)
		}
		return res, nil
	}
	// restic's dry run refused to empty any group already; this is the
	// same rule, checked on what is about to be removed.
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

// planForget reads restic forget --json output; with selected, the groups
// it does not select go to Others.
func planForget(out []byte, selected func(ForgetGroup) bool) (ForgetResult, error) {
	var res ForgetResult
	if len(strings.TrimSpace(string(out))) == 0 {
		return res, nil
	}
	var groups []ForgetGroup
	if err := json.Unmarshal(out, &groups); err != nil {
		return res, fmt.Errorf("read restic forget output: %w", err)
	}
	for _, g := range groups {
		if selected != nil && !selected(g) {
			res.Others = append(res.Others, g)
			continue
		}
		res.Groups = append(res.Groups, g)
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
