//go:build linux

package config

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed/vaultbed"
	"github.com/platback/platback/vaultcreds"
)

// recordedEnv is an environment that counts how often each variable is read.
type recordedEnv struct {
	mu    sync.Mutex
	vars  map[string]string
	reads map[string]int
}

func newRecordedEnv(vars map[string]string) *recordedEnv {
	return &recordedEnv{vars: vars, reads: map[string]int{}}
}

func (e *recordedEnv) getenv(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reads[name]++
	return e.vars[name]
}

// take returns the reads since the last take.
func (e *recordedEnv) take() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.reads
	e.reads = map[string]int{}
	return r
}

// The sidecar's start-up and runs, counted: Load reads each variable once
// and each secret file once (to fail at start-up when it is missing or
// empty); the source is built from the loaded Config without reading the
// environment or a file; then each file is read only when used, at each run
// (plain variables) or each login (Vault); and `sidecar health` reads
// neither credentials' variables nor files.
func TestSecretFilesReadOnceAtStartThenWhenUsed(t *testing.T) {
	s := vaultbed.Start(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content+"\n"), 0o600))
		return p
	}
	files := watchOpens(t, dir)
	quiet := vaultcreds.WithLogger(slog.New(slog.DiscardHandler))

	tests := []struct {
		name  string
		env   map[string]string
		atRun map[string]int // file opens at each run
		runs  int
	}{
		{name: "plain variables", env: map[string]string{
			"RESTIC_REPOSITORY": "s3:http://127.0.0.1:9000/app-bucket", "RESTIC_PASSWORD_FILE": write("restic_password", "pw"),
			"AWS_ACCESS_KEY_ID_FILE": write("aws_access_key_id", "AKID"), "AWS_SECRET_ACCESS_KEY_FILE": write("aws_secret_access_key", "sk"),
		}, atRun: map[string]int{"restic_password": 1, "aws_access_key_id": 1, "aws_secret_access_key": 1}, runs: 3},
		{name: "vault", env: map[string]string{
			"VAULT_ADDR": s.Addr, "VAULT_ROLE_ID_FILE": write("role_id", s.RoleID), "VAULT_SECRET_ID_FILE": write("secret_id", s.SecretID),
			"VAULT_SECRET_PATH": vaultbed.SecretPath, "RESTIC_REPOSITORY": "/srv/repo",
		}, atRun: map[string]int{"role_id": 1, "secret_id": 1}, runs: 1}, // a login; the next runs reuse its token while it lasts
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newRecordedEnv(tt.env)
			files.take()

			cfg, err := Load(env.getenv)
			require.NoError(t, err)
			for name, n := range env.take() {
				assert.Equal(t, 1, n, "Load reads %s once", name)
			}
			atStart := files.take()
			assert.Equal(t, tt.atRun, atStart, "Load reads each secret file once")

			src, err := vaultcreds.NewSource(cfg.Credentials, quiet)
			require.NoError(t, err)
			t.Cleanup(func() { _ = src.Close(context.Background()) })
			assert.Empty(t, files.take(), "building the source reads no file")
			assert.Empty(t, env.take(), "building the source reads no variable")

			for run := range tt.runs {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				creds, err := src.Credentials(ctx)
				cancel()
				require.NoError(t, err)
				assert.NotEmpty(t, creds.Get("RESTIC_PASSWORD"))
				assert.Equal(t, tt.atRun, files.take(), "run %d reads each file it uses once", run+1)
			}

			h, err := LoadHealth(env.getenv)
			require.NoError(t, err)
			assert.Equal(t, ":9095", h.Listen)
			assert.Empty(t, files.take(), "health reads no secret file")
			assert.ElementsMatch(t, []string{"METRICS_LISTEN", "HEALTH_MAX_AGE_FACTOR"}, slices.Collect(maps.Keys(env.take())),
				"health reads its two variables only")
		})
	}
}

// `sidecar health` runs at every Docker health check: a secret file briefly
// missing (a rotation), or any other variable's problem, does not fail it.
func TestLoadHealthIgnoresEverythingElse(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, e := range []map[string]string{
		{"VAULT_ROLE_ID_FILE": missing, "VAULT_SECRET_ID_FILE": missing, "VAULT_SECRET_PATH": "ansible/data/app"},
		{"RESTIC_PASSWORD_FILE": missing},
		{"BACKUP_CRON": "every day", "RESTIC_REPOSITORY": ""},
	} {
		_, err := Load(env(e))
		require.Error(t, err)
		h, err := LoadHealth(env(e))
		require.NoError(t, err)
		assert.Equal(t, Health{Listen: ":9095", Factor: 2}, h)
	}
}

// LoadHealth checks its two variables as Load does, with the same messages.
func TestLoadHealth(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Health
		errs []string
	}{
		{"defaults", nil, Health{Listen: ":9095", Factor: 2}, nil},
		{"set", map[string]string{"METRICS_LISTEN": "127.0.0.1:9100", "HEALTH_MAX_AGE_FACTOR": "3.5"}, Health{Listen: "127.0.0.1:9100", Factor: 3.5}, nil},
		{"trimmed", map[string]string{"METRICS_LISTEN": " [::1]:9095 "}, Health{Listen: "[::1]:9095", Factor: 2}, nil},
		{"both bad", map[string]string{"METRICS_LISTEN": "9095", "HEALTH_MAX_AGE_FACTOR": "NaN"}, Health{},
			[]string{`METRICS_LISTEN="9095": a bare port needs a colon: write :9095`, `HEALTH_MAX_AGE_FACTOR="NaN": want a number of schedule gaps from 1 to 1000`}},
		{"URL", map[string]string{"METRICS_LISTEN": "http://0.0.0.0:9095"}, Health{}, []string{`METRICS_LISTEN="http://0.0.0.0:9095": an address to listen on, not a URL`}},
		{"factor below 1", map[string]string{"HEALTH_MAX_AGE_FACTOR": "0.5"}, Health{}, []string{`HEALTH_MAX_AGE_FACTOR="0.5": want a number of schedule gaps from 1 to 1000`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := LoadHealth(env(tt.env))
			if len(tt.errs) == 0 {
				require.NoError(t, err)
				assert.Equal(t, tt.want, h)
				return
			}
			require.Error(t, err)
			assert.Len(t, strings.Split(err.Error(), "\n"), len(tt.errs))
			// Load says the same about them.
			full := map[string]string{"RESTIC_REPOSITORY": "/srv/repo"}
			maps.Copy(full, tt.env)
			_, lerr := Load(env(full))
			require.Error(t, lerr)
			for _, w := range tt.errs {
				assert.Contains(t, err.Error(), w)
				assert.Contains(t, lerr.Error(), w)
			}
		})
	}
}
