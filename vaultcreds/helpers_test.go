package vaultcreds_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed/vaultbed"
	"github.com/platback/platback/vaultcreds"
)

// logBuf is a goroutine-safe log sink (the renewal goroutine logs too).
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count returns how many log lines contain msg.
func (l *logBuf) count(msg string) int { return strings.Count(l.String(), msg) }

// secretSet collects every secret string a test saw, and every text that
// must not contain one (logs, error texts, printed values).
type secretSet struct {
	mu      sync.Mutex
	secrets map[string]string // value → what it is
	texts   []watched
}

type watched struct {
	name string
	text func() string
}

func newSecretSet() *secretSet {
	return &secretSet{secrets: map[string]string{}}
}

func (s *secretSet) add(what string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if v != "" {
			s.secrets[v] = what
		}
	}
}

func (s *secretSet) watch(name string, text func() string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.texts = append(s.texts, watched{name, text})
}

func (s *secretSet) watchString(name, text string) { s.watch(name, func() string { return text }) }

// check fails t when any watched text contains any secret.
func (s *secretSet) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NotEmpty(t, s.secrets)
	for _, w := range s.texts {
		body := w.text()
		for v, what := range s.secrets {
			if strings.Contains(body, v) {
				t.Errorf("%s contains a secret (%s): %s", w.name, what, strings.ReplaceAll(body, v, "<<HERE>>"))
			}
		}
	}
}

// newLogger returns a JSON slog logger at debug level writing to a buffer
// that secrets watches.
func newLogger(t *testing.T, secrets *secretSet) (*slog.Logger, *logBuf) {
	buf := &logBuf{}
	secrets.watch("log of "+t.Name(), buf.String)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vaultcreds log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func getenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// appRoleEnv is the sidecar's environment for the bed's server: role_id and
// secret_id as files (Docker secrets), the user's path form.
func appRoleEnv(t *testing.T, s *vaultbed.Server, roleID, secretID string) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"VAULT_ADDR":           s.Addr,
		"VAULT_ROLE_ID_FILE":   writeFile(t, dir, "role_id", roleID+"\n"),
		"VAULT_SECRET_ID_FILE": writeFile(t, dir, "secret_id", secretID+"\n"),
		"VAULT_SECRET_PATH":    vaultbed.SecretPath,
	}
}

// newClient builds a client from env with a captured logger and quick
// backoff, closed when t ends.
func newClient(t *testing.T, secrets *secretSet, env map[string]string, opts ...vaultcreds.Option) (*vaultcreds.Client, *logBuf) {
	t.Helper()
	cfg, err := vaultcreds.ConfigFromEnv(getenv(env))
	require.NoError(t, err)
	log, buf := newLogger(t, secrets)
	opts = append([]vaultcreds.Option{vaultcreds.WithLogger(log), vaultcreds.WithBackoff(100*time.Millisecond, time.Second)}, opts...)
	c, err := vaultcreds.New(cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c, buf
}

// fetch calls Fetch with a deadline and records the token as a secret.
func fetch(t *testing.T, secrets *secretSet, c *vaultcreds.Client, timeout time.Duration) (vaultcreds.Credentials, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	creds, err := c.Fetch(ctx)
	secrets.add("vault token", c.TokenForTest())
	secrets.add("fetched value", creds.SecretValues()...)
	if err != nil {
		secrets.watchString("error in "+t.Name(), err.Error())
	}
	return creds, err
}
