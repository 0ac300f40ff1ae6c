package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/testbed/vaultbed"
)

// The outage cases of the bad day (issue 9, cases 3 to 6) at the level of
// the sidecar: the real binary on the host, real Vault, MinIO and restic.
// What vaultcreds and backup prove on their own (retries, error kinds,
// deadlines, never an init) is not repeated here; these tests prove what
// the daemon and its runs make of it: the daemon keeps running, says what
// is wrong in its health, metrics and log, and recovers without a restart.

// tcpProxy stands between the sidecar and a server: while down its port
// refuses connections (the server is stopped or unreachable), and going
// down cuts the connections in flight.
type tcpProxy struct {
	addr    string
	backend string
	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]struct{}
}

// newTCPProxy reserves a port for backend; the proxy starts down.
func newTCPProxy(t *testing.T, backend string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{addr: "127.0.0.1:" + strconv.Itoa(testbed.FreePort(t)), backend: backend, conns: map[net.Conn]struct{}{}}
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) up(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(t, err)
	p.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *tcpProxy) forward(c net.Conn) {
	b, err := net.Dial("tcp", p.backend)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil {
		p.mu.Unlock()
		c.Close()
		b.Close()
		return
	}
	p.conns[c], p.conns[b] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
	<-done
	c.Close()
	b.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, b)
	p.mu.Unlock()
}

func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// silentEndpoint accepts TCP connections and never answers.
func silentEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().String()
}

// vaultSidecarEnv is the sidecar's Vault configuration: AppRole ids in
// files of a secrets directory, the secret at stackback_<name>.
func vaultSidecarEnv(t *testing.T, addr, roleID, secretID, secretName string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "role_id"), []byte(roleID+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret_id"), []byte(secretID+"\n"), 0o600))
	return map[string]string{
		"VAULT_ADDR":           addr,
		"VAULT_ROLE_ID_FILE":   filepath.Join(dir, "role_id"),
		"VAULT_SECRET_ID_FILE": filepath.Join(dir, "secret_id"),
		"VAULT_SECRET_PATH":    vaultbed.KV2Mount + "/data/" + secretName,
		"VAULT_RETRY_TIMEOUT":  "2s",
	}
}

// putSecret writes the stack's secret in Vault, as Ansible does.
func putSecret(t *testing.T, v *vaultbed.Server, name, password, accessKey, secretKey string) {
	t.Helper()
	v.PutKV2(t, vaultbed.KV2Mount, name, map[string]any{"password": password, "access_key": accessKey, "secret_key": secretKey})
}

// unsealKey reads the unseal key a dev server prints once it has started
// (its log sits in a temp dir of the test that started it; the banner may
// come a moment after the server answers).
func unsealKey(t *testing.T) string {
	t.Helper()
	root := filepath.Dir(t.TempDir())
	var key string
	waitFor(t, 20*time.Second, "the unseal key in the dev server's log", func() bool {
		logs, _ := filepath.Glob(filepath.Join(root, "*", "*.log"))
		for _, l := range logs {
			data, err := os.ReadFile(l)
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				if k, ok := strings.CutPrefix(sc.Text(), "Unseal Key: "); ok {
					key = strings.TrimSpace(k)
					return true
				}
			}
		}
		return false
	})
	return key
}

// checkFlags make the start-up check quick to retry in tests.
var checkFlags = []string{"--check-retry", "1s", "--check-timeout", "20s"}

