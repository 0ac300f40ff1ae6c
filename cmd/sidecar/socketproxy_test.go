package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/composebed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/testbed/dockerproxy"
)

// socketProxyCompose is a stack whose sidecar has no Docker socket: it talks
// to the engine through a socket proxy (DOCKER_HOST=tcp://…). Host
// networking lets it reach the test's proxy and MinIO on 127.0.0.1, as
// examples/socket-proxy reaches a proxy service by name.
const socketProxyCompose = `
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
      - config:/config
  postgres:
    image: ${POSTGRES_IMAGE}
    environment:
      POSTGRES_USER: app
      POSTGRES_DB: app
      POSTGRES_PASSWORD_FILE: /run/pgsecret/password   # read by the sidecar through the archive API
    labels:
      stack-back.postgres: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - pgdata:/var/lib/postgresql/data
      - ${PG_SECRET_DIR}:/run/pgsecret:ro
  backup:
    image: ${SIDECAR_IMAGE}
    network_mode: host
    environment:
      DOCKER_HOST: ${PROXY_DOCKER_HOST}
      RESTIC_REPOSITORY: ${RESTIC_REPOSITORY}
      RESTIC_PASSWORD: ${RESTIC_PASSWORD}
      AWS_ACCESS_KEY_ID: ${AWS_KEY}
      AWS_SECRET_ACCESS_KEY: ${AWS_SECRET}
      CRON_SCHEDULE: "0 3 1 1 *"
      METRICS_LISTEN: 127.0.0.1:${METRICS_PORT}
      LOG_FORMAT: json
      STOP_TIMEOUT: 2s
    labels:
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - cache:/cache
volumes:
  data: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  config: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  pgdata: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  cache: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
networks:
  default: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
`

