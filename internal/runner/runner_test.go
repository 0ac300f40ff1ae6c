package runner

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

func ref(name, service string, deps ...string) discover.ContainerRef {
	return discover.ContainerRef{ID: "id-" + name, Name: name, Project: "p", Service: service, DependsOn: deps}
}

func volumeTarget(path string, stop ...discover.ContainerRef) discover.Target {
	return discover.Target{Kind: discover.KindVolume, Path: path, Volume: &discover.VolumeTarget{Type: "volume", Name: path, Stop: stop}}
}

func TestStopWindows(t *testing.T) {
	app, db, web := ref("app", "app", "db"), ref("db", "db"), ref("web", "web")
	dump := discover.Target{Kind: discover.KindPostgres, Path: "/databases/pg/all_databases.sql", Database: &discover.DatabaseTarget{}}
	tests := []struct {
		name     string
		targets  []discover.Target
		windows  []StopWindow
		windowOf map[int]int
	}{
		{name: "nothing to stop", targets: []discover.Target{volumeTarget("/a"), dump}, windowOf: map[int]int{}},
		{name: "the volumes of one service share a window",
			targets:  []discover.Target{volumeTarget("/volumes/app/config", app), volumeTarget("/volumes/app/data", app), volumeTarget("/x"), dump},
			windows:  []StopWindow{{Stop: []discover.ContainerRef{app}, Targets: []int{0, 1}}},
			windowOf: map[int]int{0: 0, 1: 0}},
		{name: "a shared volume joins two services",
			targets: []discover.Target{volumeTarget("/volumes/app/data", app), volumeTarget("/volumes/app/shared", app, db),
				volumeTarget("/volumes/db/files", db), volumeTarget("/volumes/web/www", web)},
			windows: []StopWindow{{Stop: []discover.ContainerRef{app, db}, Targets: []int{0, 1, 2}},
				{Stop: []discover.ContainerRef{web}, Targets: []int{3}}},
			windowOf: map[int]int{0: 0, 1: 0, 2: 0, 3: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			windows, windowOf := StopWindows(tt.targets)
			assert.Equal(t, tt.windows, windows)
			assert.Equal(t, tt.windowOf, windowOf)
		})
	}
}

func TestRepositoryMount(t *testing.T) {
	self := &container.InspectResponse{Mounts: []container.MountPoint{
		{Type: mount.TypeVolume, Name: "proj_cache", Destination: "/cache", RW: true},
		{Type: mount.TypeVolume, Name: "proj_restic_data", Destination: "/restic_data", RW: true},
		{Type: mount.TypeBind, Source: "/srv/backups", Destination: "/backups", RW: true},
		{Type: mount.TypeBind, Source: "/srv/ro", Destination: "/ro"},
	}}
	tests := []struct {
		repo string
		want *mount.Mount
		err  string
	}{
		{repo: "/restic_data", want: &mount.Mount{Type: mount.TypeVolume, Source: "proj_restic_data", Target: "/restic_data"}},
		{repo: "/backups/app/repo", want: &mount.Mount{Type: mount.TypeBind, Source: "/srv/backups", Target: "/backups"}},
		{repo: "/restic_data_other", err: "on no volume or bind mount"},
		{repo: "/ro/repo", err: "read-only"},
		{repo: "s3:https://minio.internal/bucket"},
	}
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			loc, err := backup.ParseLocation(tt.repo)
			require.NoError(t, err)
			if loc.Kind != "local" {
				return // only local repositories need a mount
			}
			got, err := repositoryMountOf(loc, self)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				assert.Contains(t, err.Error(), "RESTIC_REPOSITORY="+tt.repo)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	t.Run("outside a container, the host directory itself", func(t *testing.T) {
		loc, _ := backup.ParseLocation("/srv/restic")
		got, err := repositoryMountOf(loc, nil)
		require.NoError(t, err)
		assert.Equal(t, &mount.Mount{Type: mount.TypeBind, Source: "/srv/restic", Target: "/srv/restic"}, got)
	})
}

func TestSidecarIdentity(t *testing.T) {
	compose := &container.InspectResponse{Name: "/mm_backup_1", Config: &container.Config{Labels: map[string]string{
		discover.ComposeProjectLabel: "mm", discover.ComposeServiceLabel: "backup", discover.ComposeContainerNumberLabel: "2"}}}
	assert.Equal(t, "mm/backup/2", sidecarIdentity(compose))
	plain := &container.InspectResponse{Name: "/my-backup", Config: &container.Config{}}
	assert.Equal(t, "container:my-backup", sidecarIdentity(plain))
	assert.Contains(t, sidecarIdentity(nil), "host:")
}

