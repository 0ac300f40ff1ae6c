package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/composebed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/testbed/vaultbed"
)

// leakCompose is the stack TestNoSecretLeaks backs up: a volume whose
// container is stopped during the backup, a postgres database, a
// "database" whose server does not run (its dump fails), and the sidecar as
// the README shows it — secrets from Vault, host networking (Vault and
// MinIO listen on 127.0.0.1), debug logs, and Docker's health check of the
// image run every 2 s so its output lands in `docker inspect`.
const leakCompose = `
services:
  app:
    image: ${APP_IMAGE}
    entrypoint: ["sleep", "infinity"]
    labels:
      stack-back.volumes: "true"
      stack-back.volumes.stop-during-backup: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - data:/data
  postgres:
    image: ${PG_IMAGE}
    environment:
      POSTGRES_USER: leak
      POSTGRES_PASSWORD: ${PG_PASSWORD}
      POSTGRES_DB: leakdb
    labels:
      stack-back.postgres: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - pgdata:/var/lib/postgresql/data
  broken:
    image: ${PG_IMAGE}
    entrypoint: ["sleep", "infinity"]
    environment:
      POSTGRES_PASSWORD: ${BROKEN_PASSWORD}
    labels:
      stack-back.postgres: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
  backup:
    image: ${SIDECAR_IMAGE}
    network_mode: host
    environment:
      RESTIC_REPOSITORY: ${RESTIC_REPOSITORY}
      BACKUP_CRON: ${BACKUP_CRON}
      VAULT_ADDR: ${VAULT_ADDR}
      VAULT_ROLE_ID_FILE: /run/secrets/role_id
      VAULT_SECRET_ID_FILE: /run/secrets/secret_id
      VAULT_SECRET_PATH: ${VAULT_SECRET_PATH}
      METRICS_LISTEN: ${METRICS_LISTEN}
      LOG_LEVEL: debug
      LOG_FORMAT: json
      STOP_TIMEOUT: 2s
      CHECK_AFTER_BACKUP: "true"
    healthcheck:
      interval: 2s
      timeout: 10s
    labels:
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - cache:/cache
      - ${SECRET_DIR}:/run/secrets:ro
volumes:
  data: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  pgdata: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  cache: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
networks:
  default: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
`

// Names of the secrets restic itself is given in its environment.
var leakResticCreds = []string{"restic password", "wrong restic password", "S3 access key", "S3 secret key", "wrong S3 secret key"}

