package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/attempts"
)

func TestSplitURLs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ", nil},
		{"slack://a@b", []string{"slack://a@b"}},
		{"slack://a@b generic+https://h/p", []string{"slack://a@b", "generic+https://h/p"}},
		{"slack://a@b,generic+https://h/p", []string{"slack://a@b", "generic+https://h/p"}},
		{"slack://a@b, generic+https://h/p,\n ntfy://ntfy.sh/topic", []string{"slack://a@b", "generic+https://h/p", "ntfy://ntfy.sh/topic"}},
		// A comma inside a URL stays: telegram lists chats with commas.
		{"telegram://tok@telegram?chats=@a,@b,slack://x@y", []string{"telegram://tok@telegram?chats=@a,@b", "slack://x@y"}},
		{"slack://a@b,,", []string{"slack://a@b"}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, SplitURLs(tt.in), "%q", tt.in)
	}
}

// Bad URLs are refused with an error that says what is wrong and holds no
// part of the URL that may be a token.
func TestCheckURL(t *testing.T) {
	tests := []struct {
		url    string
		ok     bool
		want   string
		secret string
	}{
		{url: "generic+http://127.0.0.1:9/hook", ok: true},
		{url: "generic://hooks.internal/backup?disabletls=yes", ok: true},
		{url: "ntfy://ntfy.sh/backups", ok: true},
		{url: "slack://lol@123456789//SECRETTOKEN", want: "cannot use this slack URL", secret: "SECRETTOKEN"},
		{url: "telegram://123456:SECRETTOKEN@telegram?chats=@backups", ok: true},
		{url: "teleg://123456:SECRETTOKEN@telegram?chats=@backups", want: `shoutrrr has no service "teleg"`, secret: "SECRETTOKEN"},
		{url: "SECRETTOKEN-no-scheme", want: "not a URL", secret: "SECRETTOKEN"},
		{url: "telegram://SECRETTOKEN@telegram", want: "cannot use this telegram URL", secret: "SECRETTOKEN"},
		{url: "https://hooks.example/SECRETTOKEN", want: `shoutrrr has no service "https"`, secret: "SECRETTOKEN"},
		{url: "slack://%zzSECRETTOKEN@x", want: "not a valid URL", secret: "SECRETTOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := CheckURL(tt.url)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), tt.secret)
			assert.NotContains(t, RedactURL(tt.url), tt.secret)
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"slack://xoxb-SECRET@C0123", "slack://***@C0123"},
		{"telegram://123:SECRET@telegram?chats=@backups", "telegram://***@telegram/***"},
		{"gotify://gotify.internal/SECRETTOKEN", "gotify://gotify.internal/***"},
		{"generic+https://hooks.internal/SECRET?@Authorization=Bearer+SECRET", "generic+https://hooks.internal/***"},
		{"ntfy://ntfy.sh", "ntfy://ntfy.sh"},
		{"slack://%zzSECRET@x", "slack://***"},
		{"SECRET", "***"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, RedactURL(tt.in), tt.in)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]Level{"": LevelError, "error": LevelError, " ERROR ": LevelError, "info": LevelInfo} {
		l, err := ParseLevel(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, l, in)
	}
	_, err := ParseLevel("warn")
	assert.ErrorIs(t, err, ErrBadLevel)
}

// receiver is a webhook on 127.0.0.1 recording the bodies it got.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
	status int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{status: http.StatusOK}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.bodies = append(r.bodies, req.Method+" "+req.URL.Path+" "+string(b))
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

