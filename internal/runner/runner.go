// Package runner does one backup run of a compose stack: credentials,
// repository, plan, each target (volumes through worker containers,
// databases as streamed dumps), retention, check — and reports every
// target's outcome, so one failing target never hides the others.
package runner

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/errkind"
	"github.com/platback/platback/internal/ids"
	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/internal/runlock"
	"github.com/platback/platback/internal/stopstate"
	"github.com/platback/platback/internal/worker"
	"github.com/platback/platback/vaultcreds"
)

// Docker is the part of the Docker Engine API a run needs; *client.Client
// implements it. Tests give a fake to check the run's decisions without an
// engine.
type Docker interface {
	worker.Docker
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	VolumeInspect(ctx context.Context, volumeID string, options client.VolumeInspectOptions) (client.VolumeInspectResult, error)
}

// Runner holds what a run needs.
type Runner struct {
	Config   config.Config
	Docker   Docker
	Discover *discover.Discoverer
	// DiscoverAll plans stopped containers too (restores); default Discover.
	DiscoverAll *discover.Discoverer
	Creds       vaultcreds.Source
	Restic      string // restic binary for the sidecar's own restic calls
	Exe         string // this binary: the producer of database dumps (`sidecar dump`)
	Metrics     *metrics.Metrics
	Stops       *stopstate.File
	// Lock makes this sidecar's runs, restores, checks and retention
	// exclusive (Exclusive).
	Lock *runlock.Lock
	Log  *slog.Logger

	testSteps runSteps // nil: workers and restic
}

// Exclusive runs fn holding the run lock (waiting for it with wait, else
// failing with runlock.ErrBusy). Under the lock, what a killed run left
// behind is cleaned up first: no other run can still be using it.
func (rn *Runner) Exclusive(ctx context.Context, wait bool, fn func() error) error {
	return rn.Lock.Do(ctx, wait, func() error {
		rn.CleanLeftovers(ctx)
		return fn()
	})
}

// CleanLeftovers restarts containers a killed run had stopped and removes
// the worker containers it left behind: only this sidecar's own (labelled
// with its identity), never another sidecar's. Call it holding the run
// lock, when none of this sidecar's runs or restores can be using them.
func (rn *Runner) CleanLeftovers(ctx context.Context) {
	restarted, err := rn.Stops.RestartAll(ctx, rn.Docker)
	for _, c := range restarted {
		rn.Log.Warn("restarted a container a previous run had stopped", "container", c.Name, "stopped_at", c.StoppedAt)
	}
	if err != nil {
		rn.Log.Error("could not restart containers a previous run had stopped", "err", err)
	}
	identity, err := rn.Identity(ctx)
	if err != nil {
		rn.Log.Warn("could not look for leftover worker containers", "err", err)
		return
	}
	list, err := rn.Docker.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", worker.SidecarLabel+"="+identity)})
	if err != nil {
		rn.Log.Warn("could not list leftover worker containers", "err", err)
		return
	}
	for _, c := range list.Items {
		if c.State == "running" {
			// Its sidecar is gone (we hold the run lock): a worker notices
			// that and stops on its own; one that has not yet gets the
			// stop grace, so its restic removes its lock.
			grace := int(rn.Config.StopTimeout / time.Second)
			_, _ = rn.Docker.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &grace})
		}
		if _, err := rn.Docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			rn.Log.Warn("could not remove a leftover worker container", "container", ids.Container(c.ID), "err", err)
			continue
		}
		rn.Log.Warn("removed a worker container a previous run left behind", "container", ids.Container(c.ID))
	}
	rn.CleanVerifyLeftovers(ctx, identity)
}

// TargetResult is one target's outcome.
type TargetResult struct {
	Path       string        `json:"path"`
	Service    string        `json:"service"`
	Kind       string        `json:"kind"`
	SnapshotID string        `json:"snapshot_id,omitempty"`
	FilesNew   uint64        `json:"files_new"`
	Changed    uint64        `json:"files_changed"`
	BytesAdded uint64        `json:"bytes_added"`
	Duration   time.Duration `json:"duration"`
	// Err is the target's error; in JSON it is "error" with "error_kind"
	// (package errkind), so a result read back still matches backup's
	// sentinel errors.
	Err       error  `json:"-"`
	Error     string `json:"error,omitempty"`
	ErrorKind string `json:"error_kind,omitempty"`
}

// MarshalJSON writes Err as "error" and "error_kind".
func (t TargetResult) MarshalJSON() ([]byte, error) {
	type plain TargetResult
	p := plain(t)
	if t.Err != nil {
		p.Error, p.ErrorKind = t.Err.Error(), errkind.Of(t.Err)
	}
	return json.Marshal(p)
}

// UnmarshalJSON rebuilds Err from "error" and "error_kind".
func (t *TargetResult) UnmarshalJSON(b []byte) error {
	type plain TargetResult
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*t = TargetResult(p)
	t.Err = errkind.New(t.Error, t.ErrorKind)
	return nil
}

// Result is a whole run's outcome.
type Result struct {
	Start     time.Time      `json:"start"`
	Duration  time.Duration  `json:"duration"`
	Projects  []string       `json:"projects"`
	Targets   []TargetResult `json:"targets"`
	Retention []string       `json:"retention_errors,omitempty"`
	Check     string         `json:"check_error,omitempty"`
	Warnings  []string       `json:"warnings,omitempty"`
	// Hooks are the hook commands that ran; a failed one is also in its
	// targets' errors when its on-error is abort.
	Hooks []HookResult `json:"hooks,omitempty"`
	// Copy is the second copy (COPY_REPOSITORY) of the run's snapshots;
	// nil when there is none or nothing was backed up. Its failure does
	// not make the run fail (OK).
	Copy *CopyResult `json:"copy,omitempty"`
	// Err is the run's own error (not a target's): in JSON "error" and
	// "error_kind", as TargetResult.Err.
	Err       error  `json:"-"`
	Error     string `json:"error,omitempty"`
	ErrorKind string `json:"error_kind,omitempty"`
}

