package healthping

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type hit struct{ method, path, query, body string }

// checkServer is a healthchecks.io stand-in on 127.0.0.1.
func checkServer(t *testing.T, status func(n int) int) (*httptest.Server, func() []hit) {
	var mu sync.Mutex
	var hits []hit
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hits = append(hits, hit{r.Method, r.URL.Path, r.URL.RawQuery, string(b)})
		mu.Unlock()
		w.WriteHeader(status(int(n.Add(1))))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []hit {
		mu.Lock()
		defer mu.Unlock()
		return append([]hit(nil), hits...)
	}
}

func ok(int) int { return http.StatusOK }

func TestPings(t *testing.T) {
	srv, hits := checkServer(t, ok)
	p, err := New(srv.URL+"/ping/0f1e-uuid?create=1", Options{})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, p.Start(ctx))
	require.NoError(t, p.Success(ctx, "3 target(s)"))
	long := strings.Repeat("x", MaxBody-1) + "é and more"
	require.NoError(t, p.Fail(ctx, long))
	got := hits()
	require.Len(t, got, 3)
	assert.Equal(t, hit{"POST", "/ping/0f1e-uuid/start", "create=1", ""}, got[0])
	assert.Equal(t, hit{"POST", "/ping/0f1e-uuid", "create=1", "3 target(s)"}, got[1])
	assert.Equal(t, "/ping/0f1e-uuid/fail", got[2].path)
	assert.Equal(t, strings.Repeat("x", MaxBody-1), got[2].body, "cut at MaxBody, not inside a character")

	p, err = New(srv.URL+"/ping/", Options{})
	require.NoError(t, err)
	assert.Equal(t, srv.URL+"/ping/start", p.URL("/start"), "no double slash")
}

// A server error is retried; a 4xx is not; a receiver that is down fails
// after the retries, and the error does not show the check's secret.
func TestPingRetries(t *testing.T) {
	srv, hits := checkServer(t, func(n int) int {
		if n <= 2 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	p, err := New(srv.URL+"/SECRETUUID", Options{RetryWait: time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background()), "third attempt succeeds")
	assert.Len(t, hits(), 3)

	srv404, hits404 := checkServer(t, func(int) int { return http.StatusNotFound })
	p, err = New(srv404.URL+"/SECRETUUID", Options{RetryWait: time.Millisecond})
	require.NoError(t, err)
	err = p.Start(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "404")
	assert.Len(t, hits404(), 1, "a 404 is not retried")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "http://" + l.Addr().String() + "/SECRETUUID"
	require.NoError(t, l.Close())
	p, err = New(down, Options{RetryWait: time.Millisecond})
	require.NoError(t, err)
	err = p.Fail(context.Background(), "boom")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ping http://"+l.Addr().String()+"/***/fail")
	assert.Contains(t, err.Error(), "connection refused")
	assert.NotContains(t, err.Error(), "SECRETUUID")
	assert.Equal(t, "http://"+l.Addr().String()+"/***", p.String())
}

// A receiver that never answers costs the timeout per attempt.
func TestPingTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	p, err := New(srv.URL+"/x", Options{Timeout: 100 * time.Millisecond, Retries: -1})
	require.NoError(t, err)
	start := time.Now()
	err = p.Start(context.Background())
	require.Error(t, err)
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestParse(t *testing.T) {
	for _, bad := range []string{"hc-ping.com/SECRET", "ftp://hc-ping.com/SECRET", "https:///SECRET", "http://[::1/SECRET"} {
		_, err := Parse(bad)
		require.Error(t, err, bad)
		assert.NotContains(t, err.Error(), "SECRET")
		assert.NotContains(t, Redact(bad), "SECRET")
	}
	_, err := Parse("https://hc-ping.com/0f1e")
	assert.NoError(t, err)
	assert.Equal(t, "https://hc-ping.com/***", Redact("https://hc-ping.com/0f1e"))
	assert.Equal(t, "https://***@hc.internal", Redact("https://u:SECRET@hc.internal"))
}