// TestNoSecretLeaks runs the sidecar with distinctive secrets and searches
// everything it exposes for them: its logs and the relayed logs of its
// workers, `docker inspect` of its containers and of the execs it starts,
// Docker's events, the command lines and environments of its processes, the
// files it writes, /metrics, /healthz, health-check output and the error
// texts of failed runs. The daemon starts with a wrong restic password in
// Vault (its start-up check fails), then run-once runs with that password,
// with a wrong S3 secret key, and with the right credentials: the volume is
// backed up with its container stopped, the postgres dump is saved and the
// dump of the database whose server does not run fails.
//
// What the processes may hold: restic gets the repository password and the
// S3 keys in its environment (that is how restic takes them); the database
// clients run in the database container get that database's password in
// their environment (PGPASSWORD); nothing else may hold any secret, in its
// environment or its command line.
func TestNoSecretLeaks(t *testing.T) {
	t.Parallel() // a stack of its own; the package runs two at a time
	if testing.Short() {
		t.Skip("runs a compose stack with Vault and MinIO")
	}
	began := time.Now()
	// The processes of containers are read in this machine's /proc.
	require.Zero(t, os.Geteuid(), "TestNoSecretLeaks reads /proc/<pid>/environ of container processes: run it as root on the Docker host")
	ctx := context.Background()
	cli := dockerbed.Client(t)
	dbs := dbimage.ForTest(t, cli)
	sidecarImage := buildSidecarImage(t, cli)
	s3 := testbed.StartMinIO(t)
	vault := vaultbed.Start(t)
	proxy := startLeakVaultProxy(t, vault.Addr)

	project := dockerbed.UniqueName("leak")
	sec := map[string]string{
		// '+', '/', '=', '@' and ':' have URL-encoded forms, as real S3 keys do.
		"restic password":       "rpw+" + vaultbed.Random(10) + "/=@:" + vaultbed.Random(4),
		"wrong restic password": "wpw+" + vaultbed.Random(10) + "/=@:" + vaultbed.Random(4),
		"S3 access key":         "PBLK" + strings.ToUpper(vaultbed.Random(7)), // MinIO: at most 20 characters
		"S3 secret key":         "sk+/" + vaultbed.Random(14),                 // MinIO: at most 40 characters
		"wrong S3 secret key":   "wk+/" + vaultbed.Random(14),
		"postgres password":     "pg+/" + vaultbed.Random(10) + "@:",
		"broken db password":    "bk+/" + vaultbed.Random(10) + "@:",
		"Vault role_id":         vault.RoleID,
		"Vault secret_id":       vault.SecretID,
	}

	// Provisioning: a bucket and a least-privilege user for the app, the
	// repository made with the right password (a wrong password must never
	// make the sidecar create one), then the WRONG password in Vault for the
	// daemon's start-up check and the first run-once.
	bucket := "restic-" + project
	s3.MakeBucket(t, bucket)
	s3.AddAppUser(t, sec["S3 access key"], sec["S3 secret key"], bucket)
	repoURL := s3.RepoURL(bucket, "")
	repo, err := backup.Open(ctx, repoURL, backup.Options{Restic: testbed.Tool(t, "restic"), Host: project, CacheDir: t.TempDir(),
		Env: map[string]string{"RESTIC_PASSWORD": sec["restic password"], "AWS_ACCESS_KEY_ID": sec["S3 access key"], "AWS_SECRET_ACCESS_KEY": sec["S3 secret key"]}})
	require.NoError(t, err)
	_, err = repo.EnsureRepo(ctx)
	require.NoError(t, err)
	secretName := "stackback_" + project
	putSecret := func(password, secretKey string) {
		vault.PutKV2(t, vaultbed.KV2Mount, secretName, map[string]any{
			"password": password, "access_key": sec["S3 access key"], "secret_key": secretKey})
	}
	putSecret(sec["wrong restic password"], sec["S3 secret key"])
	secretDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(secretDir, "role_id"), []byte(vault.RoleID), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(secretDir, "secret_id"), []byte(vault.SecretID), 0o644))

	metricsPort := testbed.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(metricsPort)
	st := composebed.Up(t, cli, project, leakCompose, map[string]string{
		"APP_IMAGE": dbs.Base, "PG_IMAGE": dbs.Postgres, "SIDECAR_IMAGE": sidecarImage,
		"PG_PASSWORD": sec["postgres password"], "BROKEN_PASSWORD": sec["broken db password"],
		"RESTIC_REPOSITORY": repoURL, "BACKUP_CRON": "0 3 1 1 *", "VAULT_ADDR": proxy.URL,
		"VAULT_SECRET_PATH": vaultbed.KV2Mount + "/data/" + secretName, "METRICS_LISTEN": "127.0.0.1:" + strconv.Itoa(metricsPort),
		"SECRET_DIR": secretDir,
	}, "app", "postgres", "broken")
	app, pg := st.Container("app", 1), st.Container("postgres", 1)
	require.NoError(t, dbimage.WaitReady(ctx, cli, pg, dbimage.Postgres))
	sh(t, cli, app, "head -c 200000 /dev/urandom > /data/blob && echo hello > /data/a.txt")
	sh(t, cli, pg, `psql -v ON_ERROR_STOP=1 -U leak -d leakdb -c "CREATE TABLE t(x int); INSERT INTO t VALUES (1);"`)

	sampler := startLeakSampler(t, cli, project)

	// The daemon (no scheduled run during the test): its start-up check
	// fails on the wrong password.
	st.Must("up", "-d", "backup")
	side := st.Container("backup", 1)
	t.Logf("stack %s up after %s", project, time.Since(began).Round(time.Second))
	waitFor(t, time.Minute, "the daemon's start-up check to fail", func() bool {
		return strings.Contains(get(base+"/healthz"), backup.ErrWrongPassword.Error())
	})
	texts := map[string]string{} // surface → text
	collectEndpoints := func(when string) {
		texts["endpoint: /metrics "+when] = get(base + "/metrics")
		texts["endpoint: /healthz "+when] = get(base + "/healthz")
		code, out := execIn(t, cli, side, nil, "sidecar", "health")
		texts["health check: `sidecar health` "+when] = fmt.Sprintf("exit %d: %s", code, out)
	}
	collectEndpoints("after the daemon's failed start-up check")

	// run-once with the wrong password: the error text of a failed open.
	code, out, logs := execSplit(t, cli, side, nil, "sidecar", "run-once", "--json")
	assert.Equal(t, 1, code, out+logs)
	assert.Contains(t, out, backup.ErrWrongPassword.Error())
	texts["run output: run-once --json (wrong password), stdout"], texts["log: run-once --json (wrong password), stderr"] = out, logs

	// run-once with a wrong S3 secret key: the error text of a refused S3 request.
	putSecret(sec["restic password"], sec["wrong S3 secret key"])
	code, out, logs = execSplit(t, cli, side, nil, "sidecar", "run-once", "--json")
	assert.Equal(t, 1, code, out+logs)
	texts["run output: run-once --json (wrong S3 secret key), stdout"], texts["log: run-once --json (wrong S3 secret key), stderr"] = out, logs
	var res struct{ Error string }
	_ = json.Unmarshal([]byte(out), &res)
	t.Logf("with a wrong S3 secret key: %s", res.Error)

	// run-once with the right password: the volume (its container stopped)
	// and the postgres dump are backed up, the broken database's dump fails.
	putSecret(sec["restic password"], sec["S3 secret key"])
	code, out, logs = execSplit(t, cli, side, nil, "sidecar", "plan", "--json")
	texts["run output: sidecar plan --json"] = out + logs
	assert.Equal(t, 0, code, out+logs)
	code, out, logs = execSplit(t, cli, side, nil, "sidecar", "run-once")
	texts["run output: run-once (failed dump), stdout"], texts["log: run-once (failed dump), stderr"] = out, logs
	assert.Equal(t, 1, code, "the failed dump fails the run:\n%s", out)
	assert.Regexp(t, `/volumes/app/data +volume +[0-9a-f]{8} `, out)
	assert.Regexp(t, `/databases/postgres/all_databases.sql +postgres +[0-9a-f]{8} `, out)
	assert.Regexp(t, `/databases/broken/all_databases.sql +postgres +.*pg_dumpall`, out)
	collectEndpoints("after the run-once runs")

	// The daemon's shutdown (it revokes its token) is logged too.
	st.Must("stop", "backup")
	sampler.stop()
	texts["log: the sidecar container's (the daemon's)"] = containerLogs(t, cli, side)
	files := leakContainerFiles(t, cli, side)
	// In the bucket: restic's files are encrypted; anything else is read.
	for obj := range s3.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, obj.Err)
		top, _, _ := strings.Cut(obj.Key, "/")
		if obj.Key == "config" || slices.Contains([]string{"keys", "data", "index", "snapshots", "locks"}, top) {
			continue
		}
		o, err := s3.Client.GetObject(ctx, bucket, obj.Key, minio.GetObjectOptions{})
		require.NoError(t, err)
		b, err := io.ReadAll(o)
		require.NoError(t, err)
		files["bucket object: "+obj.Key] = string(b)
	}

	// Workers' logs reach the sidecar's log.
	workers := sampler.workerIDs()
	require.NotEmpty(t, workers, "the volume was backed up in a worker container")
	for _, id := range workers {
		assert.Contains(t, texts["log: run-once (failed dump), stderr"], `"worker":"`+id[:12]+`"`,
			"worker %s's log lines are relayed into the sidecar's log", id[:12])
	}

	chk := &leakCheck{t: t}
	for _, name := range slices.Sorted(maps.Keys(sec)) {
		chk.add(name, sec[name])
	}
	toks := proxy.seen(t)
	for i, tok := range toks {
		chk.add(fmt.Sprintf("Vault token #%d (accessor %s)", i+1, tok.accessor), tok.token)
	}
	var kinds []string
	for _, tok := range toks {
		prefix, _, _ := strings.Cut(tok.token, ".")
		kinds = append(kinds, fmt.Sprintf("%s.… (%d characters, accessor %s)", prefix, len(tok.token), tok.accessor))
	}
	t.Logf("%d Vault token(s) were issued to or used by the sidecar: %s", len(toks), strings.Join(kinds, "; "))
	// Controls: the tokens are the sidecar's (it logs their accessors), and
	// the forms find a secret however a longer text encodes it.
	var output string
	for _, text := range texts {
		output += text
	}
	require.NotEmpty(t, toks, "the sidecar's Vault tokens were seen")
	for _, tok := range toks {
		assert.NotEmpty(t, tok.accessor, "a token the sidecar sent is one it got from a login")
		assert.Contains(t, output, tok.accessor, "the sidecar logs the accessor of the token it got")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for _, pre := range []string{"", "a", "ab"} {
			require.True(t, chk.holds(enc.EncodeToString([]byte(pre+sec["S3 secret key"]+"tail")), "S3 secret key"))
		}
	}
	require.True(t, chk.holds("s3:"+url.QueryEscape(sec["S3 access key"]+":"+sec["S3 secret key"])+"@host", "S3 secret key"))

	for _, where := range slices.Sorted(maps.Keys(texts)) {
		chk.scan(where, texts[where])
	}
	for _, where := range slices.Sorted(maps.Keys(files)) {
		chk.scan(where, files[where])
	}
	sampler.scan(chk)
	chk.summary(time.Since(began))
}

