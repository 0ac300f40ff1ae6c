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

// OK is true when the run backed up at least one target and everything succeeded.
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
	// owners prefixes the lock owner (backup.Options.Owner) of every restic
	// process started under the run lock: the sidecar's own and its
	// workers'. Those that are left when a session opens were left by
	// processes that are gone.
	owners string
	// self is the sidecar's own container as Open inspected it (nil
	// outside a container): workers take its image, network and mounts.
	self *container.InspectResponse
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
	if o.Ensure {
		res, err := repo.EnsureRepo(ctx)
		if err != nil {
			return nil, nil, err
		}
		warnings = res.Warnings
	}
	s := &Session{Repo: repo, Plan: plan, Host: host, Env: env, URL: url, repoMount: repoMount, owners: owners, self: self}
	if !o.Shared {
		rn.removeLeftoverLocks(ctx, s)
	}
	return s, warnings, nil
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

	res.Targets = rn.backupAll(ctx, s)
	if ctx.Err() != nil {
		res.Err = fmt.Errorf("run interrupted: %w", ctx.Err())
		return
	}
	if rn.Config.RetentionCron == "" {
		res.Retention = rn.Retention(ctx, s, succeeded(s.Plan.Targets, res.Targets))
	}
	rn.countSnapshots(ctx, s)
	if rn.Config.Check {
		start := time.Now()
		err := s.Repo.Check(ctx, backup.CheckOptions{ReadDataSubset: rn.Config.CheckSubset})
		rn.record(metrics.Phase{Target: "repository", Kind: "repository", Phase: metrics.PhaseCheck, Start: start, Duration: time.Since(start), Err: err})
		if err != nil {
			res.Check = err.Error()
		}
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

// backupAll backs up every target of the plan, up to Config.Parallel at a
// time, in plan order, except that the volume targets of one stop window
// are backed up together (one after the other) while its containers are
// stopped. It starts nothing more once ctx is cancelled; the results are
// those of the targets it got to, in plan order.
func (rn *Runner) backupAll(ctx context.Context, s *Session) []TargetResult {
	targets := s.Plan.Targets
	windows, windowOf := StopWindows(targets)
	results := make([]*TargetResult, len(targets))
	// A unit is a window or a lone target.
	var units []func()
	seen := map[int]bool{}
	for i, t := range targets {
		if w, ok := windowOf[i]; ok {
			if !seen[w] {
				seen[w] = true
				units = append(units, func() { rn.backupWindow(ctx, s, windows[w], results) })
			}
			continue
		}
		units = append(units, func() {
			tr := rn.backupTarget(ctx, s, t)
			results[i] = &tr
		})
	}
	sem := make(chan struct{}, max(rn.Config.Parallel, 1))
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

// backupWindow stops a window's containers once (dependents first), backs
// up its targets, and restarts the containers (dependencies first) whatever
// happened.
func (rn *Runner) backupWindow(ctx context.Context, s *Session, w StopWindow, results []*TargetResult) {
	start := discover.StartOrder(w.Stop)
	stopOrder := slices.Clone(start)
	slices.Reverse(stopOrder)
	restart, err := rn.stop(ctx, stopOrder)
	for _, i := range w.Targets {
		var tr TargetResult
		if err != nil {
			tr = rn.failTarget(s.Plan.Targets[i], time.Now(), err)
		} else {
			tr = rn.backupTarget(ctx, s, s.Plan.Targets[i])
		}
		results[i] = &tr
		if ctx.Err() != nil {
			break
		}
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

// failTarget is the result of a target that could not start.
func (rn *Runner) failTarget(t discover.Target, start time.Time, err error) TargetResult {
	rn.Log.Error("target failed", "target", t.Path, "err", err)
	rn.record(metrics.Phase{Target: t.Path, Kind: string(t.Kind), Phase: metrics.PhaseBackup, Start: start, Duration: time.Since(start), Err: err, HasFiles: true})
	return TargetResult{Path: t.Path, Service: t.Service, Kind: string(t.Kind), Err: err, Error: err.Error()}
}

func (rn *Runner) backupTarget(ctx context.Context, s *Session, t discover.Target) TargetResult {
	log := rn.Log.With("target", t.Path)
	tr := TargetResult{Path: t.Path, Service: t.Service, Kind: string(t.Kind)}
	start := time.Now()
	var sum backup.Summary
	var err error
	phase := metrics.PhaseBackup
	if t.Volume == nil {
		phase = metrics.PhaseDump
	}
	sum, err = rn.steps().backup(ctx, s, t)
	tr.Duration = time.Since(start)
	tr.SnapshotID, tr.FilesNew, tr.Changed, tr.BytesAdded = sum.SnapshotID, sum.FilesNew, sum.FilesChanged, sum.DataAdded
	if err != nil {
		tr.Err, tr.Error = err, err.Error()
		log.Error("target failed", "err", err)
	} else {
		log.Info("target backed up", "snapshot", ids.Snapshot(sum.SnapshotID), "files_new", sum.FilesNew, "files_changed", sum.FilesChanged,
			"bytes_added", sum.DataAdded, "duration", tr.Duration.Round(time.Millisecond))
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

// backupVolume backs the volume up in a worker container (its
// stop-during-backup containers are already stopped: backupWindow).
func (rn *Runner) backupVolume(ctx context.Context, s *Session, t discover.Target) (backup.Summary, error) {
	spec, err := rn.WorkerSpec(ctx, s, t, true)
	if err != nil {
		return backup.Summary{}, err
	}
	owner := s.workerOwner()
	resp, err := worker.Run(ctx, rn.Docker, spec, worker.Request{
		Op: worker.OpBackup, Repository: s.URL, Env: s.Env, Host: s.Host, Tags: t.Tags, Owner: owner,
		CacheDir: rn.workerCacheDir(spec), Timeout: rn.Config.BackupTimeout, LogLevel: rn.Config.LogLevel, Path: t.Path,
	})
	if err != nil {
		rn.removeWorkerLocks(ctx, s, owner, err)
		return backup.Summary{}, err
	}
	return resp.Summary, workerError(resp.Err(), s)
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
// target t's volume: the sidecar's own image, the volume mounted at the
// target's snapshot path, the restic cache, a local repository's mount, and
// the sidecar's network. It is labelled with the sidecar's identity, so
// this sidecar's cleanup removes its own leftovers and nobody else's.
func (rn *Runner) WorkerSpec(ctx context.Context, s *Session, t discover.Target, readOnly bool) (worker.Spec, error) {
	if t.Volume == nil {
		return worker.Spec{}, fmt.Errorf("%s is not a volume target", t.Path)
	}
	self := s.self
	spec := worker.Spec{Image: rn.Config.WorkerImage, Network: "host", Logger: rn.Log, StopGrace: rn.Config.StopTimeout,
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
		return spec, errors.New("no worker image: the sidecar does not run in a container, so set PLATBACK_WORKER_IMAGE to the platback/sidecar image")
	}
	if s.repoMount != nil && !slices.ContainsFunc(spec.Mounts, func(m mount.Mount) bool { return m.Target == s.repoMount.Target }) {
		spec.Mounts = append(spec.Mounts, *s.repoMount)
	}
	v := t.Volume
	m := mount.Mount{Type: mount.TypeVolume, Source: v.Name, Target: t.Path, ReadOnly: readOnly}
	if v.Type == string(mount.TypeBind) {
		m.Type, m.Source = mount.TypeBind, v.Source
	} else if _, err := rn.Docker.VolumeInspect(ctx, v.Name, client.VolumeInspectOptions{}); err != nil {
		// The engine would create an empty volume of that name for the
		// worker, and its empty snapshot would count as the target's backup.
		if cerrdefs.IsNotFound(err) {
			return spec, fmt.Errorf("volume %s no longer exists (removed since the plan was made); nothing was backed up", v.Name)
		}
		return spec, fmt.Errorf("inspect volume %s: %w", v.Name, err)
	}
	spec.Mounts = append(spec.Mounts, m)
	return spec, nil
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
		return nil, fmt.Errorf("RESTIC_REPOSITORY=%s is a local path on no volume or bind mount of the sidecar container: "+
			"the repository would live in the container's own filesystem, where the worker containers cannot reach it and which is lost when the container is re-created; "+
			"mount a volume there (e.g. `- restic_data:%s` under the sidecar's volumes)", loc.Path, loc.Path)
	}
	if !best.RW {
		return nil, fmt.Errorf("RESTIC_REPOSITORY=%s is on a read-only mount of the sidecar (%s): mount it read-write", loc.Path, best.Destination)
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
	backup(ctx context.Context, s *Session, t discover.Target) (backup.Summary, error)
	forget(ctx context.Context, s *Session, t discover.Target) (backup.ForgetResult, error)
}

func (rn *Runner) steps() runSteps {
	if rn.testSteps != nil {
		return rn.testSteps
	}
	return resticSteps{rn}
}

// resticSteps are the real steps: workers and restic.
type resticSteps struct{ rn *Runner }

func (r resticSteps) backup(ctx context.Context, s *Session, t discover.Target) (backup.Summary, error) {
	if t.Volume != nil {
		return r.rn.backupVolume(ctx, s, t)
	}
	return r.rn.backupDatabase(ctx, s, t)
}

// forget applies the policy to one target: its path as well as its tags
// select its snapshots, so each target is its own group.
func (r resticSteps) forget(ctx context.Context, s *Session, t discover.Target) (backup.ForgetResult, error) {
	return s.Repo.Forget(ctx, r.rn.Config.Policy, backup.ForgetOptions{
		Filter: backup.Filter{Host: s.Host, Tags: t.Tags, Paths: []string{t.Path}}})
}

// Retention applies the policy to each target's snapshot group.
func (rn *Runner) Retention(ctx context.Context, s *Session, targets []discover.Target) []string {
	var errs []string
	for _, t := range targets {
		start := time.Now()
		res, err := rn.steps().forget(ctx, s, t)
		rn.record(metrics.Phase{Target: t.Path, Kind: string(t.Kind), Phase: metrics.PhaseForget, Start: start, Duration: time.Since(start), Err: err})
		if err != nil {
			rn.Log.Error("retention failed", "target", t.Path, "err", err)
			errs = append(errs, fmt.Sprintf("%s: %v", t.Path, err))
			continue
		}
		rn.Log.Info("retention", "target", t.Path, "kept", res.Kept, "removed", res.Removed)
	}
	return errs
}

// countSnapshots updates the snapshot-count metric of every target.
func (rn *Runner) countSnapshots(ctx context.Context, s *Session) {
	if rn.Metrics == nil {
		return
	}
	snaps, err := s.Repo.Snapshots(ctx, backup.Filter{Host: s.Host})
	if err != nil {
		rn.Log.Warn("could not count snapshots", "err", err)
		return
	}
	for _, t := range s.Plan.Targets {
		n := 0
		for _, sn := range snaps {
			if slices.Contains(sn.Paths, t.Path) && containsAll(sn.Tags, t.Tags) {
				n++
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
