package backup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/testbed"
)

// argvRestic is a restic that appends each command line it is given to a
// file, then runs the pinned restic: what every local user could read of
// the process.
func argvRestic(t *testing.T) (bin, argv string) {
	t.Helper()
	dir := t.TempDir()
	bin, argv = filepath.Join(dir, "restic"), filepath.Join(dir, "argv")
	script := "#!/bin/sh\necho \"$*\" >> " + argv + "\nexec " + testbed.Tool(t, "restic") + " \"$@\"\n"
	require.NoError(t, os.WriteFile(bin, []byte(script), 0o755))
	return bin, argv
}

// A second copy on another S3 server (a second MinIO, same S3 keys, its own
// password): the destination is initialised with the source's chunker
// parameters, the snapshots of two targets are copied with their trees,
// copying again copies nothing, a restore from the copy equals the source,
// retention on the copy keeps each target's group; with the second server
// stopped the copy fails within its deadline naming the destination; S3
// keys that differ are refused before restic runs; neither password is in
// restic's arguments, the logs or the errors.
func TestCopyToASecondS3Server(t *testing.T) {
	ctx := context.Background()
	second := testbed.StartMinIO(t)
	bin, argv := argvRestic(t)
	var logs logBuffer
	const srcPass, dstPass = "copy-source-pass-8812", "copy-second-pass-3377"

	bucket := newBucketName("copysrc")
	s3.MakeBucket(t, bucket)
	src := openRepo(t, s3.RepoURL(bucket, "restic"), backup.Options{Restic: bin, Env: rootEnv(srcPass),
		Tags: []string{"project=copy"}, Logger: logs.logger()})
	_, err := src.EnsureRepo(ctx)
	require.NoError(t, err)
	a, b := t.TempDir(), t.TempDir()
	testbed.MakeTree(t, a, 1<<20)
	testbed.MakeTree(t, b, 256<<10)
	for range 2 {
		for _, dir := range []string{a, b} {
			_, err := src.Backup(ctx, []string{dir}, backup.BackupOptions{Tags: []string{"kind=volume"}})
			require.NoError(t, err)
		}
	}

	require.Equal(t, s3.AccessKey, second.AccessKey, "the testbed's servers share the root keys")
	dstEnv := map[string]string{"RESTIC_PASSWORD": dstPass, "AWS_ACCESS_KEY_ID": second.AccessKey, "AWS_SECRET_ACCESS_KEY": second.SecretKey}
	dst := openRepo(t, second.RepoURL("second-copy", "restic"), backup.Options{Restic: bin, Env: dstEnv, CreateBucket: true,
		Logger: logs.logger(), Timeouts: backup.Timeouts{Backup: 2 * time.Minute}})
	ens, err := dst.EnsureRepoWith(ctx, backup.EnsureOptions{ChunkerFrom: src})
	require.NoError(t, err)
	assert.True(t, ens.BucketCreated)
	assert.True(t, ens.Initialized)

	start := time.Now()
	require.NoError(t, dst.CopyFrom(ctx, src, backup.CopyOptions{Filter: backup.Filter{Host: "test-host"}}))
	t.Logf("copy of 4 snapshots took %s", time.Since(start).Round(time.Millisecond))
	want, err := src.Snapshots(ctx, backup.Filter{})
	require.NoError(t, err)
	got, err := dst.Snapshots(ctx, backup.Filter{})
	require.NoError(t, err)
	require.Len(t, got, 4)
	trees := func(ss []backup.Snapshot) map[string][]string {
		m := map[string][]string{}
		for _, s := range ss {
			m[s.Paths[0]] = append(m[s.Paths[0]], s.Tree)
		}
		return m
	}
	assert.Equal(t, trees(want), trees(got), "the same trees, per target")
	for _, s := range got {
		assert.ElementsMatch(t, []string{"project=copy", "kind=volume"}, s.Tags)
		assert.Equal(t, "test-host", s.Hostname)
	}

	require.NoError(t, dst.CopyFrom(ctx, src, backup.CopyOptions{}))
	again, err := dst.Snapshots(ctx, backup.Filter{})
	require.NoError(t, err)
	assert.Len(t, again, 4, "copying again copies nothing")

	target := t.TempDir()
	_, err = dst.Restore(ctx, "latest", target, backup.RestoreOptions{Filter: backup.Filter{Paths: []string{a}}, Verify: true})
	require.NoError(t, err)
	assert.Equal(t, testbed.TreeDigest(t, a), testbed.TreeDigest(t, filepath.Join(target, a)))

	fr, err := dst.Forget(ctx, backup.Policy{Last: 1}, backup.ForgetOptions{Filter: backup.Filter{Host: "test-host"}})
	require.NoError(t, err)
	assert.Len(t, fr.Groups, 2, "a group per target")
	assert.Equal(t, 2, fr.Removed)
	left, err := dst.Snapshots(ctx, backup.Filter{})
	require.NoError(t, err)
	assert.Len(t, trees(left), 2, "each target keeps its latest")
	kept, err := src.Snapshots(ctx, backup.Filter{})
	require.NoError(t, err)
	assert.Len(t, kept, 4, "the copy's retention leaves the source alone")

	other := map[string]string{"RESTIC_PASSWORD": dstPass, "AWS_ACCESS_KEY_ID": "another-user", "AWS_SECRET_ACCESS_KEY": "another-secret"}
	odd := openRepo(t, second.RepoURL("second-copy", "restic"), backup.Options{Restic: bin, Env: other})
	err = odd.CopyFrom(ctx, src, backup.CopyOptions{})
	assert.ErrorIs(t, err, backup.ErrCopyCredentials)
	assert.ErrorContains(t, err, "AWS_ACCESS_KEY_ID differs")

	second.Stop()
	// restic retries an unreachable endpoint for many minutes: the run's
	// deadline (here 10 s) ends it.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start = time.Now()
	down := dst.CopyFrom(cctx, src, backup.CopyOptions{})
	t.Logf("copy to a stopped server failed after %s", time.Since(start).Round(time.Millisecond))
	require.Error(t, down)
	var rerr *backup.ResticError
	assert.True(t, errors.As(down, &rerr), "%v", down)
	assert.ErrorIs(t, down, backup.ErrInterrupted)
	assert.ErrorContains(t, down, "to "+second.RepoURL("second-copy", "restic")+": ")
	assert.ErrorContains(t, down, "connection refused")

	args, err := os.ReadFile(argv)
	require.NoError(t, err)
	assert.Contains(t, string(args), "copy ")
	assert.Contains(t, string(args), "init --json")
	assert.Contains(t, string(args), "--copy-chunker-params")
	assertNoSecrets(t, string(args)+logs.String()+down.Error(), srcPass, dstPass, s3.SecretKey)
}