// leakSecret is one value no surface may show, with the forms it could
// take there.
type leakSecret struct {
	name  string
	forms [][2]string // how, needle
}

// leakCheck searches texts for secrets and reports each leak as a test
// error naming the surface, the secret and its form (never the value).
type leakCheck struct {
	t       *testing.T
	secrets []leakSecret
	counts  map[string]int // surface kind → texts searched
	bytes   int
	leaks   map[string]*leakFound // by surface and secret
}

type leakFound struct {
	what    string // surface, secret, form
	snippet string
	texts   int // how many texts of the surface hold it
}

func (c *leakCheck) add(name, value string) {
	if value == "" {
		c.t.Fatalf("empty secret %s", name)
	}
	c.secrets = append(c.secrets, leakSecret{name: name, forms: leakForms(value)})
}

// scan reports every secret in text except the allowed ones.
func (c *leakCheck) scan(where, text string, allowed ...string) {
	c.t.Helper()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	kind, _, _ := strings.Cut(where, ":")
	c.counts[kind]++
	c.bytes += len(text)
	for _, s := range c.secrets {
		if slices.Contains(allowed, s.name) {
			continue
		}
		for _, f := range s.forms {
			i := strings.Index(text, f[1])
			if i < 0 {
				continue
			}
			if c.leaks == nil {
				c.leaks = map[string]*leakFound{}
			}
			key := where + "\x00" + s.name
			if l := c.leaks[key]; l != nil {
				l.texts++
				break
			}
			lo, hi := max(0, i-80), min(len(text), i+len(f[1])+80)
			c.leaks[key] = &leakFound{what: fmt.Sprintf("%s holds the %s (%s form)", where, s.name, f[0]),
				snippet: strings.ReplaceAll(text[lo:hi], f[1], "<"+s.name+">"), texts: 1}
			break
		}
	}
}

