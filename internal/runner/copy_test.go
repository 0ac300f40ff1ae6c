package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/testbed"
)

// copyTarget takes the copy's variables out of the run's credentials (the
// primary's restic and the workers never get them), falls back to the
// primary's password, prefers COPY_REPOSITORY over the Vault field, and
// turns a bad copy into the copy's error, not the run's.
func TestCopyTarget(t *testing.T) {
	self := &container.InspectResponse{Mounts: []container.MountPoint{
		{Type: mount.TypeVolume, Name: "proj_copy", Destination: "/copy", RW: true},
	}}
	const primary = "s3:https://minio.internal/app"
	creds := func(kv map[string]string) map[string]string {
		env := map[string]string{"RESTIC_PASSWORD": "primary-pw", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
		for k, v := range kv {
			env[k] = v
		}
		return env
	}
	tests := []struct {
		name      string
		setting   string // COPY_REPOSITORY
		env       map[string]string
		self      *container.InspectResponse
		url, pass string
		err       string
	}{
		{name: "no copy", env: creds(nil)},
		{name: "the primary's password", setting: "s3:https://offsite/app", env: creds(nil), url: "s3:https://offsite/app", pass: "primary-pw"},
		{name: "its own password", setting: "s3:https://offsite/app", env: creds(map[string]string{"COPY_RESTIC_PASSWORD": "copy-pw"}), url: "s3:https://offsite/app", pass: "copy-pw"},
		{name: "from Vault", env: creds(map[string]string{"COPY_REPOSITORY": "s3:https://offsite/vault-copy", "COPY_RESTIC_PASSWORD": "copy-pw"}), url: "s3:https://offsite/vault-copy", pass: "copy-pw"},
		{name: "the variable wins over Vault", setting: "s3:https://offsite/app", env: creds(map[string]string{"COPY_REPOSITORY": "s3:https://offsite/vault-copy"}), url: "s3:https://offsite/app", pass: "primary-pw"},
		{name: "Vault gives the primary itself", env: creds(map[string]string{"COPY_REPOSITORY": primary + "/"}), url: primary + "/", pass: "primary-pw", err: "is the primary repository itself"},
		{name: "Vault gives a bad URL", env: creds(map[string]string{"COPY_REPOSITORY": "s3:https://offsite/"}), url: "s3:https://offsite/", pass: "primary-pw", err: "COPY_REPOSITORY (from the credentials)"},
		{name: "a local path on a mount", setting: "/copy/repo", env: creds(nil), self: self, url: "/copy/repo", pass: "primary-pw"},
		{name: "a local path on no mount", setting: "/elsewhere", env: creds(nil), self: self, url: "/elsewhere", pass: "primary-pw", err: "COPY_REPOSITORY=/elsewhere is a local path on no volume or bind mount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn := &Runner{Config: config.Config{CopyRepository: tt.setting}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			env := tt.env
			c := rn.copyTarget(env, primary, tt.self)
			assert.NotContains(t, env, "COPY_REPOSITORY", "taken out of the primary's environment")
			assert.NotContains(t, env, "COPY_RESTIC_PASSWORD", "taken out of the primary's environment")
			assert.Equal(t, "primary-pw", env["RESTIC_PASSWORD"], "the primary's own password is untouched")
			assert.Equal(t, tt.url, c.url)
			if tt.url == "" {
				assert.Nil(t, c.env)
				return
			}
			assert.Equal(t, tt.pass, c.env["RESTIC_PASSWORD"])
			assert.Equal(t, "AK", c.env["AWS_ACCESS_KEY_ID"], "the primary's S3 keys")
			if tt.err != "" {
				require.Error(t, c.err)
				assert.Contains(t, c.err.Error(), tt.err)
				return
			}
			assert.NoError(t, c.err)
		})
	}
}

