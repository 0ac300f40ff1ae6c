package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/testbed"
)

// repoURLs are the two repository kinds every round trip runs on.
func repoURLs(t *testing.T) map[string]string {
	bucket := newBucketName("roundtrip")
	s3.MakeBucket(t, bucket)
	return map[string]string{
		"local": filepath.Join(t.TempDir(), "repo"),
		"s3":    s3.RepoURL(bucket, "restic"),
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	for kind, url := range repoURLs(t) {
		t.Run(kind, func(t *testing.T) {
			var logs logBuffer
			r := openRepo(t, url, backup.Options{Env: rootEnv("round-trip-pass"), Tags: []string{"project=test"},
				ProgressEvery: time.Millisecond, Logger: logs.logger()})
			_, err := r.EnsureRepo(ctx)
			require.NoError(t, err)

			src := t.TempDir()
			testbed.MakeTree(t, src, 50<<20)
			first, err := r.Backup(ctx, []string{src}, backup.BackupOptions{Tags: []string{"kind=volume"}})
			require.NoError(t, err)
			assert.Len(t, first.SnapshotID, 64)
			assert.Equal(t, uint64(5), first.FilesNew)
			assert.Greater(t, first.TotalBytes, uint64(50<<20))
			assert.Greater(t, first.DataAdded, uint64(50<<20))
			assert.Contains(t, logs.String(), "backup progress")

			// Unchanged data: restic finds the parent (stable host, same paths).
			second, err := r.Backup(ctx, []string{src}, backup.BackupOptions{Tags: []string{"kind=volume"}})
			require.NoError(t, err)
			assert.Zero(t, second.FilesNew)
			assert.Zero(t, second.FilesChanged)
			assert.Equal(t, uint64(5), second.FilesUnmodified)
			assert.Less(t, second.DataAdded, uint64(1<<20))

			snaps, err := r.Snapshots(ctx, backup.Filter{Host: "test-host", Tags: []string{"project=test", "kind=volume"}})
			require.NoError(t, err)
			require.Len(t, snaps, 2)
			assert.Equal(t, first.SnapshotID, snaps[1].Parent)
			assert.ElementsMatch(t, []string{"kind=volume", "project=test"}, snaps[1].Tags)

			target := t.TempDir()
			sum, err := r.Restore(ctx, "latest", target, backup.RestoreOptions{Filter: backup.Filter{Tags: []string{"kind=volume"}}, Verify: true})
			require.NoError(t, err)
			assert.GreaterOrEqual(t, sum.FilesRestored, uint64(5), "files, dirs and links")
			assert.Equal(t, testbed.TreeDigest(t, src), testbed.TreeDigest(t, filepath.Join(target, src)))

			require.NoError(t, r.Check(ctx, backup.CheckOptions{ReadDataSubset: "10%"}))
			require.NoError(t, r.Unlock(ctx))
		})
	}
}

func TestBackupPartialIsReported(t *testing.T) {
	ctx := context.Background()
	r := openRepo(t, filepath.Join(t.TempDir(), "repo"), backup.Options{Env: map[string]string{"RESTIC_PASSWORD": "pw-partial"}})
	_, err := r.EnsureRepo(ctx)
	require.NoError(t, err)
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o600))
	s, err := r.Backup(ctx, []string{src, filepath.Join(src, "vanished")}, backup.BackupOptions{})
	require.ErrorIs(t, err, backup.ErrPartialBackup)
	assert.Contains(t, err.Error(), "vanished")
	assert.NotEmpty(t, s.SnapshotID, "the partial snapshot exists and is said so")
}

