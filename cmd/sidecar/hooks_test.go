package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/internal/testbed/composebed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// hooksCompose has stack-back hook labels: app (stopped during the backup)
// stamps the time in its volume from two pre hooks, records its hook's
// argv and environment, runs one hook in another service (.context), and
// stamps post and finally; bad's first pre hook fails (abort), cont's
// fails with on-error continue, hang's never ends (HOOK_TIMEOUT 3s).
// Compose reads $$ as $.
const hooksCompose = `
x-app: &app
  image: ${APP_IMAGE}
  entrypoint: ["sleep", "infinity"]
services:
  app:
    <<: *app
    labels:
      stack-back.volumes: "true"
      stack-back.volumes.stop-during-backup: "true"
      stack-back.hooks.pre.1.cmd: "date +%s%N > /data/pre1; echo pre-one-out; echo pre-one-err >&2"
      stack-back.hooks.pre.2.cmd: "test -f /data/pre1 && date +%s%N > /data/pre2 && tr '\\0' ' ' < /proc/$$$$/cmdline > /data/argv && env > /data/env"
      stack-back.hooks.pre.3.cmd: "hostname > /tmp/ran-for-app"
      stack-back.hooks.pre.3.context: cont
      stack-back.hooks.post.1.cmd: "date +%s%N > /data/post"
      stack-back.hooks.error.1.cmd: "touch /data/error"
      stack-back.hooks.finally.1.cmd: "date +%s%N > /data/finally"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes: [data:/data]
  bad:
    <<: *app
    labels:
      stack-back.volumes: "true"
      stack-back.hooks.pre.1.cmd: "echo no maintenance mode today >&2; exit 3"
      stack-back.hooks.pre.2.cmd: "touch /bdata/pre2"
      stack-back.hooks.post.1.cmd: "touch /bdata/post"
      stack-back.hooks.error.1.cmd: "touch /bdata/error"
      stack-back.hooks.finally.1.cmd: "touch /bdata/finally"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes: [bdata:/bdata]
  cont:
    <<: *app
    labels:
      stack-back.volumes: "true"
      stack-back.hooks.pre.1.cmd: "exit 5"
      stack-back.hooks.pre.1.on-error: continue
      stack-back.hooks.pre.2.cmd: "touch /cdata/pre2"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes: [cdata:/cdata]
  hang:
    <<: *app
    labels:
      stack-back.volumes: "true"
      stack-back.hooks.pre.1.cmd: "sleep 600"
      stack-back.hooks.finally.1.cmd: "touch /hdata/finally"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes: [hdata:/hdata]
  backup:
    image: ${SIDECAR_IMAGE}
    environment:
      RESTIC_REPOSITORY: /restic_data
      RESTIC_PASSWORD: ${RESTIC_PASSWORD}
      CRON_SCHEDULE: "0 3 1 1 *"
      LOG_FORMAT: json
      STOP_TIMEOUT: 2s
      HOOK_TIMEOUT: 3s
    labels:
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - restic_data:/restic_data
      - cache:/cache
volumes:
  data: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  bdata: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  cdata: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  hdata: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  restic_data: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  cache: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
networks:
  default: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
`

