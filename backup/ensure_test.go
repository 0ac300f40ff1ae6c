package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/testbed"
)

// objects lists the object keys under prefix in bucket (root credentials).
func objects(t *testing.T, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	for o := range s3.Client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		require.NoError(t, o.Err)
		keys = append(keys, o.Key)
	}
	return keys
}

func TestEnsureRepoLocal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "repo")
	r := openRepo(t, dir, backup.Options{Env: map[string]string{"RESTIC_PASSWORD": "local-pass"}})
	ctx := context.Background()

	res, err := r.EnsureRepo(ctx)
	require.NoError(t, err)
	assert.True(t, res.Initialized)
	assert.FileExists(t, filepath.Join(dir, "config"))

	res, err = r.EnsureRepo(ctx)
	require.NoError(t, err)
	assert.False(t, res.Initialized, "second EnsureRepo must be a no-op")
	snaps, err := r.Snapshots(ctx, backup.Filter{})
	require.NoError(t, err)
	assert.Empty(t, snaps)
}

func TestEnsureRepoS3(t *testing.T) {
	ctx := context.Background()
	t.Run("empty bucket", func(t *testing.T) {
		bucket := newBucketName("empty")
		s3.MakeBucket(t, bucket)
		r := openRepo(t, s3.RepoURL(bucket, "app/repo"), backup.Options{Env: rootEnv("pw-empty")})
		res, err := r.EnsureRepo(ctx)
		require.NoError(t, err)
		assert.Equal(t, backup.EnsureResult{Initialized: true, Opened: true}, res)
		assert.Contains(t, objects(t, bucket, ""), "app/repo/config")
		assert.NotContains(t, objects(t, bucket, ""), "app/repo/platback-init.lock", "the init lock is removed")

		res, err = r.EnsureRepo(ctx)
		require.NoError(t, err)
		assert.Equal(t, backup.EnsureResult{Opened: true}, res, "second EnsureRepo is a no-op")
	})
	t.Run("missing bucket, creation allowed", func(t *testing.T) {
		bucket := newBucketName("create")
		r := openRepo(t, s3.RepoURL(bucket, ""), backup.Options{Env: rootEnv("pw-create"), CreateBucket: true})
		res, err := r.EnsureRepo(ctx)
		require.NoError(t, err)
		assert.Equal(t, backup.EnsureResult{BucketCreated: true, Initialized: true, Opened: true}, res)
		assert.Contains(t, objects(t, bucket, ""), "config")
	})
	t.Run("missing bucket, creation not allowed", func(t *testing.T) {
		bucket := newBucketName("nocreate")
		r := openRepo(t, s3.RepoURL(bucket, ""), backup.Options{Env: rootEnv("pw")})
		_, err := r.EnsureRepo(ctx)
		require.ErrorIs(t, err, backup.ErrBucketMissing)
		assert.Contains(t, err.Error(), bucket)
		exists, err := s3.Client.BucketExists(ctx, bucket)
		require.NoError(t, err)
		assert.False(t, exists)
	})
	t.Run("lifecycle expiration rule is reported", func(t *testing.T) {
		bucket := newBucketName("ilm")
		s3.MakeBucket(t, bucket)
		require.NoError(t, s3.Client.SetBucketLifecycle(ctx, bucket, &lifecycle.Configuration{Rules: []lifecycle.Rule{{
			ID: "delete-old-backups", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: ""}, Expiration: lifecycle.Expiration{Days: 30},
		}}}))
		var logs logBuffer
		r := openRepo(t, s3.RepoURL(bucket, ""), backup.Options{Env: rootEnv("pw"), Logger: logs.logger()})
		res, err := r.EnsureRepo(ctx)
		require.NoError(t, err)
		require.Len(t, res.Warnings, 1)
		assert.Contains(t, res.Warnings[0], "delete-old-backups")
		assert.Contains(t, logs.String(), "REPOSITORY AT RISK")
	})
}