// holds reports whether text holds one of the named secrets in any form.
func (c *leakCheck) holds(text string, names ...string) bool {
	for _, s := range c.secrets {
		if slices.Contains(names, s.name) && slices.ContainsFunc(s.forms, func(f [2]string) bool { return strings.Contains(text, f[1]) }) {
			return true
		}
	}
	return false
}

func (c *leakCheck) summary(took time.Duration) {
	kinds := slices.Sorted(maps.Keys(c.counts))
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%d× %s", c.counts[k], k))
	}
	texts := 0
	for _, n := range c.counts {
		texts += n
	}
	c.t.Logf("searched %d texts (%d bytes) for %d secrets in all their forms in %s; %d leak(s):\n  %s",
		texts, c.bytes, len(c.secrets), took.Round(time.Second), len(c.leaks), strings.Join(parts, "\n  "))
	for _, k := range slices.Sorted(maps.Keys(c.leaks)) {
		l := c.leaks[k]
		c.t.Errorf("LEAK: %s, in %d text(s): …%q…", l.what, l.texts, l.snippet)
	}
}

// leakForms is value as it could appear (testbed.SecretForms), as (how,
// needle) pairs.
func leakForms(value string) [][2]string {
	var forms [][2]string
	for _, f := range testbed.SecretForms(value) {
		forms = append(forms, [2]string{f.How, f.Needle})
	}
	return forms
}

// leakVaultProxy stands between the sidecar and Vault and records every
// token that passes: the tokens logins and renewals answer with, and those
// the sidecar sends. The test talks to Vault directly, so every token it
// sees is the sidecar's. It works with any server (a file audit device
// would need Vault: OpenBao refuses to create one through its API).
type leakVaultProxy struct {
	URL    string
	mu     sync.Mutex
	tokens map[string]string // token → accessor ("" when only sent)
	logins int
}

