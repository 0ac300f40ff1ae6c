package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/moby/moby/client"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/dbengine"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/worker"
)

// RestoreOptions say how a target is restored.
type RestoreOptions struct {
	// Snapshot is a snapshot id (or a prefix of one), or "latest".
	Snapshot string
	// Mirror makes the destination equal to the snapshot: files the
	// snapshot does not hold are deleted. Otherwise the restore merges.
	Mirror bool
	// DryRun reports what would change and writes nothing.
	DryRun bool
	// NoStop restores into a volume while the containers using it run.
	NoStop bool
}

// RestoreResult says what a restore did (or, on a dry run, would do).
type RestoreResult struct {
	Snapshot backup.Snapshot
	Summary  backup.RestoreSummary
	// Stopped are the containers stopped for the restore and started again.
	Stopped []discover.ContainerRef
}

// Snapshot paths of targets: /volumes/<service>/<dest> and
// /databases/<service>/<file> (see discover).
var snapshotRoots = []string{"/volumes/", "/databases/"}

// ErrBadRestorePath marks a restore path refused before anything runs.
var ErrBadRestorePath = errors.New("not a snapshot path of a target")

// CheckRestorePath checks a snapshot path given to a restore before
// anything runs: it is absolute, has no ".." segment and lies under
// /volumes/ or /databases/, where the plan puts every target (so "/",
// "../../etc" or "/etc" never reach restic). It returns the path cleaned
// ("/volumes/app//data/" is "/volumes/app/data"). Errors match
// ErrBadRestorePath.
func CheckRestorePath(p string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("--path %q: %w: %s", p, ErrBadRestorePath, why)
	}
	switch {
	case strings.TrimSpace(p) == "":
		return bad("it is empty")
	case !path.IsAbs(p):
		return bad("a snapshot path is absolute, e.g. /volumes/<service>/<mount> or /databases/<service>/all_databases.sql")
	case slices.Contains(strings.Split(p, "/"), ".."):
		return bad("a snapshot path has no \"..\" segment")
	}
	clean := path.Clean(p)
	for _, root := range snapshotRoots {
		if rest, ok := strings.CutPrefix(clean, root); ok && rest != "" {
			return clean, nil
		}
		if clean+"/" == root {
			return bad(clean + " holds every target: give one target's path")
		}
	}
	return bad("the stack's snapshots are under /volumes/ and /databases/")
}

// SnapshotOf resolves snapshot (an id, a prefix of one, or "latest") among
// the snapshots of snapshotPath on the session's host. An id that belongs to
// another path is refused with what it holds.
func (rn *Runner) SnapshotOf(ctx context.Context, s *Session, snapshotPath, snapshot string) (backup.Snapshot, error) {
	snaps, err := s.Repo.Snapshots(ctx, backup.Filter{Host: s.Host, Paths: []string{snapshotPath}})
	if err != nil {
		return backup.Snapshot{}, err
	}
	if snapshot == "" || snapshot == "latest" {
		if len(snaps) == 0 {
			return backup.Snapshot{}, fmt.Errorf("no snapshot of %s on host %s; %s", snapshotPath, s.Host, rn.pathsWithSnapshots(ctx, s))
		}
		return slices.MaxFunc(snaps, func(a, b backup.Snapshot) int { return a.Time.Compare(b.Time) }), nil
	}
	if len(snapshot) < 4 {
		return backup.Snapshot{}, fmt.Errorf("--snapshot %q: give at least 4 characters of the id, as `sidecar snapshots --path %s` shows it", snapshot, snapshotPath)
	}
	for _, sn := range snaps {
		if strings.HasPrefix(sn.ID, snapshot) {
			return sn, nil
		}
	}
	all, err := s.Repo.Snapshots(ctx, backup.Filter{})
	if err != nil {
		return backup.Snapshot{}, err
	}
	for _, sn := range all {
		if strings.HasPrefix(sn.ID, snapshot) {
			return backup.Snapshot{}, fmt.Errorf("snapshot %s holds %s (host %s), not %s: pick one of `sidecar snapshots --path %s`",
				sn.ShortID, strings.Join(sn.Paths, ", "), sn.Hostname, snapshotPath, snapshotPath)
		}
	}
	return backup.Snapshot{}, fmt.Errorf("no snapshot %s in the repository: see `sidecar snapshots --path %s`", snapshot, snapshotPath)
}