func TestEnsureRepoWrongPasswordNeverInits(t *testing.T) {
	ctx := context.Background()
	bucket := newBucketName("wrongpw")
	s3.MakeBucket(t, bucket)
	url := s3.RepoURL(bucket, "")
	_, err := openRepo(t, url, backup.Options{Env: rootEnv("the-right-password")}).EnsureRepo(ctx)
	require.NoError(t, err)
	before := objects(t, bucket, "")

	var logs logBuffer
	r := openRepo(t, url, backup.Options{Env: rootEnv("a-wrong-password"), Logger: logs.logger()})
	_, err = r.EnsureRepo(ctx)
	require.ErrorIs(t, err, backup.ErrWrongPassword)
	assert.Contains(t, err.Error(), "never re-initialise")
	assert.Equal(t, before, objects(t, bucket, ""), "nothing written to the repository")
	assertNoSecrets(t, err.Error()+logs.String(), "a-wrong-password", s3.SecretKey)
}

func TestEnsureRepoOtherAppsCredentials(t *testing.T) {
	ctx := context.Background()
	own, other := newBucketName("app-a"), newBucketName("app-b")
	s3.MakeBucket(t, own)
	s3.MakeBucket(t, other)
	s3.AddAppUser(t, "user-"+own, "secret-of-"+own, own)
	appEnv := map[string]string{"RESTIC_PASSWORD": "app-pass", "AWS_ACCESS_KEY_ID": "user-" + own, "AWS_SECRET_ACCESS_KEY": "secret-of-" + own}

	t.Run("own bucket works with the seed's policy", func(t *testing.T) {
		res, err := openRepo(t, s3.RepoURL(own, ""), backup.Options{Env: appEnv}).EnsureRepo(ctx)
		require.NoError(t, err)
		assert.True(t, res.Initialized)
	})
	t.Run("another app's bucket is refused and never initialised", func(t *testing.T) {
		var logs logBuffer
		_, err := openRepo(t, s3.RepoURL(other, ""), backup.Options{Env: appEnv, Logger: logs.logger()}).EnsureRepo(ctx)
		require.ErrorIs(t, err, backup.ErrAccessDenied)
		assert.Empty(t, objects(t, other, ""))
		assertNoSecrets(t, err.Error()+logs.String(), "secret-of-"+own, "app-pass")
	})
	t.Run("a missing bucket reads as access denied, and the error says both", func(t *testing.T) {
		_, err := openRepo(t, s3.RepoURL(newBucketName("app-missing"), ""), backup.Options{Env: appEnv, CreateBucket: true}).EnsureRepo(ctx)
		require.ErrorIs(t, err, backup.ErrAccessDenied)
		assert.Contains(t, err.Error(), "either the bucket does not exist")
		assert.Contains(t, err.Error(), "not allowed to use it")
	})
}

// blackhole accepts TCP connections and never answers.
func blackhole(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return l.Addr().String()
}

func TestUnreachableEndpointFailsWithinDeadline(t *testing.T) {
	ctx := context.Background()
	deadline := 3 * time.Second
	for name, url := range map[string]string{
		"s3 endpoint that never answers":   "s3:http://" + blackhole(t) + "/bucket",
		"rest endpoint that never answers": "rest:http://" + blackhole(t) + "/",
	} {
		t.Run(name, func(t *testing.T) {
			r := openRepo(t, url, backup.Options{Env: rootEnv("pw"), Timeouts: backup.Timeouts{Open: deadline}, KillAfter: 2 * time.Second})
			start := time.Now()
			_, err := r.EnsureRepo(ctx)
			elapsed := time.Since(start)
			require.ErrorIs(t, err, backup.ErrInterrupted)
			assert.Contains(t, err.Error(), "deadline")
			// Deadline plus restic's SIGINT grace: far from restic's own minutes of retries.
			assert.Less(t, elapsed, deadline+5*time.Second)
		})
	}
}