func startLeakVaultProxy(t *testing.T, vaultAddr string) *leakVaultProxy {
	t.Helper()
	target, err := url.Parse(vaultAddr)
	require.NoError(t, err)
	p := &leakVaultProxy{tokens: map[string]string{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	director := rp.Director
	rp.Director = func(r *http.Request) {
		director(r)
		r.Header.Del("Accept-Encoding") // bodies in clear, to be read
		if tok := r.Header.Get("X-Vault-Token"); tok != "" {
			p.add(tok, "", false)
		}
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var sec struct {
			Auth *struct {
				ClientToken string `json:"client_token"`
				Accessor    string `json:"accessor"`
			} `json:"auth"`
		}
		if json.Unmarshal(body, &sec) == nil && sec.Auth != nil && sec.Auth.ClientToken != "" {
			p.add(sec.Auth.ClientToken, sec.Auth.Accessor, strings.HasSuffix(resp.Request.URL.Path, "/login"))
		}
		return err
	}
	srv := httptest.NewServer(rp) // on 127.0.0.1
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *leakVaultProxy) add(token, accessor string, login bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if accessor != "" || p.tokens[token] == "" {
		p.tokens[token] = accessor
	}
	if login {
		p.logins++
	}
}

// leakToken is a Vault token the sidecar got.
type leakToken struct{ token, accessor string }

// seen returns the tokens the sidecar got or used.
func (p *leakVaultProxy) seen(t *testing.T) []leakToken {
	p.mu.Lock()
	defer p.mu.Unlock()
	assert.GreaterOrEqual(t, p.logins, 3, "the daemon and each run-once log in with AppRole")
	var out []leakToken
	for _, tok := range slices.Sorted(maps.Keys(p.tokens)) {
		out = append(out, leakToken{token: tok, accessor: p.tokens[tok]})
	}
	return out
}

// leakContainerFiles returns every file of the stopped sidecar container
// that is not in its image, keyed by a description: the cache volume, /tmp,
// and each file of its writable layer (`docker diff`), leaving out the
// mounts the user gives it (the Docker socket, the secrets directory).
func leakContainerFiles(t *testing.T, cli *client.Client, id string) map[string]string {
	t.Helper()
	ctx := context.Background()
	files := map[string]string{}
	ins, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	var mounts []string
	for _, m := range ins.Container.Mounts {
		mounts = append(mounts, m.Destination)
	}
	under := func(p string, dirs []string) bool {
		return slices.ContainsFunc(dirs, func(d string) bool { return p == d || strings.HasPrefix(p, d+"/") })
	}
	// read copies path p out of the container: the whole tree, or only p
	// itself when it is a regular file (the diff lists changed files one by one).
	read := func(p string, tree bool) {
		res, err := cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: p})
		if err != nil {
			t.Logf("copy %s from the sidecar: %v", p, err)
			return
		}
		defer res.Content.Close()
		tr := tar.NewReader(res.Content)
		for {
			h, err := tr.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("read %s from the sidecar: %v", p, err)
				}
				return
			}
			name := path.Join(path.Dir(p), h.Name)
			if h.Typeflag != tar.TypeReg || !tree && name != p {
				continue
			}
			b, _ := io.ReadAll(io.LimitReader(tr, 256<<20))
			kind := "sidecar file"
			if under(name, []string{"/cache"}) {
				kind = "cache volume file"
			}
			files[kind+": "+name] = string(b)
		}
	}
	trees := []string{"/cache", "/tmp"}
	for _, p := range trees {
		read(p, true)
	}
	diff, err := cli.ContainerDiff(ctx, id, client.ContainerDiffOptions{})
	require.NoError(t, err)
	for _, ch := range diff.Changes {
		if ch.Kind != container.ChangeDelete && !under(ch.Path, trees) && !under(ch.Path, mounts) {
			read(ch.Path, false)
		}
	}
	var inCache int
	for k := range files {
		if strings.HasPrefix(k, "cache volume") {
			inCache++
		}
	}
	assert.Positive(t, inCache, "the sidecar wrote its state and restic's cache to /cache")
	return files
}

// leakSampler watches, while the sidecar runs, what exists only for a
// moment: the worker containers (docker inspect, their own logs and
// writable layers), the processes of the sidecar, its workers and the
// databases it dumps (/proc/<pid>/cmdline and environ), the execs it
// starts (docker's exec inspect) and Docker's events.
type leakSampler struct {
	t       *testing.T
	cli     *client.Client
	project string
	engine  *http.Client // raw engine API: exec inspect shows the command, the client library does not
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once

	mu         sync.Mutex
	containers map[string]*leakContainer
	procs      []*leakProc
	files      map[string]string // where → content
	execs      map[string]string // exec id → inspect JSON
	events     []string
	notes      []string
}

type leakContainer struct {
	id, role string // role: sidecar, worker, database, or "" (not this stack's)
	service  string
	dirs     map[string]string   // on this machine: its writable layer ("/") and the sidecar's cache volume ("/cache")
	inspects []string            // each distinct `docker inspect`
	logs     bytes.Buffer        // a worker's own output (docker logs)
	seen     map[string]struct{} // files of its writable layer already read
}

type leakProc struct {
	c      *leakContainer
	pid    int
	states []leakProcState // distinct, in order
}

// leakProcState is a process as read at one moment. A process changes
// program at execve (a fork of the sidecar becomes restic; restic's fork
// becomes `sidecar dump`, which re-executes itself), so each state has
// its own executable.
type leakProcState struct {
	exe, cmdline, environ string
	at                    time.Time // first read
}

func (st leakProcState) args() []string {
	return strings.Split(strings.TrimRight(st.cmdline, "\x00"), "\x00")
}

func (st leakProcState) isRestic() bool { return path.Base(st.exe) == "restic" }

func (st leakProcState) isDump() bool {
	a := st.args()
	return path.Base(st.exe) == "sidecar" && len(a) > 1 && a[1] == "dump"
}

// holdsResticCreds reports whether the environment has restic's credentials.
func (st leakProcState) holdsResticCreds() bool {
	return strings.Contains("\x00"+st.environ, "\x00RESTIC_PASSWORD=") || strings.Contains("\x00"+st.environ, "\x00AWS_SECRET_ACCESS_KEY=")
}

func startLeakSampler(t *testing.T, cli *client.Client, project string) *leakSampler {
	ctx, cancel := context.WithCancel(context.Background())
	dial := cli.Dialer()
	s := &leakSampler{t: t, cli: cli, project: project, ctx: ctx, cancel: cancel,
		engine: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}},
		containers: map[string]*leakContainer{}, files: map[string]string{}, execs: map[string]string{}}
	t.Cleanup(s.stop)
	s.loop(25*time.Millisecond, s.sampleProcs())
	s.loop(150*time.Millisecond, s.sampleDocker)
	s.loop(200*time.Millisecond, s.sampleFiles)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ev := cli.Events(ctx, client.EventsListOptions{})
		for {
			select {
			case m := <-ev.Messages:
				b, _ := json.Marshal(m)
				s.mu.Lock()
				s.events = append(s.events, string(b))
				s.mu.Unlock()
			case <-ev.Err:
				return
			}
		}
	}()
	return s
}