// Retention on the real restic: two volumes of one service and two
// replicas of one service carry the same tags, as every version wrote them;
// each keeps its own snapshots, including a target whose backups failed for
// longer than keep-within.
func TestRetentionKeepsEveryTarget(t *testing.T) {
	ctx := context.Background()
	repo, err := backup.Open(ctx, filepath.Join(t.TempDir(), "repo"), backup.Options{Restic: testbed.Tool(t, "restic"),
		Env: map[string]string{"RESTIC_PASSWORD": "retention"}, Host: "stack", CacheDir: t.TempDir()})
	require.NoError(t, err)
	_, err = repo.EnsureRepo(ctx)
	require.NoError(t, err)
	appTags := []string{"project=stack", "service=app", "kind=volume"}
	webTags := []string{"project=stack", "service=web", "kind=volume"}
	targets := []discover.Target{
		{Kind: discover.KindVolume, Path: "/volumes/app/config", Tags: appTags},
		{Kind: discover.KindVolume, Path: "/volumes/app/data", Tags: appTags},
		{Kind: discover.KindVolume, Path: "/volumes/web-1/srv", Tags: webTags},
		{Kind: discover.KindVolume, Path: "/volumes/web-2/srv", Tags: webTags},
	}
	now := time.Now()
	snapshot := func(t discover.Target, at time.Time) {
		_, err := repo.BackupStream(ctx, t.Path, []string{"echo", t.Path}, backup.BackupOptions{Tags: t.Tags, Time: at})
		require.NoError(nil, err)
	}
	// app/config failed for 40 days; the others ran every day.
	snapshot(targets[0], now.AddDate(0, 0, -41))
	for i := range 3 {
		for _, tg := range targets[1:] {
			snapshot(tg, now.AddDate(0, 0, i-3))
		}
	}
	s := &Session{Repo: repo, Host: "stack"}
	count := func(path string) int {
		snaps, err := repo.Snapshots(ctx, backup.Filter{Paths: []string{path}})
		require.NoError(t, err)
		return len(snaps)
	}

	rn := &Runner{Config: config.Config{Policy: backup.DefaultPolicy()}, Log: slog.New(slog.DiscardHandler)}
	require.Empty(t, rn.Retention(ctx, s, targets[1:]), "retention after a run where app/config failed")
	assert.Equal(t, 1, count("/volumes/app/config"), "a target that failed for longer than keep-within keeps its last snapshot")

	rn.Config.Policy = backup.Policy{Last: 1}
	require.Empty(t, rn.Retention(ctx, s, targets))
	for _, tg := range targets {
		assert.Equal(t, 1, count(tg.Path), "keep-last 1 keeps one snapshot of %s", tg.Path)
	}
}

// countingRestic is the pinned restic behind a script that logs the
// subcommand of every process it starts; calls returns them so far.
func countingRestic(t *testing.T) (bin string, calls func() []string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls.log")
	bin = filepath.Join(dir, "restic")
	script := "#!/bin/sh\necho \"$1\" >> '" + log + "'\nexec '" + testbed.Tool(t, "restic") + "' \"$@\"\n"
	require.NoError(t, os.WriteFile(bin, []byte(script), 0o755))
	return bin, func() []string {
		b, err := os.ReadFile(log)
		if os.IsNotExist(err) {
			return nil
		}
		require.NoError(t, err)
		return strings.Fields(string(b))
	}
}

// Retention of a run is one restic forget for all the targets that
// succeeded (a second only when it removes snapshots), and it touches no
// other group: a target whose backup failed this run — here with a newer,
// partial snapshot — keeps every snapshot. The snapshot counts come from
// what that forget saw: no `restic snapshots`.
func TestRetentionOneCallLeavesFailedTargets(t *testing.T) {
	ctx := context.Background()
	bin, calls := countingRestic(t)
	repo, err := backup.Open(ctx, filepath.Join(t.TempDir(), "repo"), backup.Options{Restic: bin,
		Env: map[string]string{"RESTIC_PASSWORD": "one-call"}, Host: "stack", CacheDir: t.TempDir()})
	require.NoError(t, err)
	_, err = repo.EnsureRepo(ctx)
	require.NoError(t, err)
	appTags := []string{"project=stack", "service=app", "kind=volume"}
	data := discover.Target{Kind: discover.KindVolume, Path: "/volumes/app/data", Tags: appTags}
	failed := discover.Target{Kind: discover.KindVolume, Path: "/volumes/app/config", Tags: appTags}
	web := discover.Target{Kind: discover.KindVolume, Path: "/volumes/web/srv", Tags: []string{"project=stack", "service=web", "kind=volume"}}
	now := time.Now()
	for i := range 3 {
		for _, tg := range []discover.Target{data, failed, web} {
			_, err := repo.BackupStream(ctx, tg.Path, []string{"echo", tg.Path}, backup.BackupOptions{Tags: tg.Tags, Time: now.Add(time.Duration(i-4) * time.Hour)})
			require.NoError(t, err)
		}
	}
	_, err = repo.BackupStream(ctx, failed.Path, []string{"echo", "partial"}, backup.BackupOptions{Tags: failed.Tags, Time: now})
	require.NoError(t, err)
	count := func(path string) int {
		snaps, err := repo.Snapshots(ctx, backup.Filter{Paths: []string{path}})
		require.NoError(t, err)
		return len(snaps)
	}
	m := metrics.New("stack", "test", repo.Version)
	s := &Session{Repo: repo, Host: "stack", Plan: discover.Plan{Targets: []discover.Target{data, failed, web}}}
	rn := &Runner{Config: config.Config{Policy: backup.Policy{Last: 1}}, Metrics: m, Log: slog.New(slog.DiscardHandler)}

	before := len(calls())
	forgot, errs := rn.retention(ctx, s, []discover.Target{data, web})
	require.Empty(t, errs)
	rn.countSnapshots(ctx, s, forgot)
	assert.Equal(t, []string{"forget", "forget"}, calls()[before:], "one forget that asks, one that removes")
	assert.Equal(t, 1, count(data.Path))
	assert.Equal(t, 1, count(web.Path))
	assert.Equal(t, 4, count(failed.Path), "the failed target keeps every snapshot")
	assert.Equal(t, []float64{1, 4, 1}, []float64{snapshotMetric(t, m, data.Path), snapshotMetric(t, m, failed.Path), snapshotMetric(t, m, web.Path)})

	before = len(calls())
	require.Empty(t, rn.Retention(ctx, s, []discover.Target{data, failed, web}))
	assert.Equal(t, []string{"forget", "forget"}, calls()[before:])
	assert.Equal(t, 1, count(failed.Path))
	before = len(calls())
	require.Empty(t, rn.Retention(ctx, s, []discover.Target{data, failed, web}))
	assert.Equal(t, []string{"forget"}, calls()[before:], "nothing to remove: one restic process")
}