func TestBackupStream(t *testing.T) {
	ctx := context.Background()
	for kind, url := range repoURLs(t) {
		t.Run(kind, func(t *testing.T) {
			r := openRepo(t, url, backup.Options{Env: rootEnv("stream-pass")})
			_, err := r.EnsureRepo(ctx)
			require.NoError(t, err)

			// A 20 MB "dump" produced by a real command.
			producer := []string{"sh", "-c", "i=0; while [ $i -lt 200000 ]; do echo \"INSERT INTO t VALUES ($i, 'row $i padding padding padding padding padding padding padding');\"; i=$((i+1)); done"}
			want, err := exec.Command(producer[0], producer[1:]...).Output()
			require.NoError(t, err)
			s, err := r.BackupStream(ctx, "/databases/db/all.sql", producer, backup.BackupOptions{Tags: []string{"kind=postgres"}})
			require.NoError(t, err)
			assert.Equal(t, uint64(len(want)), s.TotalBytes)

			var got bytes.Buffer
			require.NoError(t, r.Dump(ctx, s.SnapshotID, "/databases/db/all.sql", backup.Filter{}, &got))
			assert.Equal(t, sha256.Sum256(want), sha256.Sum256(got.Bytes()), "dump round trip is byte-identical")

			t.Run("failing producer leaves no snapshot", func(t *testing.T) {
				before, err := r.Snapshots(ctx, backup.Filter{})
				require.NoError(t, err)
				// The producer's error goes to stderr and to $PLATBACK_STREAM_STDERR,
				// which restic cannot lose.
				failing := []string{"sh", "-c", "echo 'CREATE TABLE half'; echo 'pg_dumpall: error: connection to server failed: FATAL: role \"x\" does not exist' | tee -a \"$" + backup.StreamStderrEnv + "\" >&2; exit 2"}
				_, err = r.BackupStream(ctx, "/databases/db/all.sql", failing, backup.BackupOptions{Tags: []string{"kind=postgres"}})
				require.Error(t, err)
				assert.Contains(t, err.Error(), `role "x" does not exist`, "the producer's stderr tail is in the error")
				assert.Contains(t, err.Error(), "exit status 2")
				after, err := r.Snapshots(ctx, backup.Filter{})
				require.NoError(t, err)
				assert.Equal(t, len(before), len(after), "no snapshot kept from a failed dump")
			})
		})
	}
}

func TestCancelStopsRestic(t *testing.T) {
	r := openRepo(t, filepath.Join(t.TempDir(), "repo"), backup.Options{Env: map[string]string{"RESTIC_PASSWORD": "pw-cancel"}, KillAfter: 5 * time.Second})
	_, err := r.EnsureRepo(context.Background())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	// A producer that never ends: only cancellation stops this backup.
	done := make(chan error, 1)
	go func() {
		_, err := r.BackupStream(ctx, "/endless.bin", []string{"sh", "-c", "while :; do echo data; sleep 0.1; done"}, backup.BackupOptions{})
		done <- err
	}()
	time.Sleep(2 * time.Second)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, backup.ErrInterrupted)
		assert.Less(t, time.Since(start), 6*time.Second)
	case <-time.After(15 * time.Second):
		t.Fatal("backup did not stop after cancel")
	}
	snaps, err := r.Snapshots(context.Background(), backup.Filter{})
	require.NoError(t, err)
	assert.Empty(t, snaps, "an interrupted stream leaves no snapshot")
}