func (s *leakSampler) loop(every time.Duration, f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			f()
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
}

func (s *leakSampler) stop() {
	s.once.Do(func() {
		time.Sleep(300 * time.Millisecond) // the last events and log lines on their way
		s.cancel()
		s.wg.Wait()
		s.engine.CloseIdleConnections()
	})
}

func (s *leakSampler) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

// container returns what the sampler knows of a container, inspecting it
// the first time: a worker of the project gets its logs followed. It is
// nil while the engine cannot tell (the container is being created or
// removed): the caller asks again.
func (s *leakSampler) container(id string) *leakContainer {
	s.mu.Lock()
	c, ok := s.containers[id]
	s.mu.Unlock()
	if ok {
		return c
	}
	ins, err := s.cli.ContainerInspect(s.ctx, id, client.ContainerInspectOptions{})
	if err != nil || ins.Container.Config == nil {
		return nil
	}
	c = &leakContainer{id: id, seen: map[string]struct{}{}}
	l := ins.Container.Config.Labels
	c.service = l[discover.ComposeServiceLabel]
	switch {
	case l[discover.WorkerLabel] == s.project:
		c.role = "worker"
	case l[discover.ComposeProjectLabel] == s.project && c.service == "backup":
		c.role = "sidecar"
	case l[discover.ComposeProjectLabel] == s.project && l["stack-back.postgres"] == "true":
		c.role = "database"
	}
	c.dirs = map[string]string{}
	if up := ins.Container.GraphDriver.Data["UpperDir"]; up != "" {
		c.dirs["/"] = up
	}
	for _, m := range ins.Container.Mounts {
		if c.role == "sidecar" && m.Destination == "/cache" && m.Source != "" {
			c.dirs["/cache"] = m.Source // the workers mount it too
		}
	}
	raw, _ := json.Marshal(ins.Container)
	c.inspects = append(c.inspects, string(raw))
	s.mu.Lock()
	if prev, ok := s.containers[id]; ok {
		s.mu.Unlock()
		return prev
	}
	s.containers[id] = c
	s.mu.Unlock()
	if c.role == "worker" {
		s.wg.Add(1)
		go s.followLogs(c)
	}
	if c.role != "" && c.dirs["/"] == "" {
		s.note("the %s container %s has no UpperDir (storage driver?): its writable layer was not sampled", c.role, id[:12])
	}
	return c
}

// followLogs keeps a worker's own output (`docker logs -f`), from the
// moment it is created until it has exited or is removed.
func (s *leakSampler) followLogs(c *leakContainer) {
	defer s.wg.Done()
	var best bytes.Buffer
	for s.ctx.Err() == nil {
		rc, err := s.cli.ContainerLogs(s.ctx, c.id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
		if err != nil {
			break // removed
		}
		var out bytes.Buffer
		_, _ = stdcopy.StdCopy(&out, &out, rc)
		rc.Close()
		if out.Len() >= best.Len() {
			best = out
		}
		ins, err := s.cli.ContainerInspect(s.ctx, c.id, client.ContainerInspectOptions{})
		if err != nil || ins.Container.State == nil || ins.Container.State.Status == container.StateExited || ins.Container.State.Status == container.StateDead {
			break
		}
		time.Sleep(20 * time.Millisecond) // created, not started yet: the stream ended at once
	}
	s.mu.Lock()
	c.logs.Write(best.Bytes())
	s.mu.Unlock()
}

// sampleDocker inspects the stack's containers and the sidecar's workers,
// and the execs in the sidecar and the databases.
func (s *leakSampler) sampleDocker() {
	var ids []string
	for _, label := range []string{discover.WorkerLabel + "=" + s.project, discover.ComposeProjectLabel + "=" + s.project} {
		list, err := s.cli.ContainerList(s.ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", label)})
		if err != nil {
			return
		}
		for _, it := range list.Items {
			ids = append(ids, it.ID)
		}
	}
	for _, id := range ids {
		c := s.container(id)
		if c == nil || c.role == "" {
			continue
		}
		ins, err := s.cli.ContainerInspect(s.ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			continue
		}
		raw, _ := json.Marshal(ins.Container)
		s.mu.Lock()
		if !slices.Contains(c.inspects, string(raw)) {
			c.inspects = append(c.inspects, string(raw))
		}
		s.mu.Unlock()
		for _, ex := range ins.Container.ExecIDs {
			s.mu.Lock()
			_, done := s.execs[ex]
			s.mu.Unlock()
			if done {
				continue
			}
			resp, err := s.engine.Get("http://docker/exec/" + ex + "/json")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.mu.Lock()
				s.execs[ex] = c.role + " " + c.id[:12] + ": " + string(b)
				s.mu.Unlock()
			}
		}
	}
}

// sampleFiles reads the new or changed files of the writable layers of
// the sidecar, its workers and the databases, and of the cache volume
// (temporary files included, while they exist).
func (s *leakSampler) sampleFiles() {
	s.mu.Lock()
	var cs []*leakContainer
	for _, c := range s.containers {
		if c.role != "" {
			cs = append(cs, c)
		}
	}
	s.mu.Unlock()
	for _, c := range cs {
		for _, at := range slices.Sorted(maps.Keys(c.dirs)) {
			dir := c.dirs[at]
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return nil
				}
				info, err := d.Info()
				if err != nil {
					return nil
				}
				key := fmt.Sprintf("%s %d %d", p, info.Size(), info.ModTime().UnixNano())
				if _, ok := c.seen[key]; ok {
					return nil
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return nil
				}
				c.seen[key] = struct{}{}
				rel, _ := filepath.Rel(dir, p)
				where := fmt.Sprintf("%s file (sampled): %s %s #%x", c.role, c.id[:12], path.Join(at, rel), sha256.Sum256(b))
				if at == "/cache" {
					where = "cache volume file (sampled): " + path.Join(at, rel) + fmt.Sprintf(" #%x", sha256.Sum256(b))
				}
				s.mu.Lock()
				s.files[where] = string(b)
				s.mu.Unlock()
				return nil
			})
		}
	}
}

