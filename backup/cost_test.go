package backup_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/testbed"
)

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

// A process checks a restic binary once: a second Open of the same file
// runs no `restic version`, nor does an Open told the version; an
// unsupported version given is refused.
func TestResticVersionOncePerBinary(t *testing.T) {
	ctx := context.Background()
	bin, calls := countingRestic(t)
	env := map[string]string{"RESTIC_PASSWORD": "pw"}
	repoDir := filepath.Join(t.TempDir(), "repo")
	r, err := backup.Open(ctx, repoDir, backup.Options{Restic: bin, Env: env})
	require.NoError(t, err)
	assert.Equal(t, "0.19.1", r.Version)
	v, err := backup.ResticVersion(ctx, bin)
	require.NoError(t, err)
	assert.Equal(t, "0.19.1", v)
	_, err = backup.Open(ctx, repoDir, backup.Options{Restic: bin, Env: env})
	require.NoError(t, err)
	assert.Equal(t, []string{"version"}, calls(), "one `restic version` for three checks of one file")

	// The file changed (an upgrade under a running daemon): checked again.
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(bin, later, later))
	_, err = backup.Open(ctx, repoDir, backup.Options{Restic: bin, Env: env})
	require.NoError(t, err)
	assert.Equal(t, []string{"version", "version"}, calls())

	other, otherCalls := countingRestic(t)
	r, err = backup.Open(ctx, repoDir, backup.Options{Restic: other, Env: env, ResticVersion: "0.19.1"})
	require.NoError(t, err)
	assert.Equal(t, "0.19.1", r.Version)
	assert.Empty(t, otherCalls(), "a version the caller checked is not checked again")
	_, err = backup.Open(ctx, repoDir, backup.Options{Restic: other, Env: env, ResticVersion: "0.16.4"})
	require.ErrorIs(t, err, backup.ErrUnsupportedRestic)
}

// EnsureRepoWith SkipOpen opens the repository with restic only when its
// config file is missing: an existing repository costs no restic process
// (local: a stat; S3: the bucket checks and a HEAD request), a missing one
// is still initialised exclusively and verified, and a wrong password is
// then found by the next restic command — never by an init.
func TestEnsureRepoSkipOpen(t *testing.T) {
	ctx := context.Background()
	bucket := newBucketName("skipopen")
	s3.MakeBucket(t, bucket)
	for name, url := range map[string]string{"local": filepath.Join(t.TempDir(), "repo"), "s3": s3.RepoURL(bucket, "repo")} {
		t.Run(name, func(t *testing.T) {
			bin, calls := countingRestic(t)
			r := openRepo(t, url, backup.Options{Restic: bin, Env: rootEnv("skip-open-pass")})
			res, err := r.EnsureRepoWith(ctx, backup.EnsureOptions{SkipOpen: true})
			require.NoError(t, err)
			assert.True(t, res.Initialized)
			assert.True(t, res.Opened)
			assert.Equal(t, []string{"version", "init"}, calls(),
				"a missing repository: the storage says the config file is absent, before and under the init locks, and the one key file after init proves no one else initialised it")

			res, err = r.EnsureRepoWith(ctx, backup.EnsureOptions{SkipOpen: true})
			require.NoError(t, err)
			assert.False(t, res.Initialized)
			assert.False(t, res.Opened)
			assert.Len(t, calls(), 2, "an existing repository: no restic process")
			require.NoError(t, r.VerifyPassword(ctx))

			wrong := openRepo(t, url, backup.Options{Restic: bin, Env: rootEnv("not-the-password")})
			res, err = wrong.EnsureRepoWith(ctx, backup.EnsureOptions{SkipOpen: true})
			require.NoError(t, err, "the password is not checked")
			assert.False(t, res.Opened)
			err = wrong.VerifyPassword(ctx)
			require.ErrorIs(t, err, backup.ErrWrongPassword)
			assert.Contains(t, err.Error(), "never re-initialise")
			_, err = wrong.Snapshots(ctx, backup.Filter{})
			require.ErrorIs(t, err, backup.ErrWrongPassword, "the next command finds it")
			assert.Contains(t, wrong.OpenError(err).Error(), "RESTIC_PASSWORD does not open it")
			assert.NotContains(t, calls()[2:], "init", "a wrong password never initialises")
		})
	}
}