// TestOutageStartupCheck: what the daemon finds at start-up, and how it
// recovers on its own. Before, the daemon checked nothing reachable: it
// started healthy and the failure showed at the first scheduled run.
func TestOutageStartupCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sidecar against Vault, MinIO and restic")
	}
	dockerbed.Client(t) // discovery asks the engine
	bin := buildDaemonBinary(t)
	s3 := testbed.StartMinIO(t)
	vault := vaultbed.Start(t)
	restic := testbed.Tool(t, "restic")

	// provision makes what the user's Terraform and Ansible make for one
	// app: a bucket, a least-privilege MinIO user, the Vault secret.
	provision := func(t *testing.T, name, password string) (bucket, user, key string) {
		bucket = dockerbed.UniqueName("outage-" + name)
		s3.MakeBucket(t, bucket)
		user, key = "user-"+bucket, "key-"+vaultbed.Random(8)
		s3.AddAppUser(t, user, key, bucket)
		putSecret(t, vault, "stackback_"+bucket, password, user, key)
		return bucket, user, key
	}
	sidecar := func(t *testing.T, vaultAddr, bucket, secretID string, extra map[string]string) *hostSidecar {
		env := vaultSidecarEnv(t, vaultAddr, vault.RoleID, secretID, "stackback_"+bucket)
		env["RESTIC_REPOSITORY"] = s3.RepoURL(bucket, "repo")
		for k, v := range extra {
			env[k] = v
		}
		return newHostSidecar(t, bin, dockerbed.UniqueName("outage"), env)
	}
	checkOK := func(d *runningDaemon) func() bool {
		return func() bool { return d.metric("platback_startup_check_ok", "") == "1" }
	}

	t.Run("Vault unreachable at start-up, then back", func(t *testing.T) {
		t.Parallel()
		bucket, _, _ := provision(t, "vdown", "pw-"+vaultbed.Random(6))
		proxy := newTCPProxy(t, strings.TrimPrefix(vault.Addr, "http://"))
		d := sidecar(t, "http://"+proxy.addr, bucket, vault.NewSecretID(t, vaultbed.RoleName), nil).startDaemon(t, checkFlags...)
		r := d.waitHealth(t, 20*time.Second, false, "start-up check failing since", "VAULT_ADDR", "connection refused")
		t.Logf("Vault down: %s", r.Reason)
		assert.Equal(t, "0", d.metric("platback_startup_check_ok", ""))
		assert.Contains(t, d.logs.String(), "start-up check failed")
		d.waitUntil(t, 20*time.Second, "a retry", func() bool { return d.metricAtLeast("platback_startup_check_failures_total", 2) })

		proxy.up(t)
		took := d.waitUntil(t, 20*time.Second, "recovery", checkOK(d))
		d.waitHealth(t, 2*time.Second, true, "no run yet")
		assert.Contains(t, d.logs.String(), "start-up check passed")
		t.Logf("recovered %s after Vault came back", took.Round(time.Millisecond))
	})

	t.Run("Vault sealed at start-up, then unsealed", func(t *testing.T) {
		t.Parallel()
		own := vaultbed.Start(t)
		key := unsealKey(t)
		bucket := dockerbed.UniqueName("outage-sealed")
		s3.MakeBucket(t, bucket)
		s3.AddAppUser(t, own.Secret["access_key"], own.Secret["secret_key"], bucket)
		env := vaultSidecarEnv(t, own.Addr, own.RoleID, own.SecretID, vaultbed.SecretName)
		env["RESTIC_REPOSITORY"] = s3.RepoURL(bucket, "")
		own.Seal(t)
		d := newHostSidecar(t, bin, dockerbed.UniqueName("outage"), env).startDaemon(t, checkFlags...)
		r := d.waitHealth(t, 20*time.Second, false, "start-up check failing since", "sealed", "VAULT_ADDR")
		t.Logf("sealed: %s", r.Reason)
		_, err := own.Root.Sys().Unseal(key)
		require.NoError(t, err)
		took := d.waitUntil(t, 30*time.Second, "recovery", checkOK(d))
		d.waitHealth(t, 2*time.Second, true, "no run yet")
		t.Logf("recovered %s after the unseal", took.Round(time.Millisecond))
	})

	for name, makeBad := range map[string]func(t *testing.T) string{
		// Revoked: an operator destroyed it (or it was used up).
		"revoked": func(t *testing.T) string {
			id := vault.NewSecretID(t, vaultbed.RoleName)
			_, err := vault.Root.Logical().Write("auth/approle/role/"+vaultbed.RoleName+"/secret-id/destroy", map[string]any{"secret_id": id})
			require.NoError(t, err)
			return id
		},
		// Used up: it allowed one login, which happened. (An expired one
		// gets the same answer from Vault; the dev server here enforces a
		// secret_id's TTL only when it tidies, so that case is not timed.)
		"used up": func(t *testing.T) string {
			sec, err := vault.Root.Logical().Write("auth/approle/role/"+vaultbed.RoleName+"/secret-id", map[string]any{"num_uses": 1})
			require.NoError(t, err)
			id, _ := sec.Data["secret_id"].(string)
			login, err := vault.Root.Clone()
			require.NoError(t, err)
			login.ClearToken()
			_, err = login.Logical().Write("auth/approle/login", map[string]any{"role_id": vault.RoleID, "secret_id": id})
			require.NoError(t, err)
			return id
		},
	} {
		t.Run("secret_id "+name+", then a new one delivered", func(t *testing.T) {
			t.Parallel()
			bucket, _, _ := provision(t, "sid"+strings.ReplaceAll(name, " ", ""), "pw-"+vaultbed.Random(6))
			h := sidecar(t, vault.Addr, bucket, makeBad(t), nil)
			d := h.startDaemon(t, checkFlags...)
			r := d.waitHealth(t, 20*time.Second, false, "start-up check failing since", "VAULT_SECRET_ID_FILE", "secret-id")
			t.Logf("%s secret_id: %s", name, r.Reason)
			assert.False(t, d.exited())

			// Ansible delivers a new secret_id by renaming a file over the old one.
			fresh := filepath.Join(filepath.Dir(h.env["VAULT_SECRET_ID_FILE"]), ".secret_id.new")
			require.NoError(t, os.WriteFile(fresh, []byte(vault.NewSecretID(t, vaultbed.RoleName)+"\n"), 0o600))
			require.NoError(t, os.Rename(fresh, h.env["VAULT_SECRET_ID_FILE"]))
			took := d.waitUntil(t, 20*time.Second, "recovery", checkOK(d))
			d.waitHealth(t, 2*time.Second, true, "no run yet")
			t.Logf("recovered %s after the new secret_id", took.Round(time.Millisecond))
		})
	}

	t.Run("wrong restic password: never initialised, nothing written, fixed in Vault", func(t *testing.T) {
		t.Parallel()
		right, wrong := "right-"+vaultbed.Random(6), "wrong-"+vaultbed.Random(6)
		bucket, user, key := provision(t, "wrongpw", wrong)
		repo, err := backup.Open(context.Background(), s3.RepoURL(bucket, "repo"), backup.Options{Restic: restic, CacheDir: t.TempDir(),
			Env: map[string]string{"RESTIC_PASSWORD": right, "AWS_ACCESS_KEY_ID": user, "AWS_SECRET_ACCESS_KEY": key}})
		require.NoError(t, err)
		_, err = repo.EnsureRepo(context.Background())
		require.NoError(t, err)
		before := objectKeys(t, s3, bucket)

		d := sidecar(t, vault.Addr, bucket, vault.SecretID, nil).startDaemon(t, checkFlags...)
		r := d.waitHealth(t, 20*time.Second, false, "start-up check failing since", "wrong repository password", "never re-initialise")
		t.Logf("wrong password: %s", r.Reason)
		d.waitUntil(t, 20*time.Second, "a retry", func() bool { return d.metricAtLeast("platback_startup_check_failures_total", 2) })
		assert.Equal(t, before, objectKeys(t, s3, bucket), "nothing written, no init")
		assert.NotContains(t, d.logs.String()+r.Reason, wrong)

		putSecret(t, vault, "stackback_"+bucket, right, user, key)
		d.waitUntil(t, 20*time.Second, "recovery", checkOK(d))
		d.waitHealth(t, 2*time.Second, true, "no run yet")
		assert.Equal(t, before, objectKeys(t, s3, bucket))
	})

	t.Run("another app's credentials: refused, nothing written", func(t *testing.T) {
		t.Parallel()
		bucket, _, _ := provision(t, "mine", "pw-"+vaultbed.Random(6))
		other := dockerbed.UniqueName("outage-theirs")
		s3.MakeBucket(t, other)
		h := sidecar(t, vault.Addr, bucket, vault.SecretID, map[string]string{"RESTIC_REPOSITORY": s3.RepoURL(other, "")})
		d := h.startDaemon(t, checkFlags...)
		r := d.waitHealth(t, 20*time.Second, false, "start-up check failing since", "access denied", "not allowed to use it")
		t.Logf("other app's bucket: %s", r.Reason)
		assert.Empty(t, objectKeys(t, s3, other))
	})

	t.Run("bucket missing, may be created: the check creates nothing, the first run does", func(t *testing.T) {
		t.Parallel()
		bucket := dockerbed.UniqueName("outage-newbucket")
		putSecret(t, vault, "stackback_"+bucket, "pw-"+vaultbed.Random(6), s3.AccessKey, s3.SecretKey) // admin-grade keys
		h := sidecar(t, vault.Addr, bucket, vault.SecretID, nil)
		d := h.startDaemon(t, checkFlags...)
		d.waitUntil(t, 20*time.Second, "the start-up check", checkOK(d))
		assert.Contains(t, d.logs.String(), `bucket="missing: the first run creates it"`)
		exists, err := s3.Client.BucketExists(context.Background(), bucket)
		require.NoError(t, err)
		assert.False(t, exists, "the start-up check creates nothing")

		code, out := h.runOnce(t, nil) // the project has no container: the run fails after EnsureRepo
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "nothing to back up")
		assert.Contains(t, objectKeys(t, s3, bucket), "repo/config", "the run created the bucket and the repository")
	})

	t.Run("bucket missing, per-app credentials may not create it", func(t *testing.T) {
		t.Parallel()
		_, user, key := provision(t, "appbucket", "pw")
		missing := dockerbed.UniqueName("outage-missing")
		putSecret(t, vault, "stackback_"+missing, "pw-"+vaultbed.Random(6), user, key)
		d := sidecar(t, vault.Addr, missing, vault.SecretID, nil).startDaemon(t, checkFlags...)
		r := d.waitHealth(t, 20*time.Second, false, "either the bucket does not exist", "not allowed to use it", "create the bucket with admin credentials")
		t.Logf("missing bucket: %s", r.Reason)
	})

	t.Run("MinIO down at start-up, then back", func(t *testing.T) {
		t.Parallel()
		bucket, _, _ := provision(t, "s3down", "pw-"+vaultbed.Random(6))
		proxy := newTCPProxy(t, s3.Endpoint)
		h := sidecar(t, vault.Addr, bucket, vault.SecretID, map[string]string{"RESTIC_REPOSITORY": "s3:http://" + proxy.addr + "/" + bucket + "/repo"})
		d := h.startDaemon(t, checkFlags...)
		r := d.waitHealth(t, 30*time.Second, false, "start-up check failing since", proxy.addr, "connection refused")
		t.Logf("MinIO down: %s", r.Reason)
		proxy.up(t)
		took := d.waitUntil(t, 30*time.Second, "recovery", checkOK(d))
		t.Logf("recovered %s after MinIO came back", took.Round(time.Millisecond))
	})

	t.Run("S3 endpoint that never answers: each attempt ends at its deadline", func(t *testing.T) {
		t.Parallel()
		bucket, _, _ := provision(t, "silent", "pw-"+vaultbed.Random(6))
		silent := silentEndpoint(t)
		h := sidecar(t, vault.Addr, bucket, vault.SecretID, map[string]string{"RESTIC_REPOSITORY": "s3:http://" + silent + "/" + bucket})
		start := time.Now()
		d := h.startDaemon(t, "--check-retry", "1s", "--check-timeout", "3s")
		r := d.waitHealth(t, 15*time.Second, false, "start-up check failing since", "no answer from S3 endpoint "+silent+" before the deadline")
		t.Logf("first attempt failed after %s: %s", time.Since(start).Round(time.Millisecond), r.Reason)
		assert.Less(t, time.Since(start), 10*time.Second)
		d.waitUntil(t, 15*time.Second, "a second attempt", func() bool { return d.metricAtLeast("platback_startup_check_failures_total", 2) })
		assert.False(t, d.exited(), "an outage never stops the daemon")
	})

	// Case 13: an expiration rule is a danger, not a failure: a metric, a
	// warning in every run's result and in plan.
	t.Run("lifecycle expiration rule", func(t *testing.T) {
		t.Parallel()
		bucket, _, _ := provision(t, "ilm", "pw-"+vaultbed.Random(6))
		require.NoError(t, s3.Client.SetBucketLifecycle(context.Background(), bucket, &lifecycle.Configuration{Rules: []lifecycle.Rule{
			{ID: "logs", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "logs/"}, Expiration: lifecycle.Expiration{Days: 7}},
			{ID: "delete-after-30-days", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 30}},
		}}))
		h := sidecar(t, vault.Addr, bucket, vault.SecretID, nil)
		d := h.startDaemon(t, checkFlags...)
		d.waitUntil(t, 20*time.Second, "the start-up check", checkOK(d))
		assert.Equal(t, "1", d.metric("platback_bucket_expiration_rules", ""), "the rule on logs/ does not count")
		assert.Equal(t, "1", d.metric("platback_bucket_lifecycle_readable", ""))
		assert.Contains(t, d.logs.String(), "REPOSITORY AT RISK")

		plan := h.command(t, nil, "plan")
		assert.Equal(t, 0, plan.code, plan.out)
		assert.Contains(t, plan.out, `warning: REPOSITORY AT RISK: bucket "`+bucket+`": lifecycle rule "delete-after-30-days" expires objects after 30 days (filter: every object), which can match`)
		assert.NotContains(t, plan.out, `rule "logs"`)

		code, out := h.runOnce(t, nil)
		assert.Equal(t, 1, code, "no container in the project")
		assert.Contains(t, out, "warning: REPOSITORY AT RISK")

		// The rule removed: the next run says so.
		require.NoError(t, s3.Client.SetBucketLifecycle(context.Background(), bucket, &lifecycle.Configuration{Rules: []lifecycle.Rule{
			{ID: "logs", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "logs/"}, Expiration: lifecycle.Expiration{Days: 7}}}}))
		code, out = h.runOnce(t, nil)
		assert.Equal(t, 1, code)
		assert.NotContains(t, out, "REPOSITORY AT RISK")
		d.waitUntil(t, 5*time.Second, "the run's lifecycle", func() bool { return d.metric("platback_bucket_expiration_rules", "") == "0" })

		// Without credentials, plan says the rules were not checked.
		down := newTCPProxy(t, "127.0.0.1:1")
		plan = h.command(t, map[string]string{"VAULT_ADDR": "http://" + down.addr}, "plan")
		assert.Equal(t, 0, plan.code, plan.out)
		assert.Contains(t, plan.out, "warning: the S3 bucket's lifecycle rules were not checked")
		assert.Contains(t, plan.out, "Vault unavailable")
	})

	t.Run("plan: credentials that may not read the lifecycle configuration", func(t *testing.T) {
		t.Parallel()
		bucket := dockerbed.UniqueName("outage-ilmdenied")
		s3.MakeBucket(t, bucket)
		user, key := "user-"+bucket, "key-"+vaultbed.Random(8)
		denyLifecycleUser(t, s3, user, key, bucket)
		putSecret(t, vault, "stackback_"+bucket, "pw", user, key)
		plan := sidecar(t, vault.Addr, bucket, vault.SecretID, nil).command(t, nil, "plan")
		assert.Equal(t, 0, plan.code, plan.out)
		assert.Contains(t, plan.out, "warning: bucket lifecycle unknown: ")
		assert.Contains(t, plan.out, "Access Denied")
	})
}

