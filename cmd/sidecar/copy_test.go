package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/doctor"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/testbed/vaultbed"
)

// The second copy (COPY_REPOSITORY) with the real sidecar binary, restic
// and two MinIO servers: the first run creates the second bucket and
// repository and copies its snapshot (same tree), the copy keeps its own
// retention (COPY_KEEP_LAST=1 while the primary keeps 30 days); a wrong
// copy password fails the copy, not the run, with the fix, and the next
// good run copies the snapshot it missed; a second server that is down
// fails the copy, not the run, and is visible in run-once's output, a
// notification and the daemon's /metrics. No password or key in any
// output or message.
func TestSecondCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sidecar against Docker, two MinIO servers and restic")
	}
	cli := dockerbed.Client(t)
	workerImage := buildSidecarImage(t, cli)
	primary, second := testbed.StartMinIO(t), testbed.StartMinIO(t)
	require.Equal(t, primary.AccessKey, second.AccessKey, "one S3 user on both servers (restic 0.19 copies with one key pair)")
	bucket, copyBucket := dockerbed.UniqueName("copy-primary"), dockerbed.UniqueName("copy-second")
	primary.MakeBucket(t, bucket)
	project, dir := volumeStack(t, "copy", map[string][]byte{"hello.txt": []byte("hello\n")})
	const password, copyPassword = "copy-test-primary-pass-4411", "copy-test-second-pass-9083"
	rcv := newHookReceiver(t)
	copyURL := second.RepoURL(copyBucket, "repo")
	h := newHostSidecar(t, buildDaemonBinary(t), project, map[string]string{
		"RESTIC_REPOSITORY": primary.RepoURL(bucket, "repo"), "RESTIC_PASSWORD": password,
		"AWS_ACCESS_KEY_ID": primary.AccessKey, "AWS_SECRET_ACCESS_KEY": primary.SecretKey, "PLATBACK_WORKER_IMAGE": workerImage,
		"COPY_REPOSITORY": copyURL, "COPY_RESTIC_PASSWORD": copyPassword, "COPY_KEEP_LAST": "1",
		"NOTIFICATION_URLS": "generic+" + rcv.URL + "/notify/SECRETHOOK",
	})
	secrets := map[string]string{"restic password": password, "copy password": copyPassword, "S3 access key": primary.AccessKey, "S3 secret key": primary.SecretKey}
	noSecret := func(where, out string, reqs []hookRequest) {
		testbed.AssertNoSecret(t, where+" output", out, secrets)
		for _, r := range reqs {
			testbed.AssertNoSecret(t, where+" "+r.Line, r.Body, secrets)
		}
	}
	ctx := context.Background()
	open := func(url, pass string) *backup.Repo {
		r, err := backup.Open(ctx, url, backup.Options{Restic: testbed.Tool(t, "restic"), CacheDir: t.TempDir(),
			Env: map[string]string{"RESTIC_PASSWORD": pass, "AWS_ACCESS_KEY_ID": primary.AccessKey, "AWS_SECRET_ACCESS_KEY": primary.SecretKey}})
		require.NoError(t, err)
		return r
	}
	trees := func(r *backup.Repo) []string {
		snaps, err := r.Snapshots(ctx, backup.Filter{Host: project})
		require.NoError(t, err)
		var out []string
		for _, s := range snaps {
			out = append(out, s.Tree)
		}
		return out
	}

	doctorCheck := func(t *testing.T, extra map[string]string) doctor.Check {
		t.Helper()
		_, out := h.run(t, extra, "doctor", "--json")
		testbed.AssertNoSecret(t, "doctor's output", out, secrets)
		var rep doctor.Report
		start, end := strings.Index(out, "["), strings.LastIndex(out, "]")
		require.True(t, start >= 0 && end > start, "no JSON report in:\n%s", out)
		require.NoError(t, json.Unmarshal([]byte(out[start:end+1]), &rep), out)
		c, ok := rep.Find("second copy")
		require.True(t, ok, "no second copy check in:\n%s", out)
		return c
	}

	t.Run("doctor before the first run: the copy is created by it", func(t *testing.T) {
		c := doctorCheck(t, nil)
		assert.Equal(t, doctor.Warn, c.Status, "%s", c.Detail)
		assert.Contains(t, c.Detail, "the first copy creates it")
	})

	t.Run("first run creates the second repository and copies", func(t *testing.T) {
		code, out := h.runOnce(t, nil)
		require.Equal(t, 0, code, out)
		assert.Regexp(t, `copied to `+strings.ReplaceAll(copyURL, ".", `\.`)+` in \S+: it holds 1 snapshot\(s\) of this stack`, out)
		got, want := trees(open(copyURL, copyPassword)), trees(open(primary.RepoURL(bucket, "repo"), password))
		require.Len(t, want, 1)
		assert.Equal(t, want, got, "the copy holds the run's snapshot, same tree")
		assert.Empty(t, rcv.take(), "nothing to notify at level error")
		noSecret("first run", out, nil)
	})

	t.Run("the copy keeps its own retention", func(t *testing.T) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "second.txt"), []byte("two\n"), 0o644))
		code, out := h.runOnce(t, nil)
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "it holds 1 snapshot(s) of this stack", "COPY_KEEP_LAST=1")
		primaryTrees := trees(open(primary.RepoURL(bucket, "repo"), password))
		require.Len(t, primaryTrees, 2, "the primary keeps 30 days")
		assert.Equal(t, []string{primaryTrees[len(primaryTrees)-1]}, trees(open(copyURL, copyPassword)), "the copy keeps the newest")
	})

	t.Run("wrong copy password: the run succeeds, the copy fails with the fix, the next run catches up", func(t *testing.T) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "third.txt"), []byte("three\n"), 0o644))
		code, out := h.runOnce(t, map[string]string{"COPY_RESTIC_PASSWORD": "not-the-copy-password"})
		require.Equal(t, 0, code, "a failed copy does not fail the run\n"+out)
		assert.Contains(t, out, "copy to "+copyURL+" FAILED (the backup itself is not affected")
		assert.Contains(t, out, "COPY_RESTIC_PASSWORD or its Vault field")
		assert.Contains(t, out, "OK: 1 target(s)")
		reqs := rcv.take()
		require.Equal(t, []string{"POST /notify/SECRETHOOK"}, reqLines(reqs), out)
		assert.Contains(t, reqs[0].Body, "platback: the backup of stack "+project+" succeeded, but copying it to the second repository "+copyURL+" FAILED: ")
		assert.Contains(t, reqs[0].Body, "Fix: the second repository's password is COPY_RESTIC_PASSWORD")
		secrets["wrong copy password"] = "not-the-copy-password"
		noSecret("wrong copy password", out, reqs)
		delete(secrets, "wrong copy password")
		missed := trees(open(primary.RepoURL(bucket, "repo"), password))
		require.Len(t, missed, 3)

		require.NoError(t, os.WriteFile(filepath.Join(dir, "fourth.txt"), []byte("four\n"), 0o644))
		code, out = h.runOnce(t, map[string]string{"COPY_KEEP_LAST": "3"})
		require.Equal(t, 0, code, out)
		all := trees(open(primary.RepoURL(bucket, "repo"), password))
		assert.Equal(t, all[len(all)-3:], trees(open(copyURL, copyPassword)), "the snapshot the failed copy missed was copied by the next run")
		assert.Contains(t, all[len(all)-3:], missed[len(missed)-1])
	})

	t.Run("doctor: the copy opens, a wrong copy password fails naming the fix", func(t *testing.T) {
		c := doctorCheck(t, nil)
		assert.Equal(t, doctor.Pass, c.Status, "%s", c.Detail)
		c = doctorCheck(t, map[string]string{"COPY_RESTIC_PASSWORD": "not-the-copy-password"})
		assert.Equal(t, doctor.Fail, c.Status, "%s", c.Detail)
		assert.Contains(t, c.Fix, "COPY_RESTIC_PASSWORD or its Vault field")
	})

	t.Run("repository and password from Vault fields", func(t *testing.T) {
		vault := vaultbed.Start(t)
		vaultCopy := second.RepoURL(dockerbed.UniqueName("copy-vault"), "repo")
		const vaultCopyPassword = "copy-test-vault-pass-6620"
		vault.PutKV2(t, vaultbed.KV2Mount, "stackback_copy", map[string]any{"password": password, "access_key": primary.AccessKey,
			"secret_key": primary.SecretKey, "copy_password": vaultCopyPassword, "copy_repository": vaultCopy})
		env := vaultSidecarEnv(t, vault.Addr, vault.RoleID, vault.SecretID, "stackback_copy")
		env["VAULT_FIELD_MAP"] = "password=RESTIC_PASSWORD,access_key=AWS_ACCESS_KEY_ID,secret_key=AWS_SECRET_ACCESS_KEY,copy_password=COPY_RESTIC_PASSWORD,copy_repository=COPY_REPOSITORY"
		env["RESTIC_PASSWORD"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["COPY_REPOSITORY"], env["COPY_RESTIC_PASSWORD"], env["COPY_KEEP_LAST"] = "", "", "", "", "", ""
		code, out := h.runOnce(t, env)
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "copied to "+vaultCopy+" in ")
		primaryTrees := trees(open(primary.RepoURL(bucket, "repo"), password))
		assert.Equal(t, primaryTrees, trees(open(vaultCopy, vaultCopyPassword)), "every snapshot of the stack, with the Vault field's password (30 days kept)")
		secrets["vault copy password"], secrets["secret_id"] = vaultCopyPassword, vault.SecretID
		noSecret("vault copy", out, rcv.take())
		delete(secrets, "vault copy password")
		delete(secrets, "secret_id")

		code, out = h.runOnce(t, map[string]string{"VAULT_ADDR": vault.Addr, "VAULT_ROLE_ID_FILE": env["VAULT_ROLE_ID_FILE"], "VAULT_SECRET_ID_FILE": env["VAULT_SECRET_ID_FILE"],
			"VAULT_SECRET_PATH": env["VAULT_SECRET_PATH"], "RESTIC_PASSWORD": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
		assert.Equal(t, 1, code, "a plain COPY_RESTIC_PASSWORD beside Vault is refused at start-up\n"+out)
		assert.Contains(t, out, "COPY_RESTIC_PASSWORD is set while the credentials come from Vault")
		testbed.AssertNoSecret(t, "start-up error", out, secrets)
	})

	t.Run("second server down: run OK, copy failure in output, notification and metrics", func(t *testing.T) {
		d := h.startDaemon(t)
		d.waitUntil(t, 60*time.Second, "the start-up check", func() bool { return d.metric("platback_startup_check_ok", "") == "1" })
		// The last run (replayed at start-up) copied: into the Vault
		// field's repository, which keeps every snapshot.
		assert.Equal(t, "1", d.metric("platback_copy_last_ok", ""))
		assert.Equal(t, fmt.Sprint(len(trees(open(primary.RepoURL(bucket, "repo"), password)))), d.metric("platback_copy_snapshots", ""))
		okAt := d.metric("platback_copy_last_success_timestamp_seconds", "")
		second.Stop()
		start := time.Now()
		code, out := h.runOnce(t, nil)
		t.Logf("run-once with the second server down took %s", time.Since(start).Round(time.Millisecond))
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "copy to "+copyURL+" FAILED")
		assert.Contains(t, out, "OK: 1 target(s)")
		reqs := rcv.take()
		require.Equal(t, []string{"POST /notify/SECRETHOOK"}, reqLines(reqs), out)
		assert.Contains(t, reqs[0].Body, "copying it to the second repository "+copyURL+" FAILED")
		d.waitUntil(t, 10*time.Second, "the run-once's copy in /metrics", func() bool { return d.metric("platback_copy_last_ok", "") == "0" })
		c := doctorCheck(t, nil)
		assert.Equal(t, doctor.Fail, c.Status, "%s", c.Detail)
		assert.Contains(t, c.Fix, "check COPY_REPOSITORY, the network to it")
		assert.Equal(t, "1", d.metric("platback_copy_failures_total", ""))
		assert.Equal(t, "1", d.metric("platback_run_last_ok", ""), "the backup itself succeeded")
		assert.Equal(t, okAt, d.metric("platback_copy_last_success_timestamp_seconds", ""), "the last success stays")
		noSecret("server down", out+d.logs.String(), reqs)
	})
}