// Retention of several targets in one call: the policy applies to the
// selected groups only — a group left out (a target whose backup failed,
// here with a newer partial snapshot) keeps every snapshot — and costs one
// restic process when nothing is removed, two when something is. A policy
// that would empty a selected group removes nothing.
func TestForgetSelectedGroups(t *testing.T) {
	ctx := context.Background()
	bin, calls := countingRestic(t)
	r := openRepo(t, filepath.Join(t.TempDir(), "repo"), backup.Options{Restic: bin, Env: map[string]string{"RESTIC_PASSWORD": "pw-select"}})
	_, err := r.EnsureRepo(ctx)
	require.NoError(t, err)
	tags := []string{"project=p", "service=app", "kind=volume"}
	now := time.Now()
	for i := range 3 {
		for _, p := range []string{"/volumes/app/data", "/volumes/app/config", "/volumes/app/failed"} {
			_, err := r.BackupStream(ctx, p, []string{"echo", p}, backup.BackupOptions{Tags: tags, Time: now.Add(time.Duration(i-3) * time.Hour)})
			require.NoError(t, err)
		}
	}
	_, err = r.BackupStream(ctx, "/volumes/other/x", []string{"echo", "x"}, backup.BackupOptions{Tags: []string{"service=other"}, Time: now.Add(-time.Hour)})
	require.NoError(t, err)
	count := func(path string) int {
		snaps, err := r.Snapshots(ctx, backup.Filter{Paths: []string{path}})
		require.NoError(t, err)
		return len(snaps)
	}
	succeeded := func(g backup.ForgetGroup) bool {
		return len(g.Paths) == 1 && (g.Paths[0] == "/volumes/app/data" || g.Paths[0] == "/volumes/app/config")
	}

	before := len(calls())
	res, err := r.Forget(ctx, backup.DefaultPolicy(), backup.ForgetOptions{Select: succeeded})
	require.NoError(t, err)
	assert.Equal(t, []string{"forget"}, calls()[before:], "nothing to remove: one restic process")
	assert.Len(t, res.Groups, 2)
	assert.Len(t, res.Others, 2, "the other groups are reported, untouched")
	assert.Equal(t, 6, res.Kept)
	assert.Zero(t, res.Removed)

	before = len(calls())
	res, err = r.Forget(ctx, backup.Policy{Last: 1}, backup.ForgetOptions{Select: succeeded})
	require.NoError(t, err)
	assert.Equal(t, []string{"forget", "forget"}, calls()[before:], "a dry run, then the removal")
	assert.Equal(t, 4, res.Removed)
	assert.Equal(t, 1, count("/volumes/app/data"))
	assert.Equal(t, 1, count("/volumes/app/config"))
	assert.Equal(t, 3, count("/volumes/app/failed"), "a group not selected keeps every snapshot")
	assert.Equal(t, 1, count("/volumes/other/x"))

	before = len(calls())
	_, err = r.Forget(ctx, backup.Policy{Tags: []string{"no-snapshot-has-this-tag"}}, backup.ForgetOptions{Select: succeeded})
	require.ErrorIs(t, err, backup.ErrPolicyRemovesAll)
	assert.Equal(t, []string{"forget"}, calls()[before:])
	assert.Equal(t, 3, count("/volumes/app/failed"))
	assert.Equal(t, 1, count("/volumes/app/data"), "nothing removed")
}

// Without Select, Forget is one restic process, removal and prune
// included; restic's own guard refuses, before it removes anything, a
// policy that would empty any group.
func TestForgetOneCall(t *testing.T) {
	ctx := context.Background()
	bin, calls := countingRestic(t)
	r := openRepo(t, filepath.Join(t.TempDir(), "repo"), backup.Options{Restic: bin, Env: map[string]string{"RESTIC_PASSWORD": "pw-one"}})
	_, err := r.EnsureRepo(ctx)
	require.NoError(t, err)
	now := time.Now()
	for i := range 3 {
		for _, tag := range []string{"service=a", "service=b"} {
			_, err := r.BackupStream(ctx, "/x", []string{"echo", "x"}, backup.BackupOptions{Tags: []string{tag}, Time: now.Add(time.Duration(i-3) * time.Hour)})
			require.NoError(t, err)
		}
	}
	_, err = r.BackupStream(ctx, "/x", []string{"echo", "x"}, backup.BackupOptions{Tags: []string{"service=b", "keep"}, Time: now})
	require.NoError(t, err)
	all := func() int {
		snaps, err := r.Snapshots(ctx, backup.Filter{})
		require.NoError(t, err)
		return len(snaps)
	}

	before := len(calls())
	_, err = r.Forget(ctx, backup.Policy{Tags: []string{"keep"}}, backup.ForgetOptions{})
	require.ErrorIs(t, err, backup.ErrPolicyRemovesAll)
	assert.Equal(t, []string{"forget"}, calls()[before:])
	assert.Equal(t, 7, all(), "nothing removed, not even from the group the policy would only thin")

	before = len(calls())
	res, err := r.Forget(ctx, backup.Policy{Last: 1}, backup.ForgetOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"forget"}, calls()[before:])
	assert.Equal(t, 4, res.Removed)
	assert.Equal(t, 3, res.Kept)
	assert.Len(t, res.Groups, 3)
	assert.Equal(t, 3, all())
	require.NoError(t, r.Check(ctx, backup.CheckOptions{}), "pruned in the same call, the repository is sound")
}