// denyLifecycleUser adds a MinIO user that may use bucket but not read its
// lifecycle configuration.
func denyLifecycleUser(t *testing.T, s3 *testbed.MinIO, user, key, bucket string) {
	t.Helper()
	policy := `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::` + bucket + `","arn:aws:s3:::` + bucket + `/*"]},
		{"Effect":"Deny","Action":["s3:GetLifecycleConfiguration"],"Resource":["arn:aws:s3:::` + bucket + `"]}]}`
	ctx := context.Background()
	require.NoError(t, s3.Admin.AddCannedPolicy(ctx, "nolc-"+user, []byte(policy)))
	require.NoError(t, s3.Admin.AddUser(ctx, user, key))
	_, err := s3.Admin.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{"nolc-" + user}, User: user})
	require.NoError(t, err)
}

// commandRun is the outcome of a short sidecar command.
type commandRun struct {
	code int
	out  string
}

// command runs a sidecar command (not the daemon) with the sidecar's
// environment, overridden by extra.
func (h *hostSidecar) command(t *testing.T, extra map[string]string, args ...string) commandRun {
	t.Helper()
	code, out := h.run(t, extra, args...)
	return commandRun{code: code, out: out}
}

// restartableMinIO is a MinIO server that can be killed and started again
// on the same address with the same data.
type restartableMinIO struct {
	endpoint string
	dir      string
	proc     *testbed.Process
	client   *minio.Client
}

