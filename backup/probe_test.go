package backup_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
)

// Lifecycle rules against the real MinIO: only an enabled expiration rule
// whose filter reaches the repository's keys counts, and credentials that
// cannot read the configuration are reported as such, never as "no rule".
func TestLifecycleRulesOnMinIO(t *testing.T) {
	ctx := context.Background()
	setRules := func(t *testing.T, bucket string, rules ...lifecycle.Rule) {
		t.Helper()
		require.NoError(t, s3.Client.SetBucketLifecycle(ctx, bucket, &lifecycle.Configuration{Rules: rules}))
	}
	days := func(n int) lifecycle.Expiration { return lifecycle.Expiration{Days: lifecycle.ExpirationDays(n)} }

	t.Run("no configuration", func(t *testing.T) {
		t.Parallel()
		bucket := newBucketName("ilm-none")
		s3.MakeBucket(t, bucket)
		l := openRepo(t, s3.RepoURL(bucket, "repo"), backup.Options{Env: rootEnv("pw")}).CheckLifecycle(ctx)
		assert.Equal(t, backup.Lifecycle{}, l)
	})
	// Before the first run the bucket does not exist: that is no rule and
	// nothing unknown (sidecar plan used to say "lifecycle unknown").
	t.Run("no bucket yet", func(t *testing.T) {
		t.Parallel()
		l := openRepo(t, s3.RepoURL(newBucketName("ilm-nobucket"), "repo"), backup.Options{Env: rootEnv("pw")}).CheckLifecycle(ctx)
		assert.Equal(t, backup.Lifecycle{BucketMissing: true}, l)
	})
	t.Run("only rules that cannot touch the repository", func(t *testing.T) {
		t.Parallel()
		bucket := newBucketName("ilm-harmless")
		s3.MakeBucket(t, bucket)
		setRules(t, bucket,
			lifecycle.Rule{ID: "logs", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "logs/"}, Expiration: days(7)},
			lifecycle.Rule{ID: "other-app", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "restic/other/"}, Expiration: days(7)},
			lifecycle.Rule{ID: "off", Status: "Disabled", Expiration: days(1)},
			lifecycle.Rule{ID: "tagged", Status: "Enabled", RuleFilter: lifecycle.Filter{Tag: lifecycle.Tag{Key: "tmp", Value: "yes"}}, Expiration: days(1)},
			lifecycle.Rule{ID: "old-versions", Status: "Enabled", NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: 30}},
			lifecycle.Rule{ID: "huge", Status: "Enabled", RuleFilter: lifecycle.Filter{ObjectSizeGreaterThan: 1 << 30}, Expiration: days(1)},
		)
		r := openRepo(t, s3.RepoURL(bucket, "restic/app"), backup.Options{Env: rootEnv("pw")})
		res, err := r.EnsureRepo(ctx)
		require.NoError(t, err)
		assert.Empty(t, res.ExpirationRules)
		require.NoError(t, res.LifecycleErr)
		assert.Empty(t, res.Warnings)
	})
	t.Run("a rule on a parent prefix of the repository", func(t *testing.T) {
		t.Parallel()
		bucket := newBucketName("ilm-parent")
		s3.MakeBucket(t, bucket)
		setRules(t, bucket,
			lifecycle.Rule{ID: "logs", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "logs/"}, Expiration: days(7)},
			lifecycle.Rule{ID: "expire-restic", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "restic/"}, Expiration: days(30)},
		)
		var logs logBuffer
		r := openRepo(t, s3.RepoURL(bucket, "restic/app"), backup.Options{Env: rootEnv("pw"), Logger: logs.logger()})
		res, err := r.EnsureRepo(ctx)
		require.NoError(t, err, "a danger is a warning, not a failure")
		require.Len(t, res.ExpirationRules, 1)
		assert.Equal(t, backup.ExpirationRule{ID: "expire-restic", Action: "expires objects after 30 days", Filter: `prefix "restic/"`}, res.ExpirationRules[0])
		require.Len(t, res.Warnings, 1)
		assert.True(t, strings.HasPrefix(res.Warnings[0], backup.WarnExpirationRule), res.Warnings[0])
		assert.Contains(t, logs.String(), "REPOSITORY AT RISK")

		probe, err := r.Probe(ctx)
		require.NoError(t, err)
		assert.Equal(t, res.ExpirationRules, probe.ExpirationRules)
		assert.Equal(t, res.Warnings, probe.Warnings)
		assert.Equal(t, backup.Lifecycle{Rules: res.ExpirationRules, Warnings: res.Warnings}, r.CheckLifecycle(ctx))
	})
	t.Run("the seed's per-app policy reads the configuration", func(t *testing.T) {
		t.Parallel()
		bucket := newBucketName("ilm-seed")
		s3.MakeBucket(t, bucket)
		setRules(t, bucket, lifecycle.Rule{ID: "30-days", Status: "Enabled", Expiration: days(30)})
		s3.AddAppUser(t, "user-"+bucket, "secret-of-"+bucket, bucket)
		env := map[string]string{"RESTIC_PASSWORD": "app-pass", "AWS_ACCESS_KEY_ID": "user-" + bucket, "AWS_SECRET_ACCESS_KEY": "secret-of-" + bucket}
		res, err := openRepo(t, s3.RepoURL(bucket, ""), backup.Options{Env: env}).EnsureRepo(ctx)
		require.NoError(t, err)
		require.NoError(t, res.LifecycleErr)
		require.Len(t, res.ExpirationRules, 1)
		assert.Equal(t, "30-days", res.ExpirationRules[0].ID)
	})
	t.Run("credentials that may not read the configuration", func(t *testing.T) {
		t.Parallel()
		bucket := newBucketName("ilm-denied")
		s3.MakeBucket(t, bucket)
		setRules(t, bucket, lifecycle.Rule{ID: "30-days", Status: "Enabled", Expiration: days(30)})
		addUserDeniedLifecycle(t, "user-"+bucket, "secret-of-"+bucket, bucket)
		env := map[string]string{"RESTIC_PASSWORD": "app-pass", "AWS_ACCESS_KEY_ID": "user-" + bucket, "AWS_SECRET_ACCESS_KEY": "secret-of-" + bucket}
		var logs logBuffer
		r := openRepo(t, s3.RepoURL(bucket, ""), backup.Options{Env: env, Logger: logs.logger()})
		res, err := r.EnsureRepo(ctx)
		require.NoError(t, err, "the backup itself works with the seed's policy")
		assert.Empty(t, res.ExpirationRules, "unknown, not found")
		require.ErrorIs(t, res.LifecycleErr, backup.ErrLifecycleUnreadable)
		require.Len(t, res.Warnings, 1)
		w := res.Warnings[0]
		assert.True(t, strings.HasPrefix(w, backup.WarnLifecycleUnreadable), w)
		assert.Contains(t, w, "Access Denied")
		assert.Contains(t, w, "cannot be ruled out")
		assert.Contains(t, w, "s3:GetLifecycleConfiguration")
		assert.Contains(t, logs.String(), "bucket lifecycle rules unknown")
		assertNoSecrets(t, w+logs.String(), "secret-of-"+bucket, "app-pass")

		l := r.CheckLifecycle(ctx)
		require.ErrorIs(t, l.Err, backup.ErrLifecycleUnreadable)
		assert.Equal(t, res.Warnings, l.Warnings)
	})
}