// MarshalJSON writes Err as "error" and "error_kind".
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	p := plain(r)
	if r.Err != nil {
		p.Error, p.ErrorKind = r.Err.Error(), errkind.Of(r.Err)
	}
	return json.Marshal(p)
}

// UnmarshalJSON rebuilds Err from "error" and "error_kind".
func (r *Result) UnmarshalJSON(b []byte) error {
	type plain Result
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*r = Result(p)
	r.Err = errkind.New(r.Error, r.ErrorKind)
	return nil
}

// OK is true when the run backed up at least one target and everything
// succeeded; the second copy is not counted (CopyResult.OK says).
func (r Result) OK() bool {
	if r.Err != nil || len(r.Targets) == 0 || len(r.Retention) > 0 || r.Check != "" {
		return false
	}
	for _, t := range r.Targets {
		if t.Err != nil {
			return false
		}
	}
	return true
}

// Session is an opened repository with the plan of one run; commands other
// than a backup (snapshots, restore, check) use it too.
type Session struct {
	Repo *backup.Repo
	Plan discover.Plan
	Host string
	Env  map[string]string // restic's credentials
	URL  string
	// repoMount is the mount that holds a local repository (nil for S3).
	repoMount *mount.Mount
	// copy is the second repository (COPY_REPOSITORY); its url is empty
	// when there is none.
	copy secondCopy
	// owners prefixes the lock owner (backup.Options.Owner) of every restic
	// process started under the run lock: the sidecar's own and its
	// workers'. Those that are left when a session opens were left by
	// processes that are gone.
	owners string
	// self is the sidecar's own container as Open inspected it (nil
	// outside a container): workers take its image, network and mounts.
	self *container.InspectResponse

	mu sync.Mutex
	// opened: a restic process of this session opened the repository with
	// its password (EnsureRepo, a backup, VerifyPassword).
	opened bool
	// initialized: this session created the repository (its snapshots
	// are the session's own).
	initialized bool
	// unusable is the error that makes every restic process of the session
	// fail alike (a wrong password), once one met it.
	unusable error
	// hooks are the hook commands that ran, in order.
	hooks []HookResult
}

// outcome notes what a restic process of the session says about the
// repository: its success proves the password, a wrong password makes
// the repository unusable for the rest of the session.
func (s *Session) outcome(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.opened = true
	case errors.Is(err, backup.ErrWrongPassword) && s.unusable == nil:
		s.unusable = err
		if s.Repo != nil {
			s.unusable = s.Repo.OpenError(err)
		}
	}
}

// unusableErr is the error that makes the repository unusable, or nil.
func (s *Session) unusableErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unusable
}

// lockOwners is the prefix of the lock owners of a sidecar's runs.
func lockOwners(identity string) string { return "platback-run:" + identity + ":" }

// OpenOptions say how Open prepares a session.
type OpenOptions struct {
	// Ensure creates the bucket and repository when they are missing.
	Ensure bool
	// IncludeStopped plans the volumes of stopped containers too (a
	// restore finds its target while the app is stopped).
	IncludeStopped bool
	// Shared: the caller does not hold the run lock (listing snapshots).
	// Otherwise it does: the session's restic processes and workers name
	// their locks after this sidecar, and Open first removes the locks that
	// such processes left when they were killed.
	Shared bool
}

// Open fetches the credentials, plans, and opens (and, with Ensure,
// creates) the repository.
func (rn *Runner) Open(ctx context.Context, o OpenOptions) (*Session, []string, error) {
	creds, err := rn.Creds.Credentials(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("credentials: %w", err)
	}
	url := rn.Config.Repository
	if fromVault := creds.Get("RESTIC_REPOSITORY"); url == "" {
		url = fromVault
	} else if fromVault != "" && fromVault != url {
		rn.Log.Warn("RESTIC_REPOSITORY differs from the repository in the credentials; using RESTIC_REPOSITORY", "repository", backup.RedactURL(url))
	}
	if url == "" {
		return nil, nil, errors.New("no repository: set RESTIC_REPOSITORY, or the Vault secret's field mapped to RESTIC_REPOSITORY")
	}
	disc := rn.Discover
	if o.IncludeStopped && rn.DiscoverAll != nil {
		disc = rn.DiscoverAll
	}
	plan, err := disc.Plan(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("discover: %w", err)
	}
	loc, err := backup.ParseLocation(url)
	if err != nil {
		return nil, nil, err
	}
	self, err := rn.selfContainer(ctx, plan)
	if err != nil {
		return nil, nil, err
	}
	// A local repository must be on a mount the workers can get too; check
	// before EnsureRepo could create it in the container's own filesystem.
	var repoMount *mount.Mount
	if loc.Kind == "local" {
		if repoMount, err = repositoryMountOf(loc, self); err != nil {
			return nil, nil, err
		}
	}
	owners := lockOwners(sidecarIdentity(self))
	owner := owners + "sidecar"
	if o.Shared {
		owner = "platback:" + sidecarIdentity(self) + ":shared"
	}
	host := rn.Config.Host
	if host == "" {
		host = strings.Join(plan.Projects, "+")
	}
	env := creds.Env()
	delete(env, "RESTIC_REPOSITORY")
	withRegion(env, rn.Config.Region)
	second := rn.copyTarget(env, url, self)
	repo, err := backup.Open(ctx, url, backup.Options{
		Restic: rn.Restic, Env: env, Host: host, CacheDir: rn.Config.CacheDir,
		CreateBucket: rn.Config.CreateBucket, Logger: rn.Log, Owner: owner,
		Timeouts: backup.Timeouts{Backup: rn.Config.BackupTimeout},
		// The dump producer (`sidecar dump`) talks to the Docker engine.
		PassEnv: []string{"DOCKER_HOST", "DOCKER_API_VERSION", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "LOG_LEVEL"},
	})
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	opened, initialized := false, false
	if o.Ensure {
		// The repository is opened with the password only when its config
		// file is missing: otherwise the run's first restic process proves
		// the password (and containers are never stopped before one has:
		// repositoryOpens).
		res, err := repo.EnsureRepoWith(ctx, backup.EnsureOptions{SkipOpen: true})
		if err != nil {
			return nil, nil, err
		}
		warnings, opened, initialized = res.Warnings, res.Opened, res.Initialized
	}
	s := &Session{Repo: repo, Plan: plan, Host: host, Env: env, URL: url, repoMount: repoMount, owners: owners, self: self, opened: opened,
		initialized: initialized, copy: second}
	if !o.Shared {
		rn.removeLeftoverLocks(ctx, s)
	}
	return s, warnings, nil
}