const (
	minioUser   = "platback-root"
	minioSecret = "platback-root-secret"
)

func startRestartableMinIO(t *testing.T) *restartableMinIO {
	t.Helper()
	m := &restartableMinIO{dir: t.TempDir()}
	// Another test's server may take a free port before this one binds it.
	for attempt := 1; ; attempt++ {
		m.endpoint = "127.0.0.1:" + strconv.Itoa(testbed.FreePort(t))
		err := m.launch(t)
		if errors.Is(err, testbed.ErrPortTaken) && attempt < 3 {
			continue
		}
		require.NoError(t, err)
		break
	}
	var err error
	m.client, err = minio.New(m.endpoint, &minio.Options{Creds: credentials.NewStaticV4(minioUser, minioSecret, "")})
	require.NoError(t, err)
	t.Cleanup(func() {
		if m.proc != nil {
			m.proc.Stop()
		}
	})
	return m
}

func (m *restartableMinIO) start(t *testing.T) {
	t.Helper()
	require.NoError(t, m.launch(t))
}

// launch starts the server on m.endpoint and waits until it answers.
func (m *restartableMinIO) launch(t *testing.T) error {
	t.Helper()
	p, err := testbed.Launch(testbed.Tool(t, "minio"),
		[]string{"server", "--quiet", "--address", m.endpoint, "--console-address", "127.0.0.1:" + strconv.Itoa(testbed.FreePort(t)), filepath.Join(m.dir, "data")},
		[]string{"MINIO_ROOT_USER=" + minioUser, "MINIO_ROOT_PASSWORD=" + minioSecret, "MINIO_BROWSER=off", "MINIO_UPDATE=off"},
		filepath.Join(m.dir, "minio-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".log"))
	if err != nil {
		return err
	}
	if err := p.WaitHTTP("http://"+m.endpoint+"/minio/health/ready", 60*time.Second, func(s int) bool { return s == 200 }); err != nil {
		p.Stop()
		return err
	}
	m.proc = p
	return nil
}

// kill ends the server with SIGKILL, as a crash or an OOM kill would.
func (m *restartableMinIO) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, syscall.Kill(-m.proc.Cmd.Process.Pid, syscall.SIGKILL))
	m.proc.Stop() // waits for the exit
	m.proc = nil
}

