package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed/composebed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// hostRepoCompose is a stack whose repository and cache are host
// directories (${REPO_DIR}, ${CACHE_DIR}).
const hostRepoCompose = `
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
  backup:
    image: ${SIDECAR_IMAGE}
    environment:
      RESTIC_REPOSITORY: /repo
      RESTIC_PASSWORD: shared-password
      RESTIC_KEEP_LAST: "1"
      CRON_SCHEDULE: "0 3 1 1 *"
      STOP_TIMEOUT: 1s
      LOG_FORMAT: json
    labels:
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - ${REPO_DIR}:/repo
      - ${CACHE_DIR}:/cache
volumes:
  data: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
networks:
  default: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
`

// TestTwoSidecarsOneRepository: two stacks pointed at the same repository by
// mistake, backing up at the same time: no corruption, both succeed (or one
// waits), and retention never deletes the other stack's snapshots.
func TestTwoSidecarsOneRepository(t *testing.T) {
	t.Parallel() // a stack of its own; the package runs two at a time
	if testing.Short() {
		t.Skip("runs two compose stacks")
	}
	cli := dockerbed.Client(t)
	dbs := dbimage.ForTest(t, cli)
	repo := t.TempDir()
	var stacks []*composebed.Stack
	for _, name := range []string{"twoa", "twob"} {
		st := composebed.Up(t, cli, dockerbed.UniqueName(name), hostRepoCompose, map[string]string{
			"APP_IMAGE": dbs.Base, "SIDECAR_IMAGE": buildSidecarImage(t, cli), "REPO_DIR": repo, "CACHE_DIR": t.TempDir()})
		sh(t, cli, st.Container("app", 1), "head -c 20000000 /dev/urandom > /data/blob && echo "+st.Project+" > /data/owner")
		stacks = append(stacks, st)
	}
	for round := range 2 {
		var wg sync.WaitGroup
		outs := make([]string, len(stacks))
		codes := make([]int, len(stacks))
		for i, st := range stacks {
			wg.Go(func() {
				code, out, logs := execSplitNoFail(cli, st.Container("backup", 1), "sidecar", "run-once")
				codes[i], outs[i] = code, out+logs
			})
		}
		wg.Wait()
		for i := range stacks {
			require.Equal(t, 0, codes[i], "round %d, %s:\n%s", round, stacks[i].Project, outs[i])
		}
	}
	for _, st := range stacks {
		side := st.Container("backup", 1)
		snaps := stackSnapshots(t, cli, side)
		assert.Len(t, snaps["/volumes/app/data"], 1, "%s keeps its own snapshot (keep-last 1)", st.Project)
		code, out := execIn(t, cli, side, nil, "sidecar", "restore", "--path", "/volumes/app/data", "--into", "/restore")
		require.Equal(t, 0, code, out)
		cp, err := exec.Command("docker", "cp", side+":/restore/volumes/app/data/owner", filepath.Join(t.TempDir(), "owner")).CombinedOutput()
		require.NoError(t, err, string(cp))
	}
	code, out := execIn(t, cli, stacks[0].Container("backup", 1), nil, "sidecar", "check", "--read-data-subset", "100%")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "no errors")
}

// TestCacheFull: with the cache volume full, a run fails with a clear
// error, stops nothing it cannot record, corrupts nothing, and the next run
// after space was freed succeeds.
func TestCacheFull(t *testing.T) {
	t.Parallel() // a stack of its own; the package runs two at a time
	if testing.Short() {
		t.Skip("runs a compose stack")
	}
	cache := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "platback-test-cache", cache).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", cache).Run() })
	cli := dockerbed.Client(t)
	dbs := dbimage.ForTest(t, cli)
	st := composebed.Up(t, cli, dockerbed.UniqueName("full"), hostRepoCompose, map[string]string{
		"APP_IMAGE": dbs.Base, "SIDECAR_IMAGE": buildSidecarImage(t, cli), "REPO_DIR": t.TempDir(), "CACHE_DIR": cache})
	app, side := st.Container("app", 1), st.Container("backup", 1)
	sh(t, cli, app, "head -c 30000000 /dev/urandom > /data/blob")
	code, out, logs := execSplit(t, cli, side, nil, "sidecar", "run-once")
	require.Equal(t, 0, code, out+logs)

	// Fill the cache to the last byte.
	filler := filepath.Join(cache, "filler")
	_ = exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=64k").Run()
	sh(t, cli, app, "head -c 30000000 /dev/urandom > /data/blob2")
	code, out, logs = execSplit(t, cli, side, nil, "sidecar", "run-once")
	assert.Equal(t, 1, code, "a full cache fails the run:\n%s", out+logs)
	assert.Contains(t, out+logs, "no space left on device")
	assert.True(t, running(t, cli, app), "the app runs (it was not stopped, or was restarted)")

	require.NoError(t, os.Remove(filler))
	code, out, logs = execSplit(t, cli, side, nil, "sidecar", "run-once")
	require.Equal(t, 0, code, out+logs)
	code, out = execIn(t, cli, side, nil, "sidecar", "check", "--read-data-subset", "100%")
	require.Equal(t, 0, code, out)
	assert.True(t, strings.Contains(out, "no errors"), out)
}

func running(t *testing.T, cli *client.Client, id string) bool {
	t.Helper()
	ins, err := cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	return err == nil && ins.Container.State.Running
}