// pathsWithSnapshots says which paths have snapshots on the session's host,
// for an error about a path that has none.
func (rn *Runner) pathsWithSnapshots(ctx context.Context, s *Session) string {
	snaps, err := s.Repo.Snapshots(ctx, backup.Filter{Host: s.Host})
	if err != nil {
		return "see `sidecar snapshots` (listing this host's snapshots failed: " + err.Error() + ")"
	}
	var paths []string
	for _, sn := range snaps {
		for _, p := range sn.Paths {
			if !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
	}
	if len(paths) == 0 {
		return "host " + s.Host + " has no snapshot in this repository yet (PLATBACK_HOST or the compose project name sets the host)"
	}
	slices.Sort(paths)
	return "paths with snapshots on host " + s.Host + ": " + strings.Join(paths, ", ") + " (see `sidecar snapshots --path P`)"
}

// RestoreInto restores the snapshot of snapshotPath under dir, in the
// sidecar's own filesystem (the files land at dir/<snapshotPath>). dir
// must be absolute and not "/"; it is created only once the snapshot is
// found.
func (rn *Runner) RestoreInto(ctx context.Context, s *Session, snapshotPath, dir string, o RestoreOptions) (RestoreResult, error) {
	if !path.IsAbs(dir) || path.Clean(dir) == "/" {
		return RestoreResult{}, fmt.Errorf("restore into %q: want an absolute directory other than /", dir)
	}
	snapshotPath, err := CheckRestorePath(snapshotPath)
	if err != nil {
		return RestoreResult{}, err
	}
	sn, err := rn.SnapshotOf(ctx, s, snapshotPath, o.Snapshot)
	if err != nil {
		return RestoreResult{}, err
	}
	sum, err := s.Repo.Restore(ctx, sn.ID, dir, backup.RestoreOptions{Include: []string{snapshotPath}, Delete: o.Mirror, DryRun: o.DryRun})
	return RestoreResult{Snapshot: sn, Summary: sum}, err
}

// RestoreVolume writes the snapshot of a volume target back into its
// volume, from a worker container. Unless o.NoStop (or a dry run), the
// running containers of the stack that use the volume are stopped first,
// recorded in the state file, and always started again (dependencies
// first); a running container of another project that uses it makes the
// restore refuse.
func (rn *Runner) RestoreVolume(ctx context.Context, s *Session, t discover.Target, snapshotPath string, o RestoreOptions) (res RestoreResult, err error) {
	if t.Volume == nil {
		return res, fmt.Errorf("%s is a database dump: use --to-database or --into", snapshotPath)
	}
	if res.Snapshot, err = rn.SnapshotOf(ctx, s, snapshotPath, o.Snapshot); err != nil {
		return res, err
	}
	if !o.NoStop && !o.DryRun {
		users, err := rn.volumeUsers(ctx, s.Plan, t)
		if err != nil {
			return res, err
		}
		stopOrder := discover.StartOrder(users)
		slices.Reverse(stopOrder)
		restart, err := rn.stop(ctx, stopOrder)
		res.Stopped = users
		defer func() {
			if rerr := restart(); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}()
		if err != nil {
			return res, err
		}
	}
	spec, skipped, err := rn.WorkerSpec(ctx, s, []discover.Target{t}, false)
	if err == nil {
		err = skipped[0]
	}
	if err != nil {
		return res, err
	}
	owner := s.workerOwner()
	req := worker.Request{Op: worker.OpRestore, Repository: s.URL, Env: s.Env,
		Host: s.Host, Snapshot: res.Snapshot.ID, Path: snapshotPath, Mirror: o.Mirror, DryRun: o.DryRun, Owner: owner,
		Timeout: rn.Config.BackupTimeout, LogLevel: rn.Config.LogLevel}
	rn.workerRestic(&req, spec, s)
	resps, err := worker.Run(ctx, rn.Docker, spec, req, nil)
	if err != nil {
		rn.removeWorkerLocks(ctx, s, owner, err)
		return res, err
	}
	res.Summary = resps[0].Restore
	return res, workerError(resps[0].Err(), s)
}

// volumeUsers returns the running containers of the plan's projects that
// mount t's volume (or bind source), the sidecar and its workers excepted.
// A running container of another project that mounts it is an error: the
// restore would write under it.
func (rn *Runner) volumeUsers(ctx context.Context, plan discover.Plan, t discover.Target) ([]discover.ContainerRef, error) {
	list, err := rn.Docker.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list the containers that use %s: %w", t.Volume.Source, err)
	}
	inScope := map[string]bool{}
	for _, p := range plan.Projects {
		inScope[p] = true
	}
	var users, outsiders []discover.ContainerRef
	for _, s := range list.Items {
		c := discover.ContainerFromSummary(s)
		if c.ID == plan.Self.ContainerID || c.Labels[discover.WorkerLabel] != "" || c.State != "running" {
			continue
		}
		if !slices.ContainsFunc(c.Mounts, func(m discover.Mount) bool { return sameMount(m, *t.Volume) }) {
			continue
		}
		if inScope[c.Labels[discover.ComposeProjectLabel]] {
			users = append(users, c.Ref())
		} else {
			outsiders = append(outsiders, c.Ref())
		}
	}
	if len(outsiders) > 0 {
		var names []string
		for _, c := range outsiders {
			names = append(names, c.Name)
		}
		return nil, fmt.Errorf("%s is also used by running container(s) outside this stack: %s; stop them first, or restore with --no-stop",
			t.Volume.Source, strings.Join(names, ", "))
	}
	slices.SortFunc(users, func(a, b discover.ContainerRef) int { return cmp.Compare(a.Name, b.Name) })
	return users, nil
}