// TestSocketProxy runs a sidecar with no Docker socket, through a proxy that
// answers 403 to every endpoint not in examples/socket-proxy/allowlist.txt:
// the daemon's start-up, plan, run-once, snapshots, a volume restore, a
// database restore and a restore drill (verify) all succeed, every endpoint used is on the list (the
// list is sufficient), and the workers get no DOCKER_HOST.
func TestSocketProxy(t *testing.T) {
	t.Parallel() // a stack of its own; the package runs two at a time
	if testing.Short() {
		t.Skip("runs a compose stack")
	}
	start := time.Now()
	ctx := context.Background()
	cli := dockerbed.Client(t) // the test's own client: the socket, not the proxy
	dbs := dbimage.ForTest(t, cli)
	sidecarImage := buildSidecarImage(t, cli)
	s3 := testbed.StartMinIO(t)

	root, err := testbed.Root()
	require.NoError(t, err)
	f, err := os.Open(filepath.Join(root, "examples", "socket-proxy", "allowlist.txt"))
	require.NoError(t, err)
	allow, err := dockerproxy.ParseAllowlist(f)
	f.Close()
	require.NoError(t, err)
	proxy := dockerproxy.Start(t, dockerproxy.Options{Allow: allow}) // closed after the stack is down

	project := dockerbed.UniqueName("sockp")
	bucket := "restic-stackback-" + project + "-bucket"
	s3.MakeBucket(t, bucket)
	pgSecretDir := t.TempDir()
	require.NoError(t, os.Chmod(pgSecretDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(pgSecretDir, "password"), []byte("pg-"+strconv.FormatInt(time.Now().UnixNano(), 36)), 0o644))
	metricsPort := testbed.FreePort(t)
	st := composebed.Up(t, cli, project, socketProxyCompose, map[string]string{
		"APP_IMAGE": dbs.Base, "POSTGRES_IMAGE": dbs.Postgres, "SIDECAR_IMAGE": sidecarImage, "PG_SECRET_DIR": pgSecretDir,
		"PROXY_DOCKER_HOST": proxy.DockerHost(), "RESTIC_REPOSITORY": s3.RepoURL(bucket, ""),
		"RESTIC_PASSWORD": "socket-proxy-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		"AWS_KEY":         s3.AccessKey, "AWS_SECRET": s3.SecretKey, "METRICS_PORT": strconv.Itoa(metricsPort),
	})
	app, pg, side := st.Container("app", 1), st.Container("postgres", 1), st.Container("backup", 1)
	t.Cleanup(func() {
		// Also when a command failed first: name what the list lacks.
		if denied := proxy.Denied(); len(denied) > 0 {
			t.Errorf("the sidecar used endpoints that examples/socket-proxy/allowlist.txt does not list (answered 403): %v", denied)
		}
		if t.Failed() {
			t.Logf("sidecar log:\n%s", containerLogs(t, cli, side))
			for _, c := range proxy.Log() {
				t.Logf("proxy: %d %-6s %s", c.Status, c.Method, c.URL)
			}
		}
	})

	// The sidecar has no socket: only the proxy.
	ins, err := cli.ContainerInspect(ctx, side, client.ContainerInspectOptions{})
	require.NoError(t, err)
	for _, m := range ins.Container.Mounts {
		require.NotContains(t, m.Source+" "+m.Destination, "docker.sock")
	}
	assert.Contains(t, ins.Container.Config.Env, "DOCKER_HOST="+proxy.DockerHost())

	require.NoError(t, dbimage.WaitReady(ctx, cli, pg, dbimage.Postgres))
	sh(t, cli, app, `head -c 300000 /dev/urandom > /data/blob && echo one > /data/a.txt && echo cfg > /config/app.conf`)
	sh(t, cli, pg, `psql -v ON_ERROR_STOP=1 -U app -d app -c "CREATE TABLE notes(id int, body text); INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1,100) g;"`)
	const digest = `cd /data && find . -type f -print0 | sort -z | xargs -0 sha256sum`
	dataBefore := sh(t, cli, app, digest)

	// The daemon (the image's command) started through the proxy.
	waitFor(t, time.Minute, "the daemon to start", func() bool {
		return strings.Contains(containerLogs(t, cli, side), `"msg":"sidecar started"`)
	})

	code, out, logs := execSplit(t, cli, side, nil, "sidecar", "plan", "--json")
	require.Equal(t, 0, code, out+logs)
	var plan discover.Plan
	require.NoError(t, json.Unmarshal([]byte(out), &plan))
	assert.Equal(t, discover.FoundByMountInfo, plan.Self.FoundBy, "the sidecar found its own container through the proxy")
	var paths []string
	for _, tg := range plan.Targets {
		paths = append(paths, tg.Path)
	}
	assert.ElementsMatch(t, []string{"/volumes/app/data", "/volumes/app/config", "/databases/postgres/all_databases.sql"}, paths)

	workers := watchWorkers(cli)
	code, out, logs = execSplit(t, cli, side, nil, "sidecar", "run-once")
	require.Equal(t, 0, code, out+logs)
	assert.Contains(t, out, "OK: 3 target(s)")
	inspects := workers.results()
	assert.NotEmpty(t, inspects, "the volumes were read by workers")
	for id, raw := range inspects {
		var w container.InspectResponse
		require.NoError(t, json.Unmarshal([]byte(raw), &w))
		for _, kv := range w.Config.Env {
			assert.False(t, strings.HasPrefix(kv, "DOCKER_"), "worker %s has %s in its environment: workers do not talk to Docker", id[:12], kv)
		}
	}

	snaps := stackSnapshots(t, cli, side)
	for _, p := range paths {
		assert.Len(t, snaps[p], 1, p)
	}

	sh(t, cli, app, "echo damaged > /data/a.txt && echo extra > /data/extra.txt")
	code, out = execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--to-volume", "--mode", "mirror")
	require.Equal(t, 0, code, out)
	assert.Equal(t, dataBefore, sh(t, cli, app, digest), "the volume is the snapshot again")
	assert.True(t, running(t, cli, app), "the app runs again after the restore")

	sh(t, cli, pg, `psql -v ON_ERROR_STOP=1 -U app -d app -c "DROP TABLE notes"`)
	code, out = execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/databases/postgres/all_databases.sql", "--to-database")
	require.Equal(t, 0, code, out)
	assert.Equal(t, "100", strings.TrimSpace(sh(t, cli, pg, `psql -tA -U app -d app -c "SELECT count(*) FROM notes"`)))

	code, out = execIn(t, cli, side, nil, "sidecar", "health")
	assert.Equal(t, 0, code, "the daemon saw the run-once:\n%s", out)

	// What the sidecar created: workers of its own image, unprivileged, in
	// its own network namespace, without the Docker client's settings.
	creates := proxy.Creates()
	require.NotEmpty(t, creates)
	for _, c := range creates {
		assert.Equal(t, ins.Container.Image, c.Image)
		assert.False(t, c.Privileged)
		assert.Empty(t, c.Binds)
		assert.Empty(t, c.CapAdd)
		assert.Equal(t, "container:"+side, c.NetworkMode)
		for _, name := range c.EnvNames {
			assert.False(t, strings.HasPrefix(name, "DOCKER_"), "a worker is created with %s", name)
		}
	}

	// A restore drill needs more: a scratch volume (created, listed,
	// removed) and a throwaway container of the database's own image; doctor
	// reads the engine too. They also go through the enforcing proxy.
	code, out = execIn(t, cli, side, nil, "sidecar", "verify")
	require.Equal(t, 0, code, "sidecar verify through the proxy:\n%s", out)
	code, out = execIn(t, cli, side, nil, "sidecar", "doctor")
	t.Logf("sidecar doctor through the proxy (exit %d):\n%s", code, out)

	// Everything passed with the proxy enforcing the list; nothing was
	// denied, and every endpoint used is listed.
	used := proxy.Calls()
	assert.NoError(t, dockerproxy.Check(used, allow), "add them to examples/socket-proxy/allowlist.txt if the sidecar really needs them")
	var lines []string
	for _, e := range used {
		lines = append(lines, e.String())
	}
	var unused []string
	for _, e := range allow {
		if !slices.Contains(used, e) {
			unused = append(unused, e.String())
		}
	}
	checkExampleProxyRules(t, filepath.Join(root, "examples", "socket-proxy", "docker-compose.yml"), proxy.Log())

	for _, c := range creates {
		t.Logf("created: image %s, entrypoint %q, environment %q, network %s, %d mounts", c.Image, c.Entrypoint, c.EnvNames, c.NetworkMode, len(c.Mounts))
	}
	t.Logf("%d endpoints used through the proxy (%d requests, %d container creates) in %s:\n  %s",
		len(used), len(proxy.Log()), len(creates), time.Since(start).Round(time.Second), strings.Join(lines, "\n  "))
	if len(unused) > 0 {
		t.Logf("listed but not used in this test: %s", strings.Join(unused, ", "))
	}
}