// Messages reach a real webhook through shoutrrr's generic service; the
// level filters successes; a failing URL is counted and retried, its error
// names the URL redacted, and does not stop the other URLs.
func TestShoutrrrSendsToWebhook(t *testing.T) {
	rcv := newReceiver(t)
	host := strings.TrimPrefix(rcv.URL, "http://")
	good := "generic+http://" + host + "/hook/SECRETPATH"
	fail := failingURL(t)
	n, err := New([]string{good, fail}, Options{Policy: attempts.Policy{RetryWait: 10 * time.Millisecond}})
	require.NoError(t, err)
	assert.Equal(t, []string{"generic+http://" + host + "/***", RedactURL(fail)}, n.URLs())

	d := n.Notify(context.Background(), Message{Level: LevelInfo, Text: "all good"})
	assert.Equal(t, Delivery{}, d, "info is not sent at level error")
	assert.Empty(t, rcv.got())

	d = n.Notify(context.Background(), Message{Level: LevelError, Title: "t", Text: "backup of stack shop FAILED"})
	assert.Equal(t, 1, d.Sent)
	assert.Equal(t, 1, d.Failed)
	require.Len(t, d.Errs, 1)
	assert.NotContains(t, d.Errs[0].Error(), "SECRETPORTPATH")
	assert.Contains(t, d.Errs[0].Error(), "generic+http://127.0.0.1:")
	assert.Equal(t, []string{"POST /hook/SECRETPATH backup of stack shop FAILED"}, rcv.got())

	info, err := New([]string{"generic://" + host + "/hook?disabletls=yes"}, Options{Level: LevelInfo, Policy: attempts.Policy{RetryWait: 10 * time.Millisecond}})
	require.NoError(t, err)
	d = info.Notify(context.Background(), Message{Level: LevelInfo, Text: "all good"})
	assert.Equal(t, 1, d.Sent)
	assert.Equal(t, "POST /hook all good", rcv.got()[1])

	// A receiver answering 500 is retried, then counted as failed.
	rcv.status = http.StatusInternalServerError
	d = info.Notify(context.Background(), Message{Level: LevelError, Text: "boom"})
	assert.Equal(t, 0, d.Sent)
	assert.Equal(t, 1, d.Failed)
	assert.Len(t, rcv.got(), 2+1+attempts.DefaultRetries, "one attempt and its retries")
}

// failingURL is a webhook URL nothing listens on, with a secret in it.
func failingURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "generic+http://" + addr + "/SECRETPORTPATH"
}

func TestRunMessage(t *testing.T) {
	stack := Stack{Project: "shop", Container: "shop-backup-1"}
	dumpErr := errors.New("pg_dumpall: error: connection to server failed: FATAL: role \"x\" does not exist")
	wrong := fmt.Errorf("open repository: %w", backup.ErrWrongPassword)
	tests := []struct {
		name  string
		o     Outcome
		level Level
		want  []string
		not   []string
	}{
		{name: "success", o: Outcome{Duration: 42 * time.Second, Targets: []Target{{Path: "/volumes/app/data", Kind: "volume", BytesAdded: 1_500_000}, {Path: "/databases/db/all.sql", Kind: "postgres"}}},
			level: LevelInfo, want: []string{"backup of stack shop succeeded: 2 target(s), 1.5 MB added, in 42s."}, not: []string{"Fix"}},
		{name: "failed dump", o: Outcome{Targets: []Target{{Path: "/volumes/app/data", Kind: "volume"}, {Path: "/databases/db/all.sql", Kind: "postgres", Err: dumpErr}}},
			level: LevelError, want: []string{"backup of stack shop FAILED: 1 of 2 target(s) failed", "- /databases/db/all.sql (postgres): pg_dumpall: error: connection",
				"check that the database container runs", "docker logs shop-backup-1", "docker exec shop-backup-1 sidecar run-once"},
			not: []string{"/volumes/app/data"}},
		{name: "wrong password", o: Outcome{Err: wrong}, level: LevelError,
			want: []string{"FAILED: open repository: wrong", "RESTIC_PASSWORD or its Vault field"}},
		{name: "nothing", o: Outcome{}, level: LevelError, want: []string{"nothing was backed up"}},
		{name: "check and retention", o: Outcome{Targets: []Target{{Path: "/volumes/a", Kind: "volume"}}, Retention: []string{"/volumes/a: locked"}, Check: "pack damaged"},
			level: LevelError, want: []string{"FAILED after every target was backed up", "- retention: /volumes/a: locked", "- restic check: pack damaged"}},
		{name: "url credentials", o: Outcome{Err: errors.New("open s3:https://AKIA:SECRETKEY@minio/b: denied")}, level: LevelError,
			want: []string{"s3:https://***@minio/b"}, not: []string{"SECRETKEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := RunMessage(stack, tt.o)
			assert.Equal(t, tt.level, m.Level)
			for _, w := range tt.want {
				assert.Contains(t, m.Text, w)
			}
			for _, n := range tt.not {
				assert.NotContains(t, m.Text, n)
			}
			assert.LessOrEqual(t, len(m.Text), maxMessage)
		})
	}
}