// restic runs the producer of a stream backup as its child, so the producer
// can read restic's own command line and environment: what every local
// user could see of it (its arguments) must hold no secret.
func TestSecretsNotInResticArguments(t *testing.T) {
	ctx := context.Background()
	bucket := newBucketName("args")
	s3.MakeBucket(t, bucket)
	var logs logBuffer
	r := openRepo(t, s3.RepoURL(bucket, ""), backup.Options{Env: rootEnv("argument-password-4711"), Logger: logs.logger()})
	_, err := r.EnsureRepo(ctx)
	require.NoError(t, err)
	s, err := r.BackupStream(ctx, "/cmdline", []string{"sh", "-c", "tr '\\0' ' ' < /proc/$PPID/cmdline"}, backup.BackupOptions{})
	require.NoError(t, err)
	var cmdline bytes.Buffer
	require.NoError(t, r.Dump(ctx, s.SnapshotID, "/cmdline", backup.Filter{}, &cmdline))
	assert.Contains(t, cmdline.String(), "backup --json")
	assertNoSecrets(t, cmdline.String()+logs.String(), "argument-password-4711", s3.SecretKey, s3.AccessKey)
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	r := openRepo(t, filepath.Join(t.TempDir(), "repo"), backup.Options{Env: map[string]string{"RESTIC_PASSWORD": "pw-forget"}})
	_, err := r.EnsureRepo(ctx)
	require.NoError(t, err)
	src := t.TempDir()
	day := time.Date(2026, 11, 1, 2, 0, 0, 0, time.Local)
	// Ten daily snapshots of two targets.
	for i := range 10 {
		require.NoError(t, os.WriteFile(filepath.Join(src, "f"), []byte(strings.Repeat("x", i)), 0o600))
		for _, target := range []string{"service=app", "service=db"} {
			_, err := r.Backup(ctx, []string{src}, backup.BackupOptions{Tags: []string{target}, Time: day.AddDate(0, 0, i)})
			require.NoError(t, err)
		}
	}
	count := func(tag string) int {
		snaps, err := r.Snapshots(ctx, backup.Filter{Tags: []string{tag}})
		require.NoError(t, err)
		return len(snaps)
	}

	t.Run("keep-last 3 per target", func(t *testing.T) {
		res, err := r.Forget(ctx, backup.Policy{Last: 3}, backup.ForgetOptions{Filter: backup.Filter{Tags: []string{"service=app"}}})
		require.NoError(t, err)
		assert.Equal(t, 3, res.Kept)
		assert.Equal(t, 7, res.Removed)
		assert.Equal(t, 3, count("service=app"))
		assert.Equal(t, 10, count("service=db"), "the other target is untouched")
	})
	t.Run("keep-within counts from the newest snapshot", func(t *testing.T) {
		res, err := r.Forget(ctx, backup.Policy{Within: "5d"}, backup.ForgetOptions{Filter: backup.Filter{Tags: []string{"service=db"}}})
		require.NoError(t, err)
		assert.Equal(t, 5, res.Kept)
		assert.Equal(t, 5, count("service=db"))
	})
	t.Run("a policy that removes every snapshot of a group is refused", func(t *testing.T) {
		_, err := r.Forget(ctx, backup.Policy{Tags: []string{"no-snapshot-has-this-tag"}}, backup.ForgetOptions{})
		require.ErrorIs(t, err, backup.ErrPolicyRemovesAll)
		assert.Equal(t, 3, count("service=app"), "nothing removed")
		assert.Equal(t, 5, count("service=db"), "nothing removed")
	})
	t.Run("empty policy is refused before restic runs", func(t *testing.T) {
		_, err := r.Forget(ctx, backup.Policy{}, backup.ForgetOptions{})
		require.ErrorContains(t, err, "keeps nothing")
	})
	require.NoError(t, r.Check(ctx, backup.CheckOptions{}))
}

// Two volumes of one service (and two replicas of one service) carry the
// same tags; only their paths differ. Each must be its own retention group.
func TestRetentionGroupsByPath(t *testing.T) {
	ctx := context.Background()
	r := openRepo(t, filepath.Join(t.TempDir(), "repo"), backup.Options{Env: map[string]string{"RESTIC_PASSWORD": "pw-groups"}})
	_, err := r.EnsureRepo(ctx)
	require.NoError(t, err)
	tags := []string{"project=p", "service=app", "kind=volume"}
	now := time.Now()
	snapshot := func(path string, at time.Time) {
		_, err := r.BackupStream(ctx, path, []string{"echo", path}, backup.BackupOptions{Tags: tags, Time: at})
		require.NoError(t, err)
	}
	// /volumes/app/old failed for 40 days: its last good snapshots are old.
	snapshot("/volumes/app/old", now.AddDate(0, 0, -42))
	snapshot("/volumes/app/old", now.AddDate(0, 0, -41))
	for i := range 3 {
		snapshot("/volumes/app/data", now.Add(time.Duration(i-3)*time.Hour))
		snapshot("/volumes/app/config", now.Add(time.Duration(i-3)*time.Hour))
	}
	count := func(path string) int {
		snaps, err := r.Snapshots(ctx, backup.Filter{Paths: []string{path}})
		require.NoError(t, err)
		return len(snaps)
	}

	res, err := r.Forget(ctx, backup.DefaultPolicy(), backup.ForgetOptions{Filter: backup.Filter{Tags: tags}})
	require.NoError(t, err)
	assert.Len(t, res.Groups, 3, "one group per path")
	assert.Equal(t, 2, count("/volumes/app/old"), "keep-within counts from each path's own newest snapshot")

	_, err = r.Forget(ctx, backup.Policy{Last: 1}, backup.ForgetOptions{Filter: backup.Filter{Tags: tags}})
	require.NoError(t, err)
	for _, p := range []string{"/volumes/app/old", "/volumes/app/data", "/volumes/app/config"} {
		assert.Equal(t, 1, count(p), "keep-last 1 keeps one snapshot of %s", p)
	}
}

