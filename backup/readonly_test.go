package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
)

// SnapshotsNoLock reads a repository where no lock can be written (its
// locks directory replaced by a file), which Snapshots cannot: it takes a
// lock. S3Client exists for S3 repositories only.
func TestSnapshotsNoLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	repo := openRepo(t, filepath.Join(dir, "repo"), backup.Options{Env: map[string]string{"RESTIC_PASSWORD": "no-lock-pass"},
		Timeouts: backup.Timeouts{Snapshot: 3 * time.Second}, RetryLock: time.Second})
	_, err := repo.EnsureRepo(ctx)
	require.NoError(t, err)
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(data, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(data, "f"), []byte("x"), 0o644))
	sum, err := repo.Backup(ctx, []string{data}, backup.BackupOptions{})
	require.NoError(t, err)

	locks := filepath.Join(dir, "repo", "locks")
	require.NoError(t, os.RemoveAll(locks))
	require.NoError(t, os.WriteFile(locks, []byte("no lock here"), 0o644))
	snaps, err := repo.SnapshotsNoLock(ctx, backup.Filter{Host: "test-host", Paths: []string{data}})
	require.NoError(t, err)
	require.Len(t, snaps, 1)
	assert.Equal(t, sum.SnapshotID, snaps[0].ID)
	_, err = repo.Snapshots(ctx, backup.Filter{Host: "test-host"})
	assert.Error(t, err, "Snapshots locks the repository")

	_, err = repo.S3Client()
	assert.ErrorContains(t, err, "is not on S3")
	c, err := openRepo(t, s3.RepoURL("any-bucket", "p"), backup.Options{Env: rootEnv("pw")}).S3Client()
	require.NoError(t, err)
	assert.Equal(t, s3.Endpoint, c.EndpointURL().Host)
}