// withRegion sets AWS_DEFAULT_REGION in restic's environment env to
// region (AWS_DEFAULT_REGION of the sidecar), unless the credentials set a
// region already (a Vault field mapped to it).
func withRegion(env map[string]string, region string) {
	if region == "" || env["AWS_DEFAULT_REGION"] != "" || env["AWS_REGION"] != "" {
		return
	}
	env["AWS_DEFAULT_REGION"] = region
}

// removeLeftoverLocks removes the locks that this sidecar's killed restic
// processes and workers left. The caller holds the run lock, so none of
// them can still run.
func (rn *Runner) removeLeftoverLocks(ctx context.Context, s *Session) {
	removed, err := s.Repo.RemoveLocksWithOwnerPrefix(ctx, s.owners)
	switch {
	case errors.Is(err, backup.ErrLocksUnsupported):
	case err != nil:
		rn.Log.Warn("could not remove the locks a killed run left", "err", err)
	case len(removed) > 0:
		rn.Log.Warn("removed locks a killed run of this sidecar left in the repository", "locks", len(removed))
	}
}

// removeWorkerLocks removes the locks of a worker that ended without a
// result (killed): its container is gone, so its restic is too.
func (rn *Runner) removeWorkerLocks(ctx context.Context, s *Session, owner string, err error) {
	if !errors.Is(err, worker.ErrNoResult) {
		return
	}
	removed, rerr := s.Repo.RemoveLocksOf(context.WithoutCancel(ctx), owner)
	if rerr != nil && !errors.Is(rerr, backup.ErrLocksUnsupported) {
		rn.Log.Warn("could not remove the locks of a killed worker", "owner", owner, "err", rerr)
	}
	if len(removed) > 0 {
		rn.Log.Warn("removed the locks a killed worker left in the repository", "owner", owner, "locks", len(removed))
	}
}

// workerOwner is a new lock owner for one worker of the session.
func (s *Session) workerOwner() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return s.owners + "w-" + hex.EncodeToString(b[:])
}

// Run does one backup run.
func (rn *Runner) Run(ctx context.Context) (res Result) {
	res.Start = time.Now()
	defer func() {
		res.Duration = time.Since(res.Start)
		if res.Err != nil {
			res.Error = res.Err.Error()
		}
		if rn.Metrics != nil {
			rn.Metrics.Run(time.Now(), res.Duration, res.OK())
		}
		rn.Log.Info("run finished", "ok", res.OK(), "targets", len(res.Targets), "duration", res.Duration.Round(time.Millisecond))
	}()

	s, warnings, err := rn.Open(ctx, OpenOptions{Ensure: true})
	if err != nil {
		res.Err = err
		return res
	}
	res.Warnings = warnings
	rn.runSession(ctx, s, &res)
	return res
}

// runSession is a run once the repository is open: the plan's targets,
// retention of those that succeeded, the snapshot counts, the check.
func (rn *Runner) runSession(ctx context.Context, s *Session, res *Result) {
	res.Projects = s.Plan.Projects
	for _, w := range s.Plan.Warnings {
		rn.Log.Warn("plan", "warning", w.String())
		res.Warnings = append(res.Warnings, w.String())
	}
	if s.Plan.Empty() {
		res.Err = fmt.Errorf("nothing to back up in project(s) %s: no container carries a %svolumes or database label (see `sidecar plan`)",
			strings.Join(s.Plan.Projects, ","), rn.Config.LabelPrefix)
		for _, sk := range s.Plan.Skipped {
			rn.Log.Warn("skipped", "container", sk.Container, "reason", sk.Reason)
		}
		return
	}

	preFailed := rn.preHooks(ctx, s)
	res.Targets = rn.backupAll(ctx, s, hookSkips(s.Plan, preFailed))
	rn.afterHooks(ctx, s, preFailed, res.Targets)
	res.Hooks = s.hookResults()
	if ctx.Err() != nil {
		res.Err = fmt.Errorf("run interrupted: %w", ctx.Err())
		return
	}
	if err := s.unusableErr(); err != nil {
		// As when EnsureRepo finds a wrong password: the run's error, not
		// its targets'.
		res.Err = err
		res.Targets = slices.DeleteFunc(res.Targets, func(t TargetResult) bool { return errors.Is(t.Err, backup.ErrWrongPassword) })
		return
	}
	ok := succeeded(s.Plan.Targets, res.Targets)
	var forgot *backup.ForgetResult
	switch {
	case rn.Config.RetentionCron != "":
	case s.initialized && rn.Config.Policy.KeepsNewest():
		forgot = rn.firstRetention(s, res.Targets)
	default:
		forgot, res.Retention = rn.retention(ctx, s, ok)
	}
	rn.countSnapshots(ctx, s, forgot)
	if rn.Config.Check {
		start := time.Now()
		err := s.Repo.Check(ctx, backup.CheckOptions{ReadDataSubset: rn.Config.CheckSubset})
		rn.record(metrics.Phase{Target: "repository", Kind: "repository", Phase: metrics.PhaseCheck, Start: start, Duration: time.Since(start), Err: err})
		if err != nil {
			res.Check = err.Error()
		}
	}
	if len(ok) > 0 && s.copy.url != "" {
		res.Copy = rn.copySnapshots(ctx, s, ok)
	}
}