var leakContainerID = regexp.MustCompile(`[0-9a-f]{64}`)

// sampleProcs returns the /proc sampler: each new process is placed in its
// container by its cgroup; the processes of the sidecar, its workers and
// the databases are read at every tick.
func (s *leakSampler) sampleProcs() func() {
	type entry struct {
		p     *leakProc // nil: not (yet) in a container of the stack
		since time.Time
		done  bool // placed: in no container of the stack
	}
	tracked := map[int]*entry{}
	return func() {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return
		}
		alive := map[int]bool{}
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			alive[pid] = true
			en := tracked[pid]
			if en == nil {
				en = &entry{since: time.Now()}
				tracked[pid] = en
			}
			// A process `docker exec` starts joins the container's cgroup
			// a moment after it exists: look again during its first second.
			if en.p == nil && !en.done {
				cg, _ := os.ReadFile("/proc/" + e.Name() + "/cgroup")
				id := leakContainerID.FindString(string(cg))
				var c *leakContainer
				if id != "" {
					c = s.container(id)
				}
				switch {
				case c != nil && c.role != "":
					en.p = &leakProc{c: c, pid: pid}
					s.mu.Lock()
					s.procs = append(s.procs, en.p)
					s.mu.Unlock()
				case c != nil || id == "" && time.Since(en.since) > time.Second:
					en.done = true
				}
			}
			if en.p != nil {
				s.observe(en.p)
			}
		}
		for pid := range tracked {
			if !alive[pid] {
				delete(tracked, pid) // a new process may take its pid
			}
		}
	}
}

// observe reads a process's executable, command line and environment
// (again if it changed program meanwhile). A `sidecar dump` that still
// holds restic's credentials (between restic starting it and its re-exec
// without them) is read again until it drops them or ends, so its last
// state is what it ran with.
func (s *leakSampler) observe(p *leakProc) {
	dir := "/proc/" + strconv.Itoa(p.pid)
	read := func() (leakProcState, bool) {
		for range 3 {
			exe, err1 := os.Readlink(dir + "/exe")
			cmd, err2 := os.ReadFile(dir + "/cmdline")
			env, err3 := os.ReadFile(dir + "/environ")
			again, err4 := os.Readlink(dir + "/exe")
			if err := errors.Join(err1, err2, err3, err4); err != nil || len(cmd) == 0 {
				return leakProcState{}, false
			}
			if exe != again {
				continue // it executed a new program while being read
			}
			st := leakProcState{exe: exe, cmdline: string(cmd), environ: string(env), at: time.Now()}
			s.mu.Lock()
			if n := len(p.states); n == 0 || p.states[n-1].exe != exe || p.states[n-1].cmdline != st.cmdline || p.states[n-1].environ != st.environ {
				p.states = append(p.states, st)
			}
			s.mu.Unlock()
			return st, true
		}
		return leakProcState{}, false
	}
	st, ok := read()
	for i := 0; ok && st.isDump() && st.holdsResticCreds() && i < 5000; i++ {
		time.Sleep(time.Millisecond)
		st, ok = read()
	}
}