// sameMount reports whether m exposes the volume or host path v backs up.
func sameMount(m discover.Mount, v discover.VolumeTarget) bool {
	if v.Type == "volume" && v.Name != "" {
		return m.Type == "volume" && m.Name == v.Name
	}
	return m.Type == v.Type && m.Source != "" && path.Clean(m.Source) == path.Clean(v.Source)
}

// RestoreDatabase pipes the dump of a database target's snapshot into its
// database container (dbengine.Restore says what is refused and why).
func (rn *Runner) RestoreDatabase(ctx context.Context, s *Session, t discover.Target, snapshotPath, snapshot string) (RestoreResult, error) {
	if t.Database == nil {
		return RestoreResult{}, fmt.Errorf("%s is a volume: use --to-volume or --into", snapshotPath)
	}
	sn, err := rn.SnapshotOf(ctx, s, snapshotPath, snapshot)
	if err != nil {
		return RestoreResult{}, err
	}
	pr, pw := io.Pipe()
	dumped := make(chan error, 1)
	go func() {
		err := s.Repo.Dump(ctx, sn.ID, snapshotPath, backup.Filter{}, pw)
		pw.CloseWithError(err)
		dumped <- err
	}()
	db := dbengine.Database{Engine: dbengine.Engine(t.Database.Engine), ContainerID: t.Container.ID, ContainerName: t.Container.Name}
	rerr := dbengine.Restore(ctx, rn.client(), db, pr)
	pr.CloseWithError(errors.New("restore ended"))
	derr := <-dumped
	if rerr != nil {
		// The client's error is the cause; restic's broken pipe is noise.
		return RestoreResult{Snapshot: sn}, rerr
	}
	return RestoreResult{Snapshot: sn}, derr
}
