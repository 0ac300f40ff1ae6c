package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/notify"
)

// NOTIFICATION_URLS, NOTIFICATION_LEVEL and HEALTHCHECK_URL (and their
// _FILE forms) are checked at start-up; an error names the variable and
// the fix and never shows a token of a URL.
func TestLoadAlerts(t *testing.T) {
	dir := t.TempDir()
	urlsFile := filepath.Join(dir, "urls")
	require.NoError(t, os.WriteFile(urlsFile, []byte("ntfy://ntfy.sh/SECRETTOPIC\ngeneric+https://hooks.internal/SECRETHOOK\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	pingFile := filepath.Join(dir, "ping")
	require.NoError(t, os.WriteFile(pingFile, []byte("https://hc-ping.com/SECRETUUID\n"), 0o600))
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c Config)
		want  []string // in the error; none: no error
	}{
		{name: "none", env: map[string]string{}, check: func(t *testing.T, c Config) {
			assert.Empty(t, c.NotificationURLs)
			assert.Equal(t, notify.LevelError, c.NotificationLevel)
			assert.Empty(t, c.HealthcheckURL)
		}},
		{name: "urls and level", env: map[string]string{"NOTIFICATION_URLS": "ntfy://ntfy.sh/SECRETTOPIC, generic+http://127.0.0.1:9/SECRETHOOK",
			"NOTIFICATION_LEVEL": "info", "HEALTHCHECK_URL": "https://hc-ping.com/SECRETUUID"}, check: func(t *testing.T, c Config) {
			assert.Equal(t, []string{"ntfy://ntfy.sh/SECRETTOPIC", "generic+http://127.0.0.1:9/SECRETHOOK"}, c.NotificationURLs)
			assert.Equal(t, notify.LevelInfo, c.NotificationLevel)
			assert.Equal(t, "https://hc-ping.com/SECRETUUID", c.HealthcheckURL)
		}},
		{name: "files", env: map[string]string{"NOTIFICATION_URLS_FILE": urlsFile, "HEALTHCHECK_URL_FILE": pingFile}, check: func(t *testing.T, c Config) {
			assert.Len(t, c.NotificationURLs, 2)
			assert.Equal(t, "https://hc-ping.com/SECRETUUID", c.HealthcheckURL)
		}},
		{name: "unknown service", env: map[string]string{"NOTIFICATION_URLS": "ntfy://ntfy.sh/ok teleram://123:SECRETTOKEN@telegram"},
			want: []string{"NOTIFICATION_URLS: URL 2 of 2 (teleram://***@telegram): shoutrrr has no service \"teleram\""}},
		{name: "bad URL in a file", env: map[string]string{"NOTIFICATION_URLS_FILE": writeFile(t, dir, "bad", "telegram://SECRETTOKEN@telegram")},
			want: []string{"NOTIFICATION_URLS_FILE=", "URL 1 of 1 (telegram://***@telegram): shoutrrr cannot use this telegram URL"}},
		{name: "not a URL", env: map[string]string{"NOTIFICATION_URLS": "SECRETTOKEN"}, want: []string{"NOTIFICATION_URLS: URL 1 of 1 (***): not a URL"}},
		{name: "both", env: map[string]string{"NOTIFICATION_URLS": "ntfy://ntfy.sh/SECRETTOPIC", "NOTIFICATION_URLS_FILE": urlsFile},
			want: []string{"NOTIFICATION_URLS and NOTIFICATION_URLS_FILE are both set: set one of them"}},
		{name: "missing file", env: map[string]string{"HEALTHCHECK_URL_FILE": filepath.Join(dir, "nope")},
			want: []string{"HEALTHCHECK_URL_FILE=", "cannot read it"}},
		{name: "empty file", env: map[string]string{"NOTIFICATION_URLS_FILE": empty}, want: []string{"the file is empty"}},
		{name: "level", env: map[string]string{"NOTIFICATION_LEVEL": "warn"}, want: []string{`NOTIFICATION_LEVEL="warn": want error`}},
		{name: "ping not http", env: map[string]string{"HEALTHCHECK_URL": "hc-ping.com/SECRETUUID"},
			want: []string{"HEALTHCHECK_URL (***): want an http:// or https:// ping URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := map[string]string{"RESTIC_REPOSITORY": "/srv/repo"}
			for k, v := range tt.env {
				kv[k] = v
			}
			c, err := Load(env(kv))
			if len(tt.want) == 0 {
				require.NoError(t, err)
				tt.check(t, c)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			for _, secret := range []string{"SECRETTOKEN", "SECRETTOPIC", "SECRETHOOK", "SECRETUUID"} {
				assert.NotContains(t, err.Error(), secret)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