// checkExampleProxyRules checks the socket-proxy service of the example
// compose file, wollomatic/socket-proxy's -allow<METHOD>=<regexp> flags
// (anchored with ^…$ as that proxy does): each request the sidecar made
// passes them, and endpoints it never needs do not.
func checkExampleProxyRules(t *testing.T, file string, calls []dockerproxy.Call) {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Command []string `yaml:"command"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &compose))
	rules := map[string]*regexp.Regexp{}
	for _, arg := range compose.Services["socket-proxy"].Command {
		if flag, re, ok := strings.Cut(arg, "="); ok && strings.HasPrefix(flag, "-allow") && strings.ToUpper(flag[6:]) == flag[6:] {
			rules[flag[6:]] = regexp.MustCompile("^" + re + "$")
		}
	}
	require.NotEmpty(t, rules, "no -allow<METHOD> flag in %s", file)
	allowed := func(method, path string) bool { return rules[method] != nil && rules[method].MatchString(path) }
	seen := map[dockerproxy.Endpoint]bool{}
	for _, c := range calls {
		path, _, _ := strings.Cut(c.URL, "?")
		if !seen[c.Endpoint] && !allowed(c.Method, path) {
			seen[c.Endpoint] = true
			t.Errorf("%s refuses %s %s (%s), which the sidecar uses", file, c.Method, path, c.Endpoint)
		}
	}
	for _, refused := range []string{
		"POST /v1.41/containers/abc/kill", "POST /v1.41/containers/abc/update", "PUT /v1.41/containers/abc/archive",
		"POST /v1.41/images/create", "DELETE /v1.41/images/platback/sidecar", "POST /v1.41/build", "GET /v1.41/info",
		"DELETE /v1.41/volumes/app_data", "POST /v1.41/networks/create", "POST /v1.41/swarm/init",
		"GET /v1.41/secrets", "POST /v1.41/exec/abc/resize", "GET /v1.41/events",
	} {
		method, path, _ := strings.Cut(refused, " ")
		assert.False(t, allowed(method, path), "%s lets %s through", file, refused)
	}
}