func succeeded(targets []discover.Target, results []TargetResult) []discover.Target {
	var ok []discover.Target
	for i, r := range results {
		if r.Err == nil {
			ok = append(ok, targets[i])
		}
	}
	return ok
}

// backupAll backs up every target of the plan. The units of work are a
// stop window (its containers stopped once, its volumes backed up in one
// worker container), the volumes that need no stop (one worker container,
// or with PLATBACK_PARALLEL n up to n workers, each with a contiguous share
// of them) and each database dump. Up to Config.Parallel units run at a
// time, started in plan order. It starts nothing more once ctx is
// cancelled; the results are those of the targets it got to, in plan order.
// The targets in skip are not backed up: they fail with their error (a
// failed pre hook), and a stop window left with none stops nothing.
func (rn *Runner) backupAll(ctx context.Context, s *Session, skip map[int]error) []TargetResult {
	targets := s.Plan.Targets
	parallel := max(rn.Config.Parallel, 1)
	results := make([]*TargetResult, len(targets))
	for i, err := range skip {
		now := time.Now()
		tr := rn.targetDone(s, targets[i], now, now, backup.Summary{}, err)
		results[i] = &tr
	}
	windows, windowOf := StopWindows(targets)
	for w := range windows {
		windows[w].Targets = slices.DeleteFunc(windows[w].Targets, func(i int) bool { return skip[i] != nil })
	}
	var free []int // the volume targets that need no stop
	for i, t := range targets {
		if _, inWindow := windowOf[i]; t.Volume != nil && !inWindow && skip[i] == nil {
			free = append(free, i)
		}
	}
	shareAt := map[int][]int{} // first target of a share → the share
	for _, share := range shares(free, parallel) {
		shareAt[share[0]] = share
	}
	var units []func()
	seen := map[int]bool{}
	for i, t := range targets {
		w, inWindow := windowOf[i]
		switch {
		case skip[i] != nil:
		case inWindow && !seen[w]:
			seen[w] = true
			units = append(units, func() { rn.backupWindow(ctx, s, windows[w], results) })
		case inWindow:
		case t.Volume != nil:
			if share, ok := shareAt[i]; ok {
				units = append(units, func() { rn.backupVolumes(ctx, s, share, results) })
			}
		default:
			units = append(units, func() {
				tr := rn.backupDump(ctx, s, t)
				results[i] = &tr
			})
		}
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, unit := range units {
		sem <- struct{}{}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			unit()
		})
	}
	wg.Wait()
	var out []TargetResult
	for _, r := range results {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out
}

// shares cuts idx into at most n contiguous shares of nearly equal size.
func shares(idx []int, n int) [][]int {
	n = min(n, len(idx))
	out := make([][]int, 0, n)
	for k := range n {
		out = append(out, idx[k*len(idx)/n:(k+1)*len(idx)/n])
	}
	return out
}

// backupWindow stops a window's containers once (dependents first), backs
// up its volumes in one worker, and restarts the containers (dependencies
// first) whatever happened. Containers are never stopped for a repository
// that does not open.
func (rn *Runner) backupWindow(ctx context.Context, s *Session, w StopWindow, results []*TargetResult) {
	start := time.Now()
	err := rn.repositoryOpens(ctx, s)
	restart := func() error { return nil }
	if err == nil {
		order := discover.StartOrder(w.Stop)
		slices.Reverse(order)
		restart, err = rn.stop(ctx, order)
	}
	if err != nil {
		for _, i := range w.Targets {
			tr := rn.targetDone(s, s.Plan.Targets[i], start, time.Now(), backup.Summary{}, err)
			results[i] = &tr
		}
	} else {
		rn.backupVolumes(ctx, s, w.Targets, results)
	}
	if rerr := restart(); rerr != nil {
		rn.Log.Error("could not restart every container stopped for the backup", "err", rerr)
		for _, i := range w.Targets {
			if results[i] != nil {
				results[i].Err = errors.Join(results[i].Err, rerr)
				results[i].Error = results[i].Err.Error()
			}
		}
	}
}

// repositoryOpens makes sure a restic process of this session opened the
// repository with its password — EnsureRepo, a target backed up, or else
// `restic cat config` now — before containers are stopped for a backup.
func (rn *Runner) repositoryOpens(ctx context.Context, s *Session) error {
	if err := s.unusableErr(); err != nil {
		return err
	}
	s.mu.Lock()
	opened := s.opened
	s.mu.Unlock()
	if opened {
		return nil
	}
	err := rn.steps().verify(ctx, s)
	s.outcome(err)
	return err
}