// After init, a repository holding more than one key file (another
// initialiser, not using platback's locks, raced this one) is opened by
// restic, as before: when the other initialiser's config file won, the
// race is reported (ErrInitRace), not a wrong password later; when ours
// won, the repository is ready.
func TestEnsureRepoInitRaceFoundByKeyFiles(t *testing.T) {
	ctx := context.Background()
	restic := testbed.Tool(t, "restic")
	other := filepath.Join(t.TempDir(), "other")
	cmd := exec.Command(restic, "init", "-r", other)
	cmd.Env = append(os.Environ(), "RESTIC_PASSWORD=the-other-initialisers-password")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	otherKeys, err := os.ReadDir(filepath.Join(other, "keys"))
	require.NoError(t, err)
	require.Len(t, otherKeys, 1)

	for _, tc := range []struct {
		name       string
		otherWins  bool // the other initialiser's config replaced ours
		wantErr    error
		wantOpened bool
	}{
		{name: "our config won", wantOpened: true},
		{name: "the other config won", otherWins: true, wantErr: backup.ErrInitRace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			// restic behind a script that, right after a successful init,
			// writes the other initialiser's key (and config) into repo.
			dir := t.TempDir()
			log := filepath.Join(dir, "calls.log")
			after := "cp '" + filepath.Join(other, "keys", otherKeys[0].Name()) + "' '" + filepath.Join(repo, "keys") + "/'"
			if tc.otherWins {
				after += " && cp '" + filepath.Join(other, "config") + "' '" + filepath.Join(repo, "config") + "'"
			}
			bin := filepath.Join(dir, "restic")
			script := "#!/bin/sh\necho \"$1\" >> '" + log + "'\n'" + restic + "' \"$@\" || exit $?\n" +
				"if [ \"$1\" = init ]; then " + after + "; fi\n"
			require.NoError(t, os.WriteFile(bin, []byte(script), 0o755))

			r := openRepo(t, repo, backup.Options{Restic: bin, Env: rootEnv("race-by-keys-pass")})
			res, err := r.EnsureRepoWith(ctx, backup.EnsureOptions{SkipOpen: true})
			calls, rerr := os.ReadFile(log)
			require.NoError(t, rerr)
			assert.Equal(t, []string{"version", "init", "cat"}, strings.Fields(string(calls)), "two key files after init: restic opens the repository")
			assert.True(t, res.Initialized)
			assert.Equal(t, tc.wantOpened, res.Opened)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}
}

// Short-lived processes sharing a cache directory (each `sidecar run-once`)
// ask restic its version once per binary file: the answer is kept in the
// cache directory, and asked again when the file changed or the kept
// answer is not a supported version.
func TestResticVersionRememberedInCacheDir(t *testing.T) {
	ctx := context.Background()
	bin, calls := countingRestic(t)
	env := map[string]string{"RESTIC_PASSWORD": "pw"}
	repoDir := filepath.Join(t.TempDir(), "repo")
	cache := t.TempDir()
	backup.ForgetVersionChecks()
	open := func(cacheDir string) {
		t.Helper()
		backup.ForgetVersionChecks() // as a new process
		r, err := backup.Open(ctx, repoDir, backup.Options{Restic: bin, Env: env, CacheDir: cacheDir})
		require.NoError(t, err)
		assert.Equal(t, "0.19.1", r.Version)
	}
	_, err := backup.ResticVersion(ctx, bin) // a check without a cache directory (a daemon's start-up)
	require.NoError(t, err)
	r, err := backup.Open(ctx, repoDir, backup.Options{Restic: bin, Env: env, CacheDir: cache})
	require.NoError(t, err)
	assert.Equal(t, "0.19.1", r.Version)
	assert.Equal(t, []string{"version"}, calls())
	open(cache)
	open(cache)
	assert.Equal(t, []string{"version"}, calls(), "a later process with the same cache runs no `restic version`: the Open that found the version checked already wrote it there")
	open(t.TempDir())
	assert.Len(t, calls(), 2, "another cache directory knows nothing")

	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(bin, later, later))
	open(cache)
	open(cache)
	assert.Len(t, calls(), 3, "the binary changed: asked once again")

	file := filepath.Join(cache, "platback-restic-version.json")
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, []byte(strings.Replace(string(b), "0.19.1", "0.16.4", 1)), 0o600))
	open(cache)
	assert.Len(t, calls(), 4, "a kept answer that is not a supported version is not trusted")
}
