package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// hookReceiver stands in for a chat webhook and healthchecks.io on
// 127.0.0.1: it records every request as "METHOD /path" and its body.
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []hookRequest
}

type hookRequest struct{ Line, Body string }

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, hookRequest{req.Method + " " + req.URL.Path, string(b)})
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// take returns the requests since the last take.
func (r *hookReceiver) take() []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

func reqLines(reqs []hookRequest) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Line)
	}
	return out
}

// deadURL is an http URL on 127.0.0.1 where nothing listens.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr
}

// Notifications (shoutrrr's generic webhook) and health pings of the real
// sidecar binary against a receiver on 127.0.0.1: a successful run-once
// pings start and success and notifies only at level info; a failed run
// pings /fail with the failed target and its error and notifies once,
// naming the stack, the target, the cause and the fix; no secret is in
// any of them; a receiver that is down fails nothing and is counted in
// the daemon's /metrics; a bad NOTIFICATION_URLS stops the sidecar at
// start-up without showing its token.
func TestNotificationsAndPings(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sidecar against Docker, MinIO and restic")
	}
	cli := dockerbed.Client(t)
	workerImage := buildSidecarImage(t, cli)
	s3 := testbed.StartMinIO(t)
	bucket := dockerbed.UniqueName("notify")
	s3.MakeBucket(t, bucket)
	project, dir := volumeStack(t, "notify", map[string][]byte{"hello.txt": []byte("hello\n")})
	const password = "notify-restic-pass"
	rcv := newHookReceiver(t)
	ping := rcv.URL + "/ping/f00d-SECRETUUID"
	h := newHostSidecar(t, buildDaemonBinary(t), project, map[string]string{
		"RESTIC_REPOSITORY": s3.RepoURL(bucket, "repo"), "RESTIC_PASSWORD": password,
		"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey, "PLATBACK_WORKER_IMAGE": workerImage,
		"NOTIFICATION_URLS": "generic+" + rcv.URL + "/notify/SECRETHOOK",
		"HEALTHCHECK_URL":   ping,
	})
	secrets := map[string]string{"restic password": password, "S3 access key": s3.AccessKey, "S3 secret key": s3.SecretKey}
	noSecret := func(where string, reqs []hookRequest, out string) {
		for _, r := range reqs {
			testbed.AssertNoSecret(t, where+" "+r.Line, r.Body, secrets)
		}
		testbed.AssertNoSecret(t, where+" output", out, secrets)
		assert.NotContains(t, out, "SECRETHOOK", "the webhook's path is not logged")
		assert.NotContains(t, out, "SECRETUUID", "the check's uuid is not logged")
	}

	t.Run("success at level error: pings, no notification", func(t *testing.T) {
		code, out := h.runOnce(t, nil)
		require.Equal(t, 0, code, out)
		reqs := rcv.take()
		assert.Equal(t, []string{"POST /ping/f00d-SECRETUUID/start", "POST /ping/f00d-SECRETUUID"}, reqLines(reqs), out)
		if len(reqs) == 2 {
			assert.Contains(t, reqs[1].Body, "backup of stack "+project+" succeeded: 1 target(s)")
		}
		noSecret("success", reqs, out)
	})

	t.Run("success at level info: one notification", func(t *testing.T) {
		code, out := h.runOnce(t, map[string]string{"NOTIFICATION_LEVEL": "info"})
		require.Equal(t, 0, code, out)
		reqs := rcv.take()
		require.Equal(t, []string{"POST /ping/f00d-SECRETUUID/start", "POST /ping/f00d-SECRETUUID", "POST /notify/SECRETHOOK"}, reqLines(reqs), out)
		assert.Contains(t, reqs[2].Body, "platback: backup of stack "+project+" succeeded: 1 target(s)")
	})

	t.Run("failed target: /fail and one notification with the cause", func(t *testing.T) {
		hidden := dir + ".gone"
		require.NoError(t, os.Rename(dir, hidden))
		t.Cleanup(func() { _ = os.Rename(hidden, dir) })
		code, out := h.runOnce(t, nil)
		require.Equal(t, 1, code, out)
		reqs := rcv.take()
		require.Equal(t, []string{"POST /ping/f00d-SECRETUUID/start", "POST /ping/f00d-SECRETUUID/fail", "POST /notify/SECRETHOOK"}, reqLines(reqs), out)
		assert.Contains(t, reqs[1].Body, "1 of 1 target(s) failed: /volumes/app/data: ")
		msg := reqs[2].Body
		assert.Contains(t, msg, "platback: backup of stack "+project+" FAILED: 1 of 1 target(s) failed\n- /volumes/app/data (volume): ")
		assert.Contains(t, msg, "Fix: see the log (the sidecar's output), fix the cause, then back up now: sidecar run-once")
		// The cause is the target's own error, as run-once prints it.
		cause := strings.TrimPrefix(strings.SplitN(msg, "\n", 3)[1], "- /volumes/app/data (volume): ")
		assert.Contains(t, out, strings.TrimSuffix(cause, " …")[:min(60, len(cause))])
		noSecret("failed target", reqs, out)
		require.NoError(t, os.Rename(hidden, dir))
	})

	t.Run("wrong password: /fail and the fix for it", func(t *testing.T) {
		code, out := h.runOnce(t, map[string]string{"RESTIC_PASSWORD": "not-the-password"})
		require.Equal(t, 1, code, out)
		reqs := rcv.take()
		require.Equal(t, []string{"POST /ping/f00d-SECRETUUID/start", "POST /ping/f00d-SECRETUUID/fail", "POST /notify/SECRETHOOK"}, reqLines(reqs), out)
		assert.Contains(t, reqs[1].Body, "RESTIC_PASSWORD does not open it")
		assert.Contains(t, reqs[2].Body, "backup of stack "+project+" FAILED: ")
		assert.Contains(t, reqs[2].Body, "the restic password (RESTIC_PASSWORD or its Vault field) does not open the repository")
		secrets["wrong password"] = "not-the-password"
		noSecret("wrong password", reqs, out)
		delete(secrets, "wrong password")
	})

	t.Run("receiver down: the run succeeds, the daemon counts the failures", func(t *testing.T) {
		d := h.startDaemon(t)
		d.waitUntil(t, 30*time.Second, "the start-up check", func() bool { return d.metric("platback_startup_check_ok", "") == "1" })
		assert.Equal(t, "0", d.metric("platback_notifications_failed_total", ""))
		dead := deadURL(t)
		start := time.Now()
		code, out := h.runOnce(t, map[string]string{"NOTIFICATION_URLS": "generic+" + dead + "/notify/SECRETHOOK", "NOTIFICATION_LEVEL": "info",
			"HEALTHCHECK_URL": dead + "/ping/f00d-SECRETUUID"})
		took := time.Since(start)
		require.Equal(t, 0, code, out)
		t.Logf("run-once with a dead receiver took %s", took.Round(time.Millisecond))
		assert.Contains(t, out, "notification failed")
		assert.Contains(t, out, "health ping failed")
		assert.Contains(t, out, "connection refused")
		noSecret("receiver down", nil, out)
		d.waitUntil(t, 10*time.Second, "the run-once's failures in /metrics", func() bool {
			return d.metric("platback_notifications_failed_total", "") == "1"
		})
		assert.Equal(t, "2", d.metric("platback_health_pings_failed_total", ""), "start and success")
		assert.Equal(t, "0", d.metric("platback_notifications_sent_total", ""))
		assert.Equal(t, "1", d.metric("platback_run_last_ok", ""))
		assert.Empty(t, rcv.take(), "nothing reached the live receiver")
	})

	t.Run("bad NOTIFICATION_URLS: start-up error without the token", func(t *testing.T) {
		for _, args := range [][]string{{"run-once"}, {"run"}} {
			code, out := h.run(t, map[string]string{"NOTIFICATION_URLS": "generic+" + rcv.URL + "/ok teleram://123456:SECRETTOKEN@telegram"}, args...)
			assert.Equal(t, 1, code, out)
			assert.Contains(t, out, `NOTIFICATION_URLS: URL 2 of 2 (teleram://***@telegram): shoutrrr has no service "teleram"`, args)
			assert.NotContains(t, out, "SECRETTOKEN", args)
			code, out = h.run(t, map[string]string{"HEALTHCHECK_URL": "hc-ping.com/f00d-SECRETUUID"}, args...)
			assert.Equal(t, 1, code, out)
			assert.Contains(t, out, "HEALTHCHECK_URL (***): want an http:// or https:// ping URL", args)
			assert.NotContains(t, out, "SECRETUUID", args)
		}
		assert.Empty(t, rcv.take(), "nothing was sent")
	})
}