// A volume removed between the plan and its backup must fail its target,
// and only it: the engine would otherwise create an empty volume of that
// name for the worker, and an empty snapshot would pass for the target's
// backup. The other volumes of the worker are mounted.
func TestWorkerSpecRefusesARemovedVolume(t *testing.T) {
	cli := dockerbed.Client(t)
	ctx := context.Background()
	name, kept := dockerbed.UniqueName("gone"), dockerbed.UniqueName("kept")
	dockerbed.Volume(t, cli, name, nil)
	dockerbed.Volume(t, cli, kept, nil)
	rn := &Runner{Docker: cli, Config: config.Config{WorkerImage: "platback/sidecar", CacheDir: "/cache"}, Log: slog.New(slog.DiscardHandler)}
	targets := []discover.Target{
		{Kind: discover.KindVolume, Path: "/volumes/app/data", Volume: &discover.VolumeTarget{Type: "volume", Name: name}},
		{Kind: discover.KindVolume, Path: "/volumes/app/kept", Volume: &discover.VolumeTarget{Type: "volume", Name: kept}},
	}
	spec, skipped, err := rn.WorkerSpec(ctx, &Session{}, targets, true)
	require.NoError(t, err)
	assert.Empty(t, skipped, "the volumes exist")
	assert.Len(t, spec.Mounts, 2)

	_, err = cli.VolumeRemove(ctx, name, client.VolumeRemoveOptions{})
	require.NoError(t, err)
	spec, skipped, err = rn.WorkerSpec(ctx, &Session{}, targets, true)
	require.NoError(t, err)
	require.ErrorContains(t, skipped[0], "volume "+name+" no longer exists")
	assert.NoError(t, skipped[1])
	assert.Equal(t, []mount.Mount{{Type: mount.TypeVolume, Source: kept, Target: "/volumes/app/kept", ReadOnly: true}}, spec.Mounts)
	_, err = cli.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	assert.Error(t, err, "nothing re-created it")
}

func TestShares(t *testing.T) {
	assert.Empty(t, shares(nil, 3))
	assert.Equal(t, [][]int{{1, 2, 3}}, shares([]int{1, 2, 3}, 1))
	assert.Equal(t, [][]int{{1}, {2}, {3}}, shares([]int{1, 2, 3}, 8), "never more shares than targets")
	assert.Equal(t, [][]int{{0, 1}, {2, 3, 4}}, shares([]int{0, 1, 2, 3, 4}, 2))
}

// Volumes whose paths nest (a service's /data and /data/sub) never share a
// worker: the inner mount would show in the outer volume's snapshot.
func TestApart(t *testing.T) {
	targets := func(paths ...string) []discover.Target {
		var ts []discover.Target
		for _, p := range paths {
			ts = append(ts, volumeTarget(p))
		}
		return ts
	}
	assert.Equal(t, [][]int{{0, 1, 2}}, apart(targets("/volumes/app/data", "/volumes/app/config", "/volumes/app/data2")))
	assert.Equal(t, [][]int{{0, 2}, {1, 3}}, apart(targets("/volumes/app/data", "/volumes/app/data/sub", "/volumes/web/srv", "/volumes/web/srv/www")))
	assert.Equal(t, [][]int{{0}, {1}, {2}}, apart(targets("/volumes/a", "/volumes/a/b", "/volumes/a/b/c")))
}