// Many failed targets and long causes stay a short message.
func TestRunMessageIsShort(t *testing.T) {
	var o Outcome
	for i := range 20 {
		o.Targets = append(o.Targets, Target{Path: fmt.Sprintf("/volumes/app/v%d", i), Kind: "volume", Err: errors.New(strings.Repeat("é", 2000))})
	}
	m := RunMessage(Stack{}, o)
	assert.LessOrEqual(t, len(m.Text), maxMessage)
	assert.True(t, strings.HasSuffix(m.Text, " …"), "the cut is marked")
	assert.Contains(t, m.Text, "backup of this stack FAILED: 20 of 20")
	for i := range o.Targets {
		o.Targets[i].Err = errors.New("short")
	}
	assert.Contains(t, RunMessage(Stack{}, Outcome{Targets: o.Targets[:9]}).Text, "- … and 1 more")
	assert.Contains(t, RunMessage(Stack{}, Outcome{Err: errors.New("x")}).Text, "then back up now: sidecar run-once")
}

func TestStaleMessage(t *testing.T) {
	since := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	m := StaleMessage(Stack{Project: "shop"}, since, since.Add(-time.Hour), "48h0m0s", "")
	assert.Equal(t, LevelError, m.Level)
	assert.Contains(t, m.Text, "the last successful backup of stack shop is older than 48h0m0s: 2026-11-24T02:00:00Z")
	assert.Contains(t, m.Text, "No run has failed")
	m = StaleMessage(Stack{Project: "shop"}, time.Time{}, since, "48h0m0s", "credentials: Vault sealed")
	assert.Contains(t, m.Text, "no backup of stack shop has succeeded since the sidecar started at 2026-11-24T02:00:00Z")
	assert.Contains(t, m.Text, "Last run failed: credentials: Vault sealed")
	m = StartupCheckMessage(Stack{Project: "shop"}, "open repository: access denied")
	assert.Contains(t, m.Text, "the sidecar of stack shop cannot back up: its start-up check failed: open repository: access denied")
}

// A restore drill's message: each failed target with its snapshot, age
// and cause (a URL's token redacted), the fix and the command to run it
// again; a drill that passed is at level info. A message that listed the
// passing target, or lost the snapshot or the command, fails here.
func TestVerifyMessage(t *testing.T) {
	s := Stack{Project: "shop", Container: "shop-backup-1"}
	targets := []VerifyTarget{
		{Path: "/volumes/app/data", Snapshot: "8bd2f904", Age: 90 * time.Minute, Error: "restic restore: Load(<data/bb>) failed: no such file"},
		{Path: "/databases/pg/all_databases.sql", Snapshot: "bd3c0f16", Age: time.Hour, Detail: "1 databases, 2 tables, 507 rows"},
		{Path: "/volumes/app/new", Error: "no snapshot of /volumes/app/new on host shop; see s3:https://user:SECRET@minio/b"},
	}
	m := VerifyMessage(s, targets)
	assert.Equal(t, LevelError, m.Level)
	assert.Equal(t, "platback: restore drill of stack shop failed", m.Title)
	assert.Contains(t, m.Text, "FAILED for 2 of 3 target(s)")
	assert.Contains(t, m.Text, "- /volumes/app/data (snapshot 8bd2f904, 1h30m0s old): restic restore: Load(<data/bb>) failed: no such file")
	assert.Contains(t, m.Text, "- /volumes/app/new: no snapshot of /volumes/app/new")
	assert.NotContains(t, m.Text, "SECRET")
	assert.NotContains(t, m.Text, "- /databases/pg")
	assert.Contains(t, m.Text, "docker exec shop-backup-1 sidecar verify")

	m = VerifyMessage(s, targets[1:2])
	assert.Equal(t, LevelInfo, m.Level)
	assert.Contains(t, m.Text, "1 target(s)")
}