// backupVolumes backs up the volume targets idx (indexes into the plan) in
// a worker container: one snapshot each, one after the other, each
// recorded as soon as the worker reports it. A target whose volume is gone,
// or that the worker did not get to, fails alone.
func (rn *Runner) backupVolumes(ctx context.Context, s *Session, idx []int, results []*TargetResult) {
	targets := make([]discover.Target, len(idx))
	for j, i := range idx {
		targets[j] = s.Plan.Targets[i]
	}
	var mu sync.Mutex
	start := time.Now() // of the next target to report: its work began when the previous one's ended
	done := func(j int, sum backup.Summary, err error) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		tr := rn.targetDone(s, targets[j], start, now, sum, err)
		results[idx[j]] = &tr
		start = now
	}
	if err := s.unusableErr(); err != nil {
		for j := range targets {
			done(j, backup.Summary{}, err)
		}
		return
	}
	rn.steps().backupVolumes(ctx, s, targets, done)
}

// backupDump backs up a database target.
func (rn *Runner) backupDump(ctx context.Context, s *Session, t discover.Target) TargetResult {
	start := time.Now()
	err := s.unusableErr()
	var sum backup.Summary
	if err == nil {
		sum, err = rn.steps().backupDatabase(ctx, s, t)
	}
	return rn.targetDone(s, t, start, time.Now(), sum, err)
}

// targetDone is a target's result from its outcome: it is logged, recorded
// in the metrics, and noted by the session.
func (rn *Runner) targetDone(s *Session, t discover.Target, start, end time.Time, sum backup.Summary, err error) TargetResult {
	s.outcome(err)
	log := rn.Log.With("target", t.Path)
	tr := TargetResult{Path: t.Path, Service: t.Service, Kind: string(t.Kind), Duration: end.Sub(start),
		SnapshotID: sum.SnapshotID, FilesNew: sum.FilesNew, Changed: sum.FilesChanged, BytesAdded: sum.DataAdded}
	if err != nil {
		tr.Err, tr.Error = err, err.Error()
		log.Error("target failed", "err", err)
	} else {
		log.Info("target backed up", "snapshot", ids.Snapshot(sum.SnapshotID), "files_new", sum.FilesNew, "files_changed", sum.FilesChanged,
			"bytes_added", sum.DataAdded, "duration", tr.Duration.Round(time.Millisecond))
	}
	if errors.Is(err, backup.ErrWrongPassword) {
		// The run fails as a whole (Session.unusable), as when EnsureRepo
		// finds it: not a failure of this target's phase.
		return tr
	}
	phase := metrics.PhaseBackup
	if t.Volume == nil {
		phase = metrics.PhaseDump
	}
	rn.record(metrics.Phase{Target: t.Path, Kind: string(t.Kind), Phase: phase, Start: start, Duration: tr.Duration, Err: err,
		BytesAdded: sum.DataAdded, FilesNew: sum.FilesNew, FilesChanged: sum.FilesChanged, HasFiles: true})
	return tr
}

// backupDatabase streams the dump through `sidecar dump` as restic's
// --stdin-from-command producer: a failed dump leaves no snapshot.
func (rn *Runner) backupDatabase(ctx context.Context, s *Session, t discover.Target) (backup.Summary, error) {
	target, err := json.Marshal(t)
	if err != nil {
		return backup.Summary{}, err
	}
	producer := []string{rn.Exe, "dump", "--target", string(target)}
	return s.Repo.BackupStream(ctx, t.Path, producer, backup.BackupOptions{Tags: t.Tags, Timeout: rn.Config.BackupTimeout})
}

// backupVolumesInWorkers backs the volumes of targets up in worker
// containers: one for all of them, unless a target's path lies inside
// another's (a mount inside a mount would put one volume in the other's
// snapshot), then one per set of paths that do not nest. done gets each
// target's outcome as soon as it is known.
func (rn *Runner) backupVolumesInWorkers(ctx context.Context, s *Session, targets []discover.Target, done func(j int, sum backup.Summary, err error)) {
	for _, batch := range apart(targets) {
		batchTargets := make([]discover.Target, len(batch))
		for k, j := range batch {
			batchTargets[k] = targets[j]
		}
		spec, skipped, err := rn.WorkerSpec(ctx, s, batchTargets, true)
		if err != nil {
			for _, j := range batch {
				done(j, backup.Summary{}, err)
			}
			continue
		}
		var jobs []worker.BackupJob
		var jobTarget []int // job → index into targets
		for k, j := range batch {
			if err := skipped[k]; err != nil {
				done(j, backup.Summary{}, err)
				continue
			}
			jobs = append(jobs, worker.BackupJob{Path: targets[j].Path, Tags: targets[j].Tags})
			jobTarget = append(jobTarget, j)
		}
		if len(jobs) == 0 {
			continue
		}
		owner := s.workerOwner()
		req := worker.Request{Op: worker.OpBackup, Repository: s.URL, Env: s.Env, Host: s.Host, Owner: owner,
			CacheDir: rn.workerCacheDir(spec), Timeout: rn.Config.BackupTimeout, LogLevel: rn.Config.LogLevel, Backups: jobs}
		rn.workerRestic(&req, spec, s)
		reported := make([]bool, len(jobs))
		_, err = worker.Run(ctx, rn.Docker, spec, req, func(resp worker.Response) {
			if resp.Job < 0 || resp.Job >= len(jobs) || reported[resp.Job] {
				rn.Log.Warn("a worker reported a job it was not given", "job", resp.Job)
				return
			}
			reported[resp.Job] = true
			done(jobTarget[resp.Job], resp.Summary, workerError(resp.Err(), s))
		})
		if err != nil {
			rn.removeWorkerLocks(ctx, s, owner, err)
		}
		for k, j := range jobTarget {
			if !reported[k] {
				if err == nil {
					err = fmt.Errorf("%w: the worker reported no result for %s", worker.ErrNoResult, targets[j].Path)
				}
				done(j, backup.Summary{}, err)
			}
		}
	}
}