// TestHooks runs stack-back hook labels through the sidecar binary in a
// compose stack: order (pre.1, pre.2, the snapshot, post, finally), pre
// hooks before the container is stopped and post hooks after it runs
// again, a failing pre hook failing its service alone and running its
// error and finally hooks, on-error continue, .context, HOOK_TIMEOUT
// stopping a hanging hook, the output in the log, and no secret in any
// hook's argv or environment.
func TestHooks(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a compose stack")
	}
	ctx := context.Background()
	cli := dockerbed.Client(t)
	dbs := dbimage.ForTest(t, cli)
	sidecarImage := buildSidecarImage(t, cli)
	password := "hooks-password-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	project := dockerbed.UniqueName("hk")
	env := map[string]string{"APP_IMAGE": dbs.Base, "SIDECAR_IMAGE": sidecarImage, "RESTIC_PASSWORD": password}
	st := composebed.Up(t, cli, project, hooksCompose, env)
	app, bad, cont, hang, side := st.Container("app", 1), st.Container("bad", 1), st.Container("cont", 1), st.Container("hang", 1), st.Container("backup", 1)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar log:\n%s", containerLogs(t, cli, side))
		}
	})

	code, out, logs := execSplit(t, cli, side, nil, "sidecar", "plan")
	require.Equal(t, 0, code, out+logs)
	assert.Contains(t, out, `stack-back.hooks.pre.3: "hostname > /tmp/ran-for-app" in `+containerName(t, cli, cont)+" (context cont), on-error abort")

	execs := watchExecs(t, cli)
	code, out, logs = execSplit(t, cli, side, nil, "sidecar", "run-once", "--json")
	created := execs()
	require.Equal(t, 1, code, "bad and hang fail the run:\n%s%s", out, logs)
	var res runner.Result
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	errs := map[string]string{}
	for _, r := range res.Targets {
		errs[r.Path] = r.Error
	}
	assert.Equal(t, "", errs["/volumes/app/data"])
	assert.Equal(t, "", errs["/volumes/cont/cdata"], "on-error continue: backed up")
	assert.Equal(t, `not backed up: pre hook stack-back.hooks.pre.1 ("echo no maintenance mode today >&2; exit 3" in `+containerName(t, cli, bad)+
		`) failed: exited with status 3: no maintenance mode today`, errs["/volumes/bad/bdata"])
	assert.Equal(t, `not backed up: pre hook stack-back.hooks.pre.1 ("sleep 600" in `+containerName(t, cli, hang)+`) failed: timed out after 3s (HOOK_TIMEOUT)`,
		errs["/volumes/hang/hdata"])
	// Every hook that ran is in the outcome (the daemon's metrics count
	// them from it): the failures per service and stage.
	failed := map[string]int{}
	for _, h := range res.Hooks {
		if h.Error != "" {
			failed[h.Service+"/"+h.Stage]++
		}
	}
	assert.Equal(t, map[string]int{"bad/pre": 1, "hang/pre": 1, "cont/pre": 1}, failed, "%+v", res.Hooks)

	// Order: pre.1, pre.2, the snapshot (which holds both but not post),
	// then post, then finally; no error hook.
	stamp := func(f string) int64 {
		n, err := strconv.ParseInt(strings.TrimSpace(sh(t, cli, app, "cat /data/"+f)), 10, 64)
		require.NoError(t, err)
		return n
	}
	assert.Less(t, stamp("pre1"), stamp("pre2"))
	assert.Less(t, stamp("pre2"), stamp("post"))
	assert.LessOrEqual(t, stamp("post"), stamp("finally"))
	assert.Equal(t, "1", strings.TrimSpace(sh(t, cli, app, "test -e /data/error; echo $?")), "no error hook after a success")
	code, out = execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--into", "/restore")
	require.Equal(t, 0, code, out)
	host := t.TempDir()
	cp, err := exec.Command("docker", "cp", side+":/restore/volumes/app/data", filepath.Join(host, "data")).CombinedOutput()
	require.NoError(t, err, string(cp))
	for _, f := range []string{"pre1", "pre2"} {
		assert.FileExists(t, filepath.Join(host, "data", f), "the pre hooks ran before the backup")
	}
	assert.NoFileExists(t, filepath.Join(host, "data", "post"), "post ran after the backup")

	// The hook's argv is sh -c and the label's value; its environment is
	// the container's own.
	argv := strings.TrimSpace(sh(t, cli, app, "cat /data/argv"))
	assert.True(t, strings.HasPrefix(argv, "sh -c test -f /data/pre1 && date"), argv)
	hookEnv := strings.Split(strings.TrimSpace(sh(t, cli, app, "cat /data/env")), "\n")
	ins, err := cli.ContainerInspect(ctx, app, client.ContainerInspectOptions{})
	require.NoError(t, err)
	for _, kv := range hookEnv {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PWD", "SHLVL", "_", "HOME", "HOSTNAME", "OLDPWD":
			continue // set by sh or the engine for every exec
		}
		assert.Contains(t, ins.Container.Config.Env, kv, "the hook's environment is the container's own")
	}

	// bad: pre.2 and post did not run, error and finally did.
	assert.Equal(t, "pre2=1 post=1 error=0 finally=0", strings.TrimSpace(sh(t, cli, bad,
		`for f in pre2 post error finally; do test -e /bdata/$f; printf '%s=%s ' $f $?; done`)))
	assert.Equal(t, "0", strings.TrimSpace(sh(t, cli, cont, "test -e /cdata/pre2; echo $?")), "on-error continue runs the next hook")
	ranIn := strings.TrimSpace(sh(t, cli, cont, "cat /tmp/ran-for-app"))
	assert.True(t, ranIn != "" && strings.HasPrefix(cont, ranIn), "context: ran in cont (hostname %q, container %s)", ranIn, cont)
	assert.Equal(t, "0", strings.TrimSpace(sh(t, cli, hang, "test -e /hdata/finally; echo $?")), "finally after a timed-out pre hook")
	assert.Equal(t, "0", strings.TrimSpace(sh(t, cli, hang,
		`n=0; for f in /proc/[0-9]*/cmdline; do case "$(tr '\0' ' ' < "$f" 2>/dev/null)" in "sleep 600 ") n=$((n+1));; esac; done; echo $n`)),
		"the timed-out hook was stopped in its container")

	// The output is logged; no exec the sidecar created carries the password.
	assert.Contains(t, logs, `"msg":"hook done","hook":"stack-back.hooks.pre.1"`)
	assert.Contains(t, logs, `"stdout":"pre-one-out","stderr":"pre-one-err"`)
	assert.Contains(t, logs, `"msg":"hook failed, continuing (on-error continue)","hook":"stack-back.hooks.pre.1"`)
	require.NotEmpty(t, created)
	assert.Contains(t, strings.Join(created, "\n"), "sh -c date +%s%N > /data/pre1")
	assertNoSecret(t, "exec commands", strings.Join(created, "\n"), map[string]string{"restic": password})
	assertNoSecret(t, "hook environment", strings.Join(hookEnv, "\n"), map[string]string{"restic": password})
	assertNoSecret(t, "run-once output", out+logs, map[string]string{"restic": password})
}

// watchExecs records the command of every exec the engine creates from now
// on (its exec_create events); the returned function ends the watch.
func watchExecs(t *testing.T, cli *client.Client) func() []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := cli.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).Add("type", "container").Add("event", "exec_create")})
	var mu sync.Mutex
	var cmds []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-res.Messages:
				mu.Lock()
				cmds = append(cmds, strings.TrimPrefix(string(m.Action), "exec_create: "))
				mu.Unlock()
			case <-res.Err:
				return
			}
		}
	}()
	return func() []string {
		time.Sleep(500 * time.Millisecond)
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return cmds
	}
}