// The race: many processes run EnsureRepo on one empty bucket at once.
// Every one must succeed, exactly one initialises, and the repository opens.

const helperEnv = "PLATBACK_ENSURE_HELPER"

// ensureHelper is the child process: EnsureRepo, then print the result.
func ensureHelper() int {
	var env map[string]string
	_ = json.Unmarshal([]byte(os.Getenv("PLATBACK_HELPER_ENV")), &env)
	r, err := backup.Open(context.Background(), os.Getenv("PLATBACK_HELPER_REPO"), backup.Options{
		Restic: os.Getenv("PLATBACK_HELPER_RESTIC"), Env: env, Host: "race", CacheDir: os.Getenv("PLATBACK_HELPER_CACHE"),
	})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	res, err := r.EnsureRepo(context.Background())
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("OK initialized=" + strconv.FormatBool(res.Initialized))
	return 0
}

func raceEnsure(t *testing.T, repo string, n int, sharedCache bool) {
	t.Helper()
	env, _ := json.Marshal(rootEnv("race-pass"))
	cache := t.TempDir()
	var wg sync.WaitGroup
	outs := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cache
			if !sharedCache {
				c = filepath.Join(cache, strconv.Itoa(i)) // no shared file lock: only the S3 lock protects
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"=1", "PLATBACK_HELPER_REPO="+repo, "PLATBACK_HELPER_ENV="+string(env),
				"PLATBACK_HELPER_RESTIC="+testbed.Tool(t, "restic"), "PLATBACK_HELPER_CACHE="+c)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			<-start
			errs[i] = cmd.Run()
			outs[i] = out.String()
		}()
	}
	close(start)
	wg.Wait()
	inits := 0
	for i := range n {
		require.NoError(t, errs[i], "process %d: %s", i, outs[i])
		if strings.Contains(outs[i], "initialized=true") {
			inits++
		}
	}
	assert.Equal(t, 1, inits, "exactly one process initialises:\n%s", strings.Join(outs, ""))

	// The repository opens with the password and can take a backup.
	r := openRepo(t, repo, backup.Options{Env: rootEnv("race-pass")})
	res, err := r.EnsureRepo(context.Background())
	require.NoError(t, err)
	require.False(t, res.Initialized)
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "f"), []byte("after the race"), 0o600))
	_, err = r.Backup(context.Background(), []string{src}, backup.BackupOptions{})
	require.NoError(t, err)
}

func TestEnsureRepoConcurrentProcesses(t *testing.T) {
	const processes = 12
	for round := range 3 {
		t.Run(fmt.Sprintf("S3 without shared file lock, round %d", round), func(t *testing.T) {
			bucket := newBucketName("race")
			s3.MakeBucket(t, bucket)
			raceEnsure(t, s3.RepoURL(bucket, ""), processes, false)
			assert.Len(t, objects(t, bucket, "keys/"), 1, "one init, one key")
		})
	}
	t.Run("S3 with shared cache dir", func(t *testing.T) {
		bucket := newBucketName("race-shared")
		s3.MakeBucket(t, bucket)
		raceEnsure(t, s3.RepoURL(bucket, "prefix"), processes, true)
	})
	t.Run("local repository", func(t *testing.T) {
		repo := filepath.Join(t.TempDir(), "repo")
		raceEnsure(t, repo, processes, false)
		keys, err := os.ReadDir(filepath.Join(repo, "keys"))
		require.NoError(t, err)
		assert.Len(t, keys, 1)
	})
}

// assertNoSecrets fails when text holds any secret, in any form.
func assertNoSecrets(t *testing.T, text string, secrets ...string) {
	t.Helper()
	named := map[string]string{}
	for i, s := range secrets {
		named[fmt.Sprintf("#%d", i+1)] = s
	}
	testbed.AssertNoSecret(t, "text", text, named)
}