func (m *restartableMinIO) objectCount(prefix string) int {
	n := 0
	for o := range m.client.ListObjects(context.Background(), "outage", minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return -1
		}
		n++
	}
	return n
}

// randomFile writes n random bytes.
func randomFile(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	_, err = io.CopyN(f, rand.Reader, n)
	require.NoError(t, err)
}

// TestOutageRuns: runs while Vault or MinIO is away fail within their
// deadline with an error naming the cause, the daemon shows it and keeps
// running, and the next run succeeds once the server is back; after MinIO
// was killed in the middle of an upload the repository checks clean and
// restores byte for byte.
func TestOutageRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sidecar against Docker, Vault, MinIO and restic")
	}
	cli := dockerbed.Client(t)
	workerImage := buildSidecarImage(t, cli)
	bin := buildDaemonBinary(t)
	s3 := startRestartableMinIO(t)
	vault := vaultbed.Start(t)
	key := unsealKey(t)
	require.NoError(t, s3.client.MakeBucket(context.Background(), "outage", minio.MakeBucketOptions{}))
	password := "outage-pass-" + vaultbed.Random(6)
	putSecret(t, vault, "stackback_outage", password, minioUser, minioSecret)
	proxy := newTCPProxy(t, strings.TrimPrefix(vault.Addr, "http://"))
	proxy.up(t)

	project, dir := volumeStack(t, "outage", map[string][]byte{"small.txt": []byte("small file\n")})
	randomFile(t, filepath.Join(dir, "first.bin"), 8<<20)
	env := vaultSidecarEnv(t, "http://"+proxy.addr, vault.RoleID, vault.SecretID, "stackback_outage")
	env["VAULT_RETRY_TIMEOUT"] = "3s"
	env["RESTIC_REPOSITORY"] = "s3:http://" + s3.endpoint + "/outage/repo"
	env["PLATBACK_WORKER_IMAGE"] = workerImage
	env["BACKUP_TIMEOUT"] = "2m"
	h := newHostSidecar(t, bin, project, env)
	d := h.startDaemon(t, checkFlags...)
	d.waitUntil(t, 20*time.Second, "the start-up check", func() bool { return d.metric("platback_startup_check_ok", "") == "1" })

	timed := func(extra map[string]string) (int, string, time.Duration) {
		start := time.Now()
		code, out := h.runOnce(t, extra)
		return code, out, time.Since(start)
	}
	code, out, _ := timed(nil)
	require.Equal(t, 0, code, out)
	d.waitHealth(t, 5*time.Second, true, "last run succeeded")

	t.Run("Vault stopped", func(t *testing.T) {
		proxy.down()
		code, out, took := timed(nil)
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, "VAULT_ADDR")
		assert.Contains(t, out, "connection refused")
		assert.Less(t, took, 20*time.Second, "VAULT_RETRY_TIMEOUT bounds the wait")
		r := d.waitHealth(t, 5*time.Second, false, "last run failed", "Vault unavailable")
		t.Logf("run-once failed after %s; daemon: %s", took.Round(time.Millisecond), r.Reason)
		proxy.up(t)
		code, out, _ = timed(nil)
		require.Equal(t, 0, code, out)
		d.waitHealth(t, 5*time.Second, true, "last run succeeded")
	})

	t.Run("Vault sealed", func(t *testing.T) {
		vault.Seal(t)
		code, out, took := timed(nil)
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, "sealed")
		assert.Less(t, took, 20*time.Second)
		d.waitHealth(t, 5*time.Second, false, "last run failed", "sealed")
		_, err := vault.Root.Sys().Unseal(key)
		require.NoError(t, err)
		code, out, _ = timed(nil)
		require.Equal(t, 0, code, out)
		d.waitHealth(t, 5*time.Second, true, "last run succeeded")
	})

	t.Run("MinIO stopped", func(t *testing.T) {
		s3.kill(t)
		code, out, took := timed(nil)
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, s3.endpoint)
		assert.Less(t, took, 30*time.Second)
		r := d.waitHealth(t, 5*time.Second, false, "last run failed", s3.endpoint)
		t.Logf("run-once failed after %s; daemon: %s", took.Round(time.Millisecond), r.Reason)
		s3.start(t)
		code, out, _ = timed(nil)
		require.Equal(t, 0, code, out)
		d.waitHealth(t, 5*time.Second, true, "last run succeeded")
	})

	t.Run("MinIO killed in the middle of an upload", func(t *testing.T) {
		randomFile(t, filepath.Join(dir, "second.bin"), 160<<20)
		packs := s3.objectCount("repo/data/")
		type result struct {
			code int
			out  string
			took time.Duration
		}
		done := make(chan result, 1)
		go func() {
			code, out, took := timed(nil)
			done <- result{code, out, took}
		}()
		d.waitUntil(t, 60*time.Second, "the upload of a new pack", func() bool { return s3.objectCount("repo/data/") > packs })
		s3.kill(t)
		killed := time.Now()
		time.Sleep(2 * time.Second) // the outage
		s3.start(t)
		var first result
		select {
		case first = <-done:
		case <-time.After(3 * time.Minute):
			t.Fatal("the run did not end within its deadline")
		}
		t.Logf("the interrupted run ended %s after the kill with exit %d", time.Since(killed).Round(time.Millisecond), first.code)
		if first.code != 0 {
			d.waitHealth(t, 5*time.Second, false, "last run failed")
		}
		code, out, _ := timed(nil)
		require.Equal(t, 0, code, out)
		d.waitHealth(t, 5*time.Second, true, "last run succeeded")

		repo, err := backup.Open(context.Background(), env["RESTIC_REPOSITORY"], backup.Options{Restic: testbed.Tool(t, "restic"), CacheDir: t.TempDir(),
			Env: map[string]string{"RESTIC_PASSWORD": password, "AWS_ACCESS_KEY_ID": minioUser, "AWS_SECRET_ACCESS_KEY": minioSecret}})
		require.NoError(t, err)
		require.NoError(t, repo.Unlock(context.Background()))
		require.NoError(t, repo.Check(context.Background(), backup.CheckOptions{}), "restic check is clean")
		into := t.TempDir()
		_, err = repo.Restore(context.Background(), "latest", into, backup.RestoreOptions{Filter: backup.Filter{Paths: []string{"/volumes/app/data"}}})
		require.NoError(t, err)
		for _, name := range []string{"small.txt", "first.bin", "second.bin"} {
			want, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(into, "volumes", "app", "data", name))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(want, got), "%s restored byte for byte", name)
		}
	})
	assert.False(t, d.exited())
}
