package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
	"github.com/moby/moby/api/types/mount"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/doctor"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/testbed/vaultbed"
)

// doctorRun is one `sidecar doctor --json`: its exit code, its whole
// output (stdout and stderr) and the report it printed.
type doctorRun struct {
	code int
	out  string
	rep  doctor.Report
}

func (d doctorRun) check(t *testing.T, name string) doctor.Check {
	t.Helper()
	c, ok := d.rep.Find(name)
	require.True(t, ok, "no check %q in:\n%s", name, d.out)
	return c
}

// status asserts the status of each named check.
func (d doctorRun) status(t *testing.T, want map[string]doctor.Status) {
	t.Helper()
	for name, s := range want {
		c := d.check(t, name)
		assert.Equal(t, s, c.Status, "%s: %s (fix: %s)", name, c.Detail, c.Fix)
	}
}

// TestDoctor runs `sidecar doctor` on the host against real Docker, Vault,
// MinIO and restic: a healthy set-up passes, and each broken link of the
// chain fails its own check, says the fix, and never shows a secret.
func TestDoctor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sidecar against Docker, Vault, MinIO and restic")
	}
	cli := dockerbed.Client(t)
	bin := buildDaemonBinary(t)
	workerImage := buildSidecarImage(t, cli)
	s3 := testbed.StartMinIO(t)
	vault := vaultbed.Start(t)
	ctx := context.Background()

	// What Terraform and Ansible make for one app: a bucket, its
	// least-privilege user, the Vault secret; and a stack to back up.
	bucket := dockerbed.UniqueName("doctor")
	s3.MakeBucket(t, bucket)
	user, key, password := "user-"+bucket, "key-"+vaultbed.Random(12), "pw-"+vaultbed.Random(12)
	s3.AddAppUser(t, user, key, bucket)
	putSecret(t, vault, "stackback_"+bucket, password, user, key)
	project, _ := volumeStack(t, "doctor", map[string][]byte{"hello.txt": []byte("hello from doctor\n")})
	env := vaultSidecarEnv(t, vault.Addr, vault.RoleID, vault.SecretID, "stackback_"+bucket)
	env["RESTIC_REPOSITORY"] = s3.RepoURL(bucket, "repo")
	env["PLATBACK_WORKER_IMAGE"] = workerImage
	env["BACKUP_CRON"] = "43 3 * * 2" // an unusual time: no other sidecar of the engine collides
	h := newHostSidecar(t, bin, project, env)
	secrets := map[string]string{"restic password": password, "S3 secret key": key, "secret_id": vault.SecretID, "role_id": vault.RoleID}

	doctorJSON := func(t *testing.T, extra map[string]string, more ...string) doctorRun {
		t.Helper()
		code, out := h.run(t, extra, "doctor", "--json")
		testbed.AssertNoSecret(t, "doctor's output", out, secrets)
		for _, v := range more {
			testbed.AssertNoSecret(t, "doctor's output", out, map[string]string{"test's own secret": v})
		}
		var d doctorRun
		d.code, d.out = code, out
		start := strings.Index(out, "[")
		end := strings.LastIndex(out, "]")
		require.True(t, start >= 0 && end > start, "no JSON report in:\n%s", out)
		require.NoError(t, json.Unmarshal([]byte(out[start:end+1]), &d.rep), out)
		return d
	}

	code, out := h.runOnce(t, nil)
	require.Equal(t, 0, code, out)

	t.Run("healthy: every check passes", func(t *testing.T) {
		before := objectKeys(t, s3, bucket)
		d := doctorJSON(t, nil)
		assert.Equal(t, 0, d.code, d.out)
		for _, c := range d.rep {
			want := doctor.Pass
			if c.Name == "stagger" && c.Status == doctor.Warn {
				t.Logf("another sidecar of the engine collides (allowed here): %s", c.Detail)
				continue
			}
			assert.Equal(t, want, c.Status, "%s: %s (fix: %s)", c.Name, c.Detail, c.Fix)
		}
		d.status(t, map[string]doctor.Status{"docker": doctor.Pass, "project": doctor.Pass, "plan": doctor.Pass, "vault": doctor.Pass,
			"vault login": doctor.Pass, "vault fields": doctor.Pass, "s3 endpoint": doctor.Pass, "s3 bucket": doctor.Pass, "s3 access": doctor.Pass,
			"s3 lifecycle": doctor.Pass, "s3 versioning": doctor.Pass, "s3 object lock": doctor.Pass, "repository": doctor.Pass,
			"snapshot /volumes/app/data": doctor.Pass, "schedule": doctor.Pass})
		assert.Contains(t, d.check(t, "vault fields").Detail, "password=RESTIC_PASSWORD")
		assert.Contains(t, d.check(t, "snapshot /volumes/app/data").Detail, "ago")
		assert.Contains(t, d.check(t, "s3 access").Detail, "repo/"+doctor.ProbePrefix)
		assert.Equal(t, before, objectKeys(t, s3, bucket), "doctor leaves the bucket as it was: no probe object, no lock")

		// The table: a line per check and the verdict.
		code, table := h.run(t, nil, "doctor")
		assert.Equal(t, 0, code, table)
		assert.Regexp(t, `(?m)^PASS +s3 lifecycle +no lifecycle rule`, table)
		assert.Contains(t, table, "0 fail")
		testbed.AssertNoSecret(t, "doctor's table", table, secrets)
	})

	t.Run("the seed's 30-day expiration rule fails, naming the rule and the fix", func(t *testing.T) {
		require.NoError(t, s3.Client.SetBucketLifecycle(ctx, bucket, &lifecycle.Configuration{Rules: []lifecycle.Rule{
			{ID: "delete-after-30-days", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 30}},
		}}))
		t.Cleanup(func() { _ = s3.Client.SetBucketLifecycle(ctx, bucket, lifecycle.NewConfiguration()) })
		d := doctorJSON(t, nil)
		assert.Equal(t, 1, d.code, d.out)
		c := d.check(t, "s3 lifecycle")
		assert.Equal(t, doctor.Fail, c.Status)
		assert.Contains(t, c.Detail, `rule "delete-after-30-days" expires objects after 30 days (filter: every object)`)
		assert.Contains(t, c.Detail, "DESTROY the repository")
		assert.Contains(t, c.Fix, "mc ilm rule rm --id delete-after-30-days ALIAS/"+bucket)
		d.status(t, map[string]doctor.Status{"s3 access": doctor.Pass, "repository": doctor.Pass}) // the others still run
		require.NoError(t, s3.Client.SetBucketLifecycle(ctx, bucket, lifecycle.NewConfiguration()))
	})

	t.Run("a wrong secret_id fails the login, without showing it", func(t *testing.T) {
		wrong := "00000000-dead-beef-0000-" + "c0ffee" + vaultbed.Random(6)
		file := filepath.Join(t.TempDir(), "secret_id")
		require.NoError(t, os.WriteFile(file, []byte(wrong+"\n"), 0o600))
		d := doctorJSON(t, map[string]string{"VAULT_SECRET_ID_FILE": file}, wrong)
		assert.Equal(t, 1, d.code, d.out)
		d.status(t, map[string]doctor.Status{"vault": doctor.Pass, "vault login": doctor.Fail, "vault fields": doctor.Skip,
			"s3 bucket": doctor.Skip, "repository": doctor.Skip, "docker": doctor.Pass, "plan": doctor.Pass, "schedule": doctor.Pass})
		assert.Contains(t, d.check(t, "vault login").Fix, "secret_id")
	})

	t.Run("a missing mapped field fails, naming the field, not a value", func(t *testing.T) {
		name := "stackback_" + bucket + "-nokey"
		vault.PutKV2(t, vaultbed.KV2Mount, name, map[string]any{"password": password, "access_key": user})
		d := doctorJSON(t, map[string]string{"VAULT_SECRET_PATH": vaultbed.KV2Mount + "/data/" + name})
		assert.Equal(t, 1, d.code, d.out)
		c := d.check(t, "vault fields")
		assert.Equal(t, doctor.Fail, c.Status)
		assert.Contains(t, c.Detail, `"secret_key" (for AWS_SECRET_ACCESS_KEY`)
		assert.NotContains(t, d.out, user, "not even the access key")
		d.status(t, map[string]doctor.Status{"vault login": doctor.Pass, "s3 access": doctor.Skip, "plan": doctor.Pass})
	})

	t.Run("credentials denied delete fail the S3 probe", func(t *testing.T) {
		noDel, noDelKey := "nodel-"+bucket, "key-"+vaultbed.Random(12)
		policy, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []map[string]any{
			{"Effect": "Allow", "Action": []string{"s3:*"}, "Resource": []string{"arn:aws:s3:::" + bucket + "/*"}},
			{"Effect": "Deny", "Action": []string{"s3:DeleteObject"}, "Resource": []string{"arn:aws:s3:::" + bucket + "/*"}},
		}})
		require.NoError(t, s3.Admin.AddCannedPolicy(ctx, "nodel-"+bucket, policy))
		require.NoError(t, s3.Admin.AddUser(ctx, noDel, noDelKey))
		_, err := s3.Admin.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{"nodel-" + bucket}, User: noDel})
		require.NoError(t, err)
		name := "stackback_" + bucket + "-nodel"
		putSecret(t, vault, name, password, noDel, noDelKey)
		d := doctorJSON(t, map[string]string{"VAULT_SECRET_PATH": vaultbed.KV2Mount + "/data/" + name}, noDelKey)
		assert.Equal(t, 1, d.code, d.out)
		c := d.check(t, "s3 access")
		assert.Equal(t, doctor.Fail, c.Status)
		assert.Contains(t, c.Detail, "delete in bucket")
		assert.Contains(t, c.Fix, "s3:DeleteObject")
		d.status(t, map[string]doctor.Status{"s3 bucket": doctor.Pass, "s3 lifecycle": doctor.Pass, "repository": doctor.Pass})
		for _, k := range objectKeys(t, s3, bucket) {
			if strings.Contains(k, doctor.ProbePrefix) {
				assert.True(t, strings.HasPrefix(k, "repo/"+doctor.ProbePrefix), "the probe stays out of restic's directories: %s", k)
				_, err := s3.Client.StatObject(ctx, bucket, k, minio.StatObjectOptions{})
				require.NoError(t, err)
				require.NoError(t, s3.Client.RemoveObject(ctx, bucket, k, minio.RemoveObjectOptions{}))
			}
		}
	})

	t.Run("versioning and object lock are reported; the probe leaves only a noncurrent version", func(t *testing.T) {
		locked := dockerbed.UniqueName("doctor-locked")
		require.NoError(t, s3.Client.MakeBucket(ctx, locked, minio.MakeBucketOptions{ObjectLocking: true}))
		mode, days, unit := minio.Governance, uint(1), minio.Days
		require.NoError(t, s3.Client.SetObjectLockConfig(ctx, locked, &mode, &days, &unit))
		name := "stackback_" + locked
		putSecret(t, vault, name, password, s3.AccessKey, s3.SecretKey)
		d := doctorJSON(t, map[string]string{"VAULT_SECRET_PATH": vaultbed.KV2Mount + "/data/" + name, "RESTIC_REPOSITORY": s3.RepoURL(locked, "")}, s3.SecretKey)
		assert.Equal(t, 0, d.code, "warnings only:\n%s", d.out)
		d.status(t, map[string]doctor.Status{"s3 versioning": doctor.Warn, "s3 object lock": doctor.Pass, "s3 access": doctor.Pass, "repository": doctor.Warn})
		assert.Contains(t, d.check(t, "s3 versioning").Fix, "NoncurrentVersionExpiration")
		assert.Contains(t, d.check(t, "s3 object lock").Detail, "enabled, default retention GOVERNANCE 1 days")
		assert.Contains(t, d.check(t, "s3 access").Detail, "noncurrent version")
		assert.Contains(t, d.check(t, "repository").Detail, "the first run initialises it")
		assert.Empty(t, objectKeys(t, s3, locked), "no current object left, no repository created")
	})

	t.Run("an empty plan fails", func(t *testing.T) {
		d := doctorJSON(t, map[string]string{"PLATBACK_PROJECT": dockerbed.UniqueName("doctor-empty")})
		assert.Equal(t, 1, d.code, d.out)
		c := d.check(t, "plan")
		assert.Equal(t, doctor.Fail, c.Status)
		assert.Contains(t, c.Detail, "nothing to back up")
		assert.Contains(t, c.Fix, `stack-back.volumes: "true"`)
		d.status(t, map[string]doctor.Status{"snapshots": doctor.Skip, "repository": doctor.Pass, "s3 access": doctor.Pass})
	})

	t.Run("another sidecar on the engine at the same time collides", func(t *testing.T) {
		other := stack{t: t, cli: cli, project: dockerbed.UniqueName("doctor-neighbour")}
		// A real sidecar daemon of another stack (its start-up check fails,
		// which never stops it) with the same BACKUP_CRON.
		id := other.start("backup", workerImage, nil, []string{"BACKUP_CRON=43 3 * * 2", "RESTIC_REPOSITORY=/tmp/repo", "RESTIC_PASSWORD=neighbour-pass", "METRICS_LISTEN=off"},
			nil, []mount.Mount{{Type: mount.TypeBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"}}, "")
		d := doctorJSON(t, nil)
		require.True(t, running(t, cli, id), "the neighbour runs")
		c := d.check(t, "stagger")
		assert.Equal(t, doctor.Warn, c.Status, c.Detail)
		assert.Contains(t, c.Detail, other.project+"-backup-1 (project "+other.project)
		assert.Contains(t, c.Fix, "BACKUP_STAGGER")
		assert.Equal(t, 0, d.code, "a collision is a warning:\n%s", d.out)
		assert.NotContains(t, d.out, "neighbour-pass", "nothing of the neighbour's environment but its schedule")
	})
}
