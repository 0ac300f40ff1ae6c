package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/daemon"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// CHECK_CRON in the real sidecar binary against a local restic
// repository: `sidecar check --rotate` reads part 1/2, the daemon's first
// scheduled check (every minute) goes on with 2/2 and exports it; a pack
// file deleted from the repository fails the next scheduled check: the
// metric goes to 0, the webhook on 127.0.0.1 gets one notification naming
// the part, and the part is not moved on; a restarted daemon shows the
// failure at once and `sidecar check --rotate` retries the same part.
func TestScheduledCheckInDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sidecar against Docker and restic, and waits for two scheduled minutes")
	}
	dockerbed.Client(t) // the sidecar plans through the engine
	repo := filepath.Join(t.TempDir(), "repo")
	const password = "scheduled-check-pass"
	restic := testbed.Tool(t, "restic")
	resticDo := func(args ...string) {
		cmd := exec.Command(restic, append([]string{"--no-cache", "-q"}, args...)...)
		cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD="+password)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "restic %v: %s", args, out)
	}
	data := t.TempDir()
	testbed.MakeTree(t, data, 1<<20)
	resticDo("init")
	resticDo("backup", data)

	rcv := newHookReceiver(t)
	h := newHostSidecar(t, buildDaemonBinary(t), dockerbed.UniqueName("schedcheck"), map[string]string{
		"RESTIC_REPOSITORY": repo, "RESTIC_PASSWORD": password,
		"BACKUP_CRON": "@yearly", "CHECK_CRON": "* * * * *", "CHECK_READ_DATA_PARTS": "2",
		"NOTIFICATION_URLS": "generic+" + rcv.URL + "/notify/SECRETHOOK",
	})
	cache := h.env["PLATBACK_CACHE_DIR"]

	code, out := h.run(t, nil, "check", "--rotate")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "repository check: no errors (read data subset 1/2)")

	d := h.startDaemon(t)
	d.waitUntil(t, 30*time.Second, "the start-up check", func() bool { return d.metric("platback_startup_check_ok", "") == "1" })
	assert.Contains(t, d.logs.String(), `msg="repository checks scheduled" check_cron="* * * * *"`)
	// `sidecar check` before the start is replayed.
	assert.Equal(t, "1", d.metric("platback_check_read_data_part", ""))
	assert.Equal(t, "1", d.metric("platback_check_last_ok", ""))

	d.waitUntil(t, 90*time.Second, "the first scheduled check", func() bool { return d.metric("platback_check_read_data_part", "") == "2" })
	assert.Equal(t, "1", d.metric("platback_check_last_ok", ""))
	assert.Equal(t, "2", d.metric("platback_check_read_data_parts", ""))
	assert.Contains(t, d.logs.String(), `msg="scheduled repository check passed"`)
	assert.Contains(t, d.logs.String(), `read_data_subset=2/2`)
	assert.Empty(t, rcv.take(), "a passing check notifies at level info only")

	// Damage: a pack file is gone.
	packs, err := filepath.Glob(filepath.Join(repo, "data", "*", "*"))
	require.NoError(t, err)
	require.NotEmpty(t, packs)
	require.NoError(t, os.Remove(packs[0]))
	d.waitUntil(t, 90*time.Second, "a failed scheduled check", func() bool { return d.metric("platback_check_last_ok", "") == "0" })
	assert.Equal(t, "1", d.metric("platback_check_read_data_part", ""), "it read part 1 of 2 after the wrap")
	assert.Equal(t, "1", d.metric("platback_check_failures_total", ""))
	reqs := rcv.take()
	require.Len(t, reqs, 1, "one notification")
	assert.Equal(t, "POST /notify/SECRETHOOK", reqs[0].Line)
	assert.Contains(t, reqs[0].Body, "FAILED (structure and data part 1/2)")
	assert.NotContains(t, reqs[0].Body+d.logs.String(), password)
	d.stop(t)

	st, err := daemon.LoadCheckState(cache)
	require.NoError(t, err)
	assert.Equal(t, 1, st.NextPart, "a failed part is retried")

	d = h.startDaemon(t)
	d.waitUntil(t, 30*time.Second, "the metrics endpoint", func() bool { return d.metric("platback_check_last_ok", "") != "" })
	assert.Equal(t, "0", d.metric("platback_check_last_ok", ""), "the failure survives a restart")
	assert.Equal(t, "0", d.metric("platback_check_failures_total", ""), "not counted twice")
	d.stop(t)

	code, out = h.run(t, nil, "check", "--rotate")
	assert.Equal(t, 1, code, out)
	assert.True(t, strings.Contains(out, "check repository"), out)
	code, out = h.run(t, nil, "check", "--rotate", "--read-data-subset", "5%")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "--rotate and --read-data-subset: give one of them")
}