// apart splits targets (by index) into as few sets as it can, in order,
// none holding two targets whose paths nest.
func apart(targets []discover.Target) [][]int {
	var sets [][]int
	nested := func(a, b string) bool {
		return a == b || strings.HasPrefix(a, strings.TrimSuffix(b, "/")+"/") || strings.HasPrefix(b, strings.TrimSuffix(a, "/")+"/")
	}
next:
	for j, t := range targets {
		for k, set := range sets {
			if !slices.ContainsFunc(set, func(i int) bool { return nested(targets[i].Path, t.Path) }) {
				sets[k] = append(set, j)
				continue next
			}
		}
		sets = append(sets, []int{j})
	}
	return sets
}

// workerRestic tells a worker the restic version the sidecar checked, when
// the worker runs the sidecar's own image: its restic at the same path is
// the same file, and needs no `restic version` of its own.
func (rn *Runner) workerRestic(req *worker.Request, spec worker.Spec, s *Session) {
	if s.self != nil && s.Repo != nil && spec.Image == s.self.Image {
		req.ResticVersion, req.ResticPath = s.Repo.Version, s.Repo.Binary()
	}
}

// workerError explains a worker's "repository does not exist": the sidecar
// has just opened it, so the worker does not see what the sidecar sees.
func workerError(err error, s *Session) error {
	if errors.Is(err, backup.ErrRepoNotFound) {
		return fmt.Errorf("the worker container cannot see the repository %s that the sidecar opened (is the repository's mount missing in the worker?): %w",
			backup.RedactURL(s.URL), err)
	}
	return err
}

// stop stops containers in the order given (recording each in the state
// file first) and returns the function that restarts them, in the reverse
// order.
func (rn *Runner) stop(ctx context.Context, refs []discover.ContainerRef) (func() error, error) {
	var stopped []discover.ContainerRef
	restart := func() error {
		var errs []error
		for _, c := range slices.Backward(stopped) {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			_, err := rn.Docker.ContainerStart(rctx, c.ID, client.ContainerStartOptions{})
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("restart %s after the backup: %w (it stays listed in %s and is retried at the next start)", c.Name, err, "the state file"))
				continue
			}
			rn.Log.Info("restarted container", "container", c.Name)
			if err := rn.Stops.Remove(c.ID); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	grace := int(rn.Config.StopTimeout / time.Second)
	for _, c := range refs {
		if err := rn.Stops.Add(stopstate.Container{ID: c.ID, Name: c.Name, StoppedAt: time.Now()}); err != nil {
			return restart, fmt.Errorf("record %s in the state file before stopping it: %w", c.Name, err)
		}
		stopped = append(stopped, c)
		rn.Log.Info("stopping container for the backup", "container", c.Name)
		if _, err := rn.Docker.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &grace}); err != nil {
			return restart, fmt.Errorf("stop %s: %w", c.Name, err)
		}
	}
	return restart, nil
}

// WorkerSpec is the container that reads (or, with readOnly false, writes)
// the volumes of targets: the sidecar's own image, each volume mounted at
// its target's snapshot path, the restic cache, a local repository's
// mount, and the sidecar's network. It is labelled with the sidecar's
// identity, so this sidecar's cleanup removes its own leftovers and nobody
// else's. A target whose volume no longer exists gets no mount and its
// error in skipped (by index); err is an error of the whole spec.
func (rn *Runner) WorkerSpec(ctx context.Context, s *Session, targets []discover.Target, readOnly bool) (spec worker.Spec, skipped map[int]error, err error) {
	self := s.self
	spec = worker.Spec{Image: rn.Config.WorkerImage, Network: "host", Logger: rn.Log, StopGrace: rn.Config.StopTimeout,
		Labels: map[string]string{
			discover.WorkerLabel: strings.Join(s.Plan.Projects, ","),
			worker.SidecarLabel:  sidecarIdentity(self),
		}}
	if self != nil {
		if spec.Image == "" {
			spec.Image = self.Image
		}
		spec.Network = "container:" + self.ID
		for _, m := range self.Mounts {
			if path.Clean(m.Destination) == path.Clean(rn.Config.CacheDir) {
				spec.Mounts = append(spec.Mounts, mountOf(m))
			}
		}
	}
	if spec.Image == "" {
		return spec, nil, errors.New("no worker image: the sidecar does not run in a container, so set PLATBACK_WORKER_IMAGE to the platback/sidecar image")
	}
	if s.repoMount != nil && !slices.ContainsFunc(spec.Mounts, func(m mount.Mount) bool { return m.Target == s.repoMount.Target }) {
		spec.Mounts = append(spec.Mounts, *s.repoMount)
	}
	skipped = map[int]error{}
	for j, t := range targets {
		m, err := rn.volumeMount(ctx, t, readOnly)
		if err != nil {
			skipped[j] = err
			continue
		}
		spec.Mounts = append(spec.Mounts, m)
	}
	return spec, skipped, nil
}

// volumeMount is the mount of target t's volume at its snapshot path.
func (rn *Runner) volumeMount(ctx context.Context, t discover.Target, readOnly bool) (mount.Mount, error) {
	v := t.Volume
	if v == nil {
		return mount.Mount{}, fmt.Errorf("%s is not a volume target", t.Path)
	}
	m := mount.Mount{Type: mount.TypeVolume, Source: v.Name, Target: t.Path, ReadOnly: readOnly}
	if v.Type == string(mount.TypeBind) {
		m.Type, m.Source = mount.TypeBind, v.Source
		return m, nil
	}
	if _, err := rn.Docker.VolumeInspect(ctx, v.Name, client.VolumeInspectOptions{}); err != nil {
		// The engine would create an empty volume of that name for the
		// worker, and its empty snapshot would count as the target's backup.
		if cerrdefs.IsNotFound(err) {
			return m, fmt.Errorf("volume %s no longer exists (removed since the plan was made); nothing was backed up", v.Name)
		}
		return m, fmt.Errorf("inspect volume %s: %w", v.Name, err)
	}
	return m, nil
}