// addUserDeniedLifecycle creates a MinIO user that may use bucket's objects
// but not read its lifecycle configuration, as AWS-style least-privilege
// policies without s3:GetLifecycleConfiguration have it.
func addUserDeniedLifecycle(t *testing.T, user, secret, bucket string) {
	t.Helper()
	ctx := context.Background()
	policy, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{
			{"Effect": "Allow", "Action": []string{"s3:*"}, "Resource": []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"}},
			{"Effect": "Deny", "Action": []string{"s3:GetLifecycleConfiguration"}, "Resource": []string{"arn:aws:s3:::" + bucket}},
		},
	})
	name := "nolifecycle-" + user
	require.NoError(t, s3.Admin.AddCannedPolicy(ctx, name, policy))
	require.NoError(t, s3.Admin.AddUser(ctx, user, secret))
	_, err := s3.Admin.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{name}, User: user})
	require.NoError(t, err)
}

// Probe is the daemon's start-up check: it says whether the repository is
// usable and never creates or writes anything.
func TestProbe(t *testing.T) {
	ctx := context.Background()
	t.Run("ready repository: nothing written, not even a lock", func(t *testing.T) {
		t.Parallel()
		bucket := newBucketName("probe-ok")
		s3.MakeBucket(t, bucket)
		r := openRepo(t, s3.RepoURL(bucket, "repo"), backup.Options{Env: rootEnv("probe-pass")})
		_, err := r.EnsureRepo(ctx)
		require.NoError(t, err)
		before := objects(t, bucket, "")
		res, err := r.Probe(ctx)
		require.NoError(t, err)
		assert.Equal(t, backup.ProbeResult{}, res)
		assert.Equal(t, before, objects(t, bucket, ""))
	})
	t.Run("empty bucket: the repository is missing, not initialised", func(t *testing.T) {
		t.Parallel()
		bucket := newBucketName("probe-empty")
		s3.MakeBucket(t, bucket)
		res, err := openRepo(t, s3.RepoURL(bucket, ""), backup.Options{Env: rootEnv("pw")}).Probe(ctx)
		require.NoError(t, err)
		assert.Equal(t, backup.ProbeResult{RepoMissing: true}, res)
		assert.Empty(t, objects(t, bucket, ""))
	})
	t.Run("missing bucket that may be created: not created", func(t *testing.T) {
		t.Parallel()
		bucket := newBucketName("probe-nobucket")
		start := time.Now()
		res, err := openRepo(t, s3.RepoURL(bucket, ""), backup.Options{Env: rootEnv("pw"), CreateBucket: true}).Probe(ctx)
		require.NoError(t, err)
		assert.Equal(t, backup.ProbeResult{BucketMissing: true, RepoMissing: true}, res)
		assert.Less(t, time.Since(start), 10*time.Second, "restic is not asked about a missing bucket")
		exists, err := s3.Client.BucketExists(ctx, bucket)
		require.NoError(t, err)
		assert.False(t, exists)
	})
	t.Run("missing bucket that may not be created", func(t *testing.T) {
		t.Parallel()
		_, err := openRepo(t, s3.RepoURL(newBucketName("probe-nocreate"), ""), backup.Options{Env: rootEnv("pw")}).Probe(ctx)
		require.ErrorIs(t, err, backup.ErrBucketMissing)
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		bucket := newBucketName("probe-wrongpw")
		s3.MakeBucket(t, bucket)
		url := s3.RepoURL(bucket, "")
		_, err := openRepo(t, url, backup.Options{Env: rootEnv("right-password")}).EnsureRepo(ctx)
		require.NoError(t, err)
		before := objects(t, bucket, "")
		_, err = openRepo(t, url, backup.Options{Env: rootEnv("wrong-password")}).Probe(ctx)
		require.ErrorIs(t, err, backup.ErrWrongPassword)
		assert.Contains(t, err.Error(), "never re-initialise")
		assertNoSecrets(t, err.Error(), "wrong-password", "right-password")
		assert.Equal(t, before, objects(t, bucket, ""))
	})
	t.Run("another app's credentials", func(t *testing.T) {
		t.Parallel()
		own, other := newBucketName("probe-a"), newBucketName("probe-b")
		s3.MakeBucket(t, own)
		s3.MakeBucket(t, other)
		s3.AddAppUser(t, "user-"+own, "secret-of-"+own, own)
		env := map[string]string{"RESTIC_PASSWORD": "p", "AWS_ACCESS_KEY_ID": "user-" + own, "AWS_SECRET_ACCESS_KEY": "secret-of-" + own}
		_, err := openRepo(t, s3.RepoURL(other, ""), backup.Options{Env: env}).Probe(ctx)
		require.ErrorIs(t, err, backup.ErrAccessDenied)
		assert.Contains(t, err.Error(), "not allowed to use it")
		assert.Empty(t, objects(t, other, ""))
	})
	t.Run("endpoint that never answers: fails within the caller's deadline", func(t *testing.T) {
		t.Parallel()
		r := openRepo(t, "s3:http://"+blackhole(t)+"/bucket", backup.Options{Env: rootEnv("pw"), KillAfter: 2 * time.Second})
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		_, err := r.Probe(cctx)
		require.ErrorIs(t, err, backup.ErrInterrupted)
		assert.Less(t, time.Since(start), 8*time.Second)
	})
	t.Run("local repository", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir() + "/repo"
		r := openRepo(t, dir, backup.Options{Env: map[string]string{"RESTIC_PASSWORD": "local"}})
		res, err := r.Probe(ctx)
		require.NoError(t, err)
		assert.Equal(t, backup.ProbeResult{RepoMissing: true}, res)
		assert.NoDirExists(t, dir)
		_, err = r.EnsureRepo(ctx)
		require.NoError(t, err)
		res, err = r.Probe(ctx)
		require.NoError(t, err)
		assert.Equal(t, backup.ProbeResult{}, res)
	})
}