func (s *leakSampler) workerIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, c := range s.containers {
		if c.role == "worker" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// scan searches everything sampled, with what each process may hold.
func (s *leakSampler) scan(chk *leakCheck) {
	t := s.t
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.notes {
		t.Logf("sampler: %s", n)
	}
	var workers, workerLogs int
	for _, id := range slices.Sorted(maps.Keys(s.containers)) {
		c := s.containers[id]
		if c.role == "" {
			continue
		}
		if c.role == "worker" {
			workers++
			for _, raw := range c.inspects {
				chk.scan("docker inspect of a worker: "+id[:12], raw)
			}
			if c.logs.Len() > 0 {
				workerLogs++
			}
			chk.scan("worker log (docker logs): "+id[:12], c.logs.String())
		}
		if c.role == "sidecar" {
			for _, raw := range c.inspects { // Health.Log holds `sidecar health` output
				chk.scan("docker inspect of the sidecar: "+id[:12], raw)
			}
		}
	}
	assert.Positive(t, workers, "worker containers were inspected")
	assert.Positive(t, workerLogs, "a worker's own log was read")
	for _, where := range slices.Sorted(maps.Keys(s.files)) {
		chk.scan(where, s.files[where])
	}
	for _, ex := range slices.Sorted(maps.Keys(s.execs)) {
		chk.scan("exec inspect: "+ex[:12], s.execs[ex])
	}
	for i, ev := range s.events {
		chk.scan("docker event: #"+strconv.Itoa(i), ev)
	}

	counts := map[string]int{} // kind → processes
	// Controls: the sampler reads real environments (restic and the
	// database client hold what they are allowed to).
	controls := map[string]bool{"restic's environment holds the restic password": false, "pg_dumpall's environment holds the database password": false}
	for _, p := range s.procs {
		kinds := map[string]bool{}
		lastDump := -1
		for i, st := range p.states {
			if st.isDump() {
				lastDump = i
			}
		}
		for i, st := range p.states {
			a := st.args()
			what := fmt.Sprintf("pid %d %q (%s) in the %s container %s", p.pid, strings.Join(a[:min(len(a), 2)], " "), st.exe, p.c.role, p.c.id[:12])
			chk.scan("/proc cmdline: "+what, st.cmdline) // argv is readable by every user of the machine
			kind := p.c.role + " " + path.Base(st.exe)
			if a[0] == "runc" { // runc's own executable is a sealed copy of itself
				kind = p.c.role + " " + strings.Join(a, " ")
			}
			switch {
			case p.c.role == "database":
				// The database clients the dump runs in the database
				// container get its password in their exec environment
				// (PGPASSWORD), and the container's own processes hold its
				// POSTGRES_PASSWORD: allowed. Nothing else is.
				own := map[string]string{"postgres": "postgres password", "broken": "broken db password"}[p.c.service]
				chk.scan("/proc environ: "+what, st.environ, own)
				if path.Base(st.exe) == "pg_dumpall" {
					controls["pg_dumpall's environment holds the database password"] = controls["pg_dumpall's environment holds the database password"] ||
						strings.Contains(st.environ, "PGPASSWORD=") && chk.holds(st.environ, own)
				}
			case st.isRestic():
				// restic needs the repository password and the S3 keys: it
				// gets them in its environment (never in its arguments).
				chk.scan("/proc environ: "+what, st.environ, leakResticCreds...)
				controls["restic's environment holds the restic password"] = controls["restic's environment holds the restic password"] ||
					chk.holds(st.environ, "restic password", "wrong restic password")
			case st.isDump() && i < lastDump:
				// Between restic starting it and its re-exec (measured: 13
				// ms and more) the dump producer holds the environment
				// restic gives --stdin-from-command, restic's own
				// credentials, readable only by restic's user. Anything
				// more is a leak, and so is still holding them once it
				// runs (the next case).
				kind = "sidecar dump"
				chk.scan("/proc environ (before the re-exec): "+what, st.environ, leakResticCreds...)
				t.Logf("seen before its re-exec, holding restic's environment for at least %s: %s", p.states[lastDump].at.Sub(st.at), what)
			case st.isDump():
				// What the producer runs with holds no credential.
				kind = "sidecar dump"
				chk.scan("/proc environ: "+what, st.environ)
				assert.False(t, st.holdsResticCreds(), "%s runs with restic's credentials in its environment", what)
			default:
				if path.Base(st.exe) == "sidecar" && len(a) > 1 {
					kind += " " + a[1]
				}
				chk.scan("/proc environ: "+what, st.environ)
			}
			kinds[kind] = true
		}
		for k := range kinds {
			counts[k]++
		}
	}
	t.Logf("processes sampled: %v", counts)
	for what, ok := range controls {
		assert.True(t, ok, "control: %s", what)
	}
	for _, want := range []string{"sidecar restic", "worker restic", "sidecar dump", "database pg_dumpall", "worker sidecar worker", "sidecar sidecar run-once", "sidecar sidecar run"} {
		assert.Positive(t, counts[want], "no %q process was sampled", want)
	}
	t.Logf("sampled %d worker containers, %d execs, %d events, %d writable-layer files", workers, len(s.execs), len(s.events), len(s.files))
}