// selfContainer inspects the sidecar's own container; nil when the sidecar
// does not run in one.
func (rn *Runner) selfContainer(ctx context.Context, plan discover.Plan) (*container.InspectResponse, error) {
	if plan.Self.ContainerID == "" {
		return nil, nil
	}
	ins, err := rn.Docker.ContainerInspect(ctx, plan.Self.ContainerID, client.ContainerInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("inspect the sidecar's own container: %w", err)
	}
	return &ins.Container, nil
}

// Identity is the value of worker.SidecarLabel on the workers this sidecar
// starts.
func (rn *Runner) Identity(ctx context.Context) (string, error) {
	self, err := rn.Discover.Self(ctx)
	if err != nil && !errors.Is(err, discover.ErrNoProject) {
		return "", err
	}
	c, err := rn.selfContainer(ctx, discover.Plan{Self: self})
	if err != nil {
		return "", err
	}
	return sidecarIdentity(c), nil
}

// sidecarIdentity names a sidecar stably across re-creation of its
// container: compose project, service and container number; the container
// name outside compose; the host name outside a container.
func sidecarIdentity(self *container.InspectResponse) string {
	if self == nil {
		host, _ := os.Hostname()
		return "host:" + host
	}
	var l map[string]string
	if self.Config != nil {
		l = self.Config.Labels
	}
	if p, svc := l[discover.ComposeProjectLabel], l[discover.ComposeServiceLabel]; p != "" && svc != "" {
		return p + "/" + svc + "/" + cmp.Or(l[discover.ComposeContainerNumberLabel], "1")
	}
	return "container:" + strings.TrimPrefix(self.Name, "/")
}

func mountOf(m container.MountPoint) mount.Mount {
	if m.Type == mount.TypeBind {
		return mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Destination}
	}
	return mount.Mount{Type: mount.TypeVolume, Source: m.Name, Target: m.Destination}
}

// repositoryMountOf returns the mount a worker needs to reach a local
// repository: the mount of the sidecar container self that holds its path,
// or, when the sidecar runs outside a container (self nil), the host
// directory itself. A local repository inside a sidecar container but on no
// mount is an error: it would live in the container's own filesystem, out
// of the workers' reach and lost when the container is re-created.
func repositoryMountOf(loc backup.Location, self *container.InspectResponse) (*mount.Mount, error) {
	return localRepositoryMount("RESTIC_REPOSITORY", loc, self)
}

// localRepositoryMount is repositoryMountOf for the repository of the
// variable name (RESTIC_REPOSITORY, COPY_REPOSITORY).
func localRepositoryMount(name string, loc backup.Location, self *container.InspectResponse) (*mount.Mount, error) {
	if self == nil {
		return &mount.Mount{Type: mount.TypeBind, Source: loc.Path, Target: loc.Path}, nil
	}
	var best *container.MountPoint
	for i, m := range self.Mounts {
		d := path.Clean(m.Destination)
		if (loc.Path == d || strings.HasPrefix(loc.Path, d+"/") || d == "/") && (best == nil || len(d) > len(path.Clean(best.Destination))) {
			best = &self.Mounts[i]
		}
	}
	if best == nil || (best.Type != mount.TypeVolume && best.Type != mount.TypeBind) {
		return nil, fmt.Errorf("%s=%s is a local path on no volume or bind mount of the sidecar container: "+
			"the repository would live in the container's own filesystem, where the worker containers cannot reach it and which is lost when the container is re-created; "+
			"mount a volume there (e.g. `- restic_data:%s` under the sidecar's volumes)", name, loc.Path, loc.Path)
	}
	if !best.RW {
		return nil, fmt.Errorf("%s=%s is on a read-only mount of the sidecar (%s): mount it read-write", name, loc.Path, best.Destination)
	}
	m := mountOf(*best)
	return &m, nil
}

// workerCacheDir is the restic cache inside the worker, when it has one.
func (rn *Runner) workerCacheDir(spec worker.Spec) string {
	for _, m := range spec.Mounts {
		if m.Target == rn.Config.CacheDir {
			return path.Clean(rn.Config.CacheDir)
		}
	}
	return ""
}

// runSteps are what a run does in the repository and in workers. The run's
// decisions around them (order, stop windows, failure isolation, retention
// scope) are tested with a fake.
type runSteps interface {
	// verify opens the repository with the password (VerifyPassword).
	verify(ctx context.Context, s *Session) error
	// backupVolumes backs up volume targets, one snapshot each, handing
	// each target's outcome (by index) to done as soon as it is known.
	backupVolumes(ctx context.Context, s *Session, targets []discover.Target, done func(j int, sum backup.Summary, err error))
	backupDatabase(ctx context.Context, s *Session, t discover.Target) (backup.Summary, error)
	// hook runs a hook's command in its container: its output (bounded),
	// exit status (-1 when unknown) and error.
	hook(ctx context.Context, s *Session, h discover.Hook) (hookOutput, int, error)
	// forget applies the policy to the targets' snapshot groups.
	forget(ctx context.Context, s *Session, targets []discover.Target) (backup.ForgetResult, error)
}

func (rn *Runner) steps() runSteps {
	if rn.testSteps != nil {
		return rn.testSteps
	}
	return resticSteps{rn}
}

// resticSteps are the real steps: workers and restic.
type resticSteps struct{ rn *Runner }