// The copy with the real restic and two local repositories: it copies
// every snapshot of the host the second repository lacks; with
// RETENTION_CRON it leaves retention to CopyRetention, which applies the
// copy's own policy to the given targets' groups only; without, the copy's
// retention after it touches only the run's succeeded targets. The primary
// is never pruned by either.
func TestCopySnapshotsAndRetention(t *testing.T) {
	ctx := context.Background()
	restic := testbed.Tool(t, "restic")
	primary, err := backup.Open(ctx, filepath.Join(t.TempDir(), "primary"), backup.Options{Restic: restic,
		Env: map[string]string{"RESTIC_PASSWORD": "primary-pw"}, Host: "stack", CacheDir: t.TempDir()})
	require.NoError(t, err)
	_, err = primary.EnsureRepo(ctx)
	require.NoError(t, err)
	tags := []string{"project=stack", "service=app", "kind=volume"}
	data := discover.Target{Kind: discover.KindVolume, Path: "/volumes/app/data", Tags: tags}
	conf := discover.Target{Kind: discover.KindVolume, Path: "/volumes/app/config", Tags: tags}
	now := time.Now()
	for i := range 3 {
		for _, tg := range []discover.Target{data, conf} {
			_, err := primary.BackupStream(ctx, tg.Path, []string{"echo", tg.Path, fmt.Sprint(i)}, backup.BackupOptions{Tags: tg.Tags, Time: now.Add(time.Duration(i-4) * time.Hour)})
			require.NoError(t, err)
		}
	}
	copyDir := filepath.Join(t.TempDir(), "copy")
	s := &Session{Repo: primary, Host: "stack", owners: "platback-run:test:", copy: secondCopy{url: copyDir, env: map[string]string{"RESTIC_PASSWORD": "copy-pw"}}}
	rn := &Runner{Restic: restic, Config: config.Config{RetentionCron: "@daily", CopyPolicy: backup.Policy{Last: 1}, BackupTimeout: time.Minute, CacheDir: t.TempDir()},
		Log: slog.New(slog.DiscardHandler)}
	second, err := backup.Open(ctx, copyDir, backup.Options{Restic: restic, Env: map[string]string{"RESTIC_PASSWORD": "copy-pw"}, CacheDir: t.TempDir()})
	require.NoError(t, err)
	count := func(r *backup.Repo, path string) int {
		snaps, err := r.Snapshots(ctx, backup.Filter{Host: "stack", Paths: []string{path}})
		require.NoError(t, err)
		return len(snaps)
	}

	cr := rn.copySnapshots(ctx, s, []discover.Target{data, conf})
	require.NoError(t, cr.Err)
	assert.Equal(t, -1, cr.Snapshots, "RETENTION_CRON: no retention after the copy")
	assert.Equal(t, 3, count(second, data.Path))
	assert.Equal(t, 3, count(second, conf.Path))

	require.NoError(t, rn.CopyRetention(ctx, s, []discover.Target{data}))
	assert.Equal(t, 1, count(second, data.Path), "COPY_KEEP_LAST=1")
	assert.Equal(t, 3, count(second, conf.Path), "a target not given keeps its snapshots")
	assert.Equal(t, 3, count(primary, data.Path), "the primary is not pruned")

	_, err = primary.BackupStream(ctx, data.Path, []string{"echo", "new"}, backup.BackupOptions{Tags: tags})
	require.NoError(t, err)
	rn.Config.RetentionCron = ""
	cr = rn.copySnapshots(ctx, s, []discover.Target{data})
	require.NoError(t, cr.Err)
	assert.Equal(t, 1, count(second, data.Path), "the new snapshot copied, the older one forgotten")
	assert.Equal(t, 4, cr.Snapshots, "1 of data and 3 of config remain in the copy")
	assert.Equal(t, 3, count(second, conf.Path), "retention after the copy touches the run's targets only")

	s.copy.env = map[string]string{"RESTIC_PASSWORD": "not-the-copy-pw"}
	cr = rn.copySnapshots(ctx, s, []discover.Target{data})
	require.Error(t, cr.Err)
	assert.ErrorIs(t, cr.Err, backup.ErrWrongPassword)
	assert.Contains(t, cr.Err.Error(), "COPY_RESTIC_PASSWORD or its Vault field")
	assert.NotContains(t, cr.Err.Error(), "not-the-copy-pw")
}