// A restic process killed while it held a lock leaves the lock behind;
// RemoveLocksOf removes exactly the locks of its owner, never another's.
func TestRemoveLocksOfAKilledProcess(t *testing.T) {
	ctx := context.Background()
	bucket := newBucketName("locks")
	s3.MakeBucket(t, bucket)
	for kind, url := range map[string]string{"local": filepath.Join(t.TempDir(), "repo"), "s3": s3.RepoURL(bucket, "app")} {
		t.Run(kind, func(t *testing.T) {
			env := rootEnv("locks-pass")
			restic := passwdlessRestic(t)
			mine := openRepo(t, url, backup.Options{Env: env, Restic: restic, Owner: "platback-run:p/backup/1:w-1"})
			other := openRepo(t, url, backup.Options{Env: env, Restic: restic, Owner: "platback-run:q/backup/1:w-1"})
			_, err := mine.EnsureRepo(ctx)
			require.NoError(t, err)

			// Two restic processes hold locks while reading stdin; both are killed.
			for i, r := range []*backup.Repo{mine, other} {
				ctx, cancel := context.WithCancel(ctx)
				started := make(chan struct{})
				go func() {
					_, _ = r.BackupStream(ctx, "/databases/db/all.sql", []string{"sh", "-c", "echo started; sleep 60"}, backup.BackupOptions{})
					close(started)
				}()
				require.Eventually(t, func() bool {
					locks, err := r.Locks(ctx)
					return err == nil && len(locks) == i+1
				}, time.Minute, 200*time.Millisecond, "process %d took its lock", i+1)
				killRestic(t)
				cancel()
				<-started
			}
			locks, err := mine.Locks(ctx)
			require.NoError(t, err)
			require.Len(t, locks, 2, "both killed processes left their lock")

			removed, err := mine.RemoveLocksOf(ctx, "platback-run:p/backup/1:w-1")
			require.NoError(t, err)
			require.Len(t, removed, 1)
			assert.Equal(t, "platback-run:p/backup/1:w-1", removed[0].Username)
			locks, err = mine.Locks(ctx)
			require.NoError(t, err)
			require.Len(t, locks, 1)
			assert.Equal(t, "platback-run:q/backup/1:w-1", locks[0].Username, "another owner's lock stays")
		})
	}
}

// passwdlessRestic is the pinned restic run where /etc/passwd is empty, as
// in the FROM-scratch sidecar image: restic then records $USER (Owner) as
// the user of its locks.
func passwdlessRestic(t *testing.T) string {
	t.Helper()
	if out, err := exec.Command("unshare", "-m", "sh", "-c", "mount --bind /dev/null /etc/passwd").CombinedOutput(); err != nil {
		t.Skipf("cannot hide /etc/passwd in a mount namespace here (%v: %s); the sidecar image test covers lock owners", err, out)
	}
	wrapper := filepath.Join(t.TempDir(), "restic")
	script := "#!/bin/sh\nexec unshare -m sh -c 'mount --bind /dev/null /etc/passwd && exec \"$0\" \"$@\"' " + testbed.Tool(t, "restic") + " \"$@\"\n"
	require.NoError(t, os.WriteFile(wrapper, []byte(script), 0o755))
	return wrapper
}

// killRestic SIGKILLs every restic process this test process started.
func killRestic(t *testing.T) {
	t.Helper()
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(os.Getpid()), "restic").Output()
	for _, pid := range strings.Fields(string(out)) {
		_ = exec.Command("kill", "-KILL", pid).Run()
	}
}