func (r resticSteps) verify(ctx context.Context, s *Session) error { return s.Repo.VerifyPassword(ctx) }

func (r resticSteps) backupVolumes(ctx context.Context, s *Session, targets []discover.Target, done func(int, backup.Summary, error)) {
	r.rn.backupVolumesInWorkers(ctx, s, targets, done)
}

func (r resticSteps) backupDatabase(ctx context.Context, s *Session, t discover.Target) (backup.Summary, error) {
	return r.rn.backupDatabase(ctx, s, t)
}

func (r resticSteps) hook(ctx context.Context, _ *Session, h discover.Hook) (hookOutput, int, error) {
	return r.rn.execHook(ctx, h)
}

// forget applies the policy to the targets' groups in one call: the
// groups of the session's host whose paths hold a target's path and whose
// tags hold its tags, as a filter of path and tags selected them one
// target at a time. Each target is its own group (host, paths, tags).
func (r resticSteps) forget(ctx context.Context, s *Session, targets []discover.Target) (backup.ForgetResult, error) {
	return s.Repo.Forget(ctx, r.rn.Config.Policy, backup.ForgetOptions{Filter: backup.Filter{Host: s.Host}, Select: ofTargets(targets)})
}

// holds tells whether a snapshot (or a group) with paths and tags is one of
// target t.
func holds(paths, tags []string, t discover.Target) bool {
	return slices.Contains(paths, t.Path) && containsAll(tags, t.Tags)
}

// Retention applies the policy to each target's snapshot group, all in one
// restic forget, and returns its errors.
func (rn *Runner) Retention(ctx context.Context, s *Session, targets []discover.Target) []string {
	_, errs := rn.retention(ctx, s, targets)
	return errs
}

// retention is Retention; it also returns what restic said of every group
// of the host (nil when it failed).
func (rn *Runner) retention(ctx context.Context, s *Session, targets []discover.Target) (*backup.ForgetResult, []string) {
	if len(targets) == 0 {
		return nil, nil
	}
	start := time.Now()
	res, err := rn.steps().forget(ctx, s, targets)
	d := time.Since(start)
	paths := make([]string, len(targets))
	for i, t := range targets {
		paths[i] = t.Path
		rn.record(metrics.Phase{Target: t.Path, Kind: string(t.Kind), Phase: metrics.PhaseForget, Start: start, Duration: d, Err: err})
	}
	if err != nil {
		rn.Log.Error("retention failed", "targets", paths, "err", err)
		return nil, []string{fmt.Sprintf("%s: %v", strings.Join(paths, ", "), err)}
	}
	rn.Log.Info("retention", "targets", len(targets), "kept", res.Kept, "removed", res.Removed, "duration", d.Round(time.Millisecond))
	return &res, nil
}

// firstRetention is the retention of a run that initialised the
// repository, without restic: each succeeded target's group holds the one
// snapshot this run made, and a policy that keeps each group's newest
// snapshot (Policy.KeepsNewest) keeps it. What restic's forget would have
// said is returned for countSnapshots, and saves its process and key
// derivation.
func (rn *Runner) firstRetention(s *Session, results []TargetResult) *backup.ForgetResult {
	forgot := &backup.ForgetResult{}
	now := time.Now()
	for i, r := range results {
		if r.Err != nil {
			continue
		}
		t := s.Plan.Targets[i]
		g := backup.ForgetGroup{Host: s.Host, Paths: []string{t.Path}, Tags: t.Tags}
		if r.SnapshotID != "" {
			g.Keep = []backup.Snapshot{{ID: r.SnapshotID}}
		}
		forgot.Groups = append(forgot.Groups, g)
		forgot.Kept += len(g.Keep)
		rn.record(metrics.Phase{Target: t.Path, Kind: string(t.Kind), Phase: metrics.PhaseForget, Start: now})
	}
	if len(forgot.Groups) > 0 {
		rn.Log.Info("retention", "targets", len(forgot.Groups), "kept", forgot.Kept, "removed", 0,
			"why", "this run created the repository: each target holds its first snapshot, which the policy keeps")
	}
	return forgot
}

// countSnapshots updates the snapshot-count metric of every target: from
// the groups the run's retention saw (forgot; it saw every group of the
// host), minus what it removed, or else from a listing.
func (rn *Runner) countSnapshots(ctx context.Context, s *Session, forgot *backup.ForgetResult) {
	if rn.Metrics == nil {
		return
	}
	type counted struct {
		paths, tags []string
		n           int
	}
	var all []counted
	if forgot != nil {
		for _, g := range forgot.Groups {
			all = append(all, counted{g.Paths, g.Tags, len(g.Keep)})
		}
		for _, g := range forgot.Others {
			all = append(all, counted{g.Paths, g.Tags, g.Snapshots()})
		}
	} else {
		snaps, err := s.Repo.Snapshots(ctx, backup.Filter{Host: s.Host})
		if err != nil {
			rn.Log.Warn("could not count snapshots", "err", err)
			return
		}
		for _, sn := range snaps {
			all = append(all, counted{sn.Paths, sn.Tags, 1})
		}
	}
	for _, t := range s.Plan.Targets {
		n := 0
		for _, c := range all {
			if holds(c.paths, c.tags, t) {
				n += c.n
			}
		}
		rn.Metrics.Snapshots(t.Path, string(t.Kind), n)
	}
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func (rn *Runner) record(p metrics.Phase) {
	if rn.Metrics != nil {
		rn.Metrics.Record(p)
	}
}

// client is the Docker client behind rn.Docker, for the packages that take
// the whole client (database dumps and restores).
func (rn *Runner) client() *client.Client {
	c, _ := rn.Docker.(*client.Client)
	return c
}
