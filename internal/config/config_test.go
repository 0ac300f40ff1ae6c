package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/vaultcreds"
)

// env is an environment with kv and, unless kv names it (empty to unset
// it), a RESTIC_PASSWORD.
func env(kv map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := kv[k]; ok || k != "RESTIC_PASSWORD" {
			return v
		}
		return "test-password"
	}
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(map[string]string{"RESTIC_REPOSITORY": "s3:minio.internal/app-bucket"}))
	require.NoError(t, err)
	assert.Equal(t, "0 2 * * *", c.Schedule.Cron)
	assert.Equal(t, backup.DefaultPolicy(), c.Policy)
	assert.Equal(t, "/cache", c.CacheDir)
	assert.Equal(t, ":9095", c.Listen)
	assert.True(t, c.CreateBucket)
	assert.Equal(t, 12*time.Hour, c.BackupTimeout)
	assert.Equal(t, "stack-back.", c.LabelPrefix)
}

func TestLoadStackBackNames(t *testing.T) {
	c, err := Load(env(map[string]string{
		"RESTIC_REPOSITORY": "/srv/repo", "CRON_SCHEDULE": "30 3 * * *", "TZ": "Europe/Paris",
		"RESTIC_KEEP_DAILY": "7", "KEEP_WEEKLY": "4", "BACKUP_STAGGER": "20m", "PLATBACK_PROJECT": "mattermost",
	}))
	require.NoError(t, err)
	assert.Equal(t, "30 3 * * *", c.Schedule.Cron)
	assert.Equal(t, "Europe/Paris", c.Schedule.TZ)
	assert.Equal(t, 20*time.Minute, c.Schedule.Stagger)
	assert.Equal(t, backup.Policy{Daily: 7, Weekly: 4}, c.Policy, "explicit keep-* replaces the default")
}

func TestLoadReportsEveryBadVariable(t *testing.T) {
	_, err := Load(env(map[string]string{
		"RESTIC_REPOSITORY":  "s3:https://minio.internal/",
		"BACKUP_CRON":        "0 2 * *",
		"RESTIC_KEEP_DAILY":  "seven",
		"LOG_LEVEL":          "loud",
		"LOG_FORMAT":         "xml",
		"BACKUP_TIMEOUT":     "forever",
		"PLATBACK_PROJECTS":  "a,*",
		"METRICS_LISTEN":     "9095",
		"PLATBACK_CACHE_DIR": "cache",
		"CHECK_AFTER_BACKUP": "sometimes",
	}))
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		`RESTIC_REPOSITORY="s3:https://minio.internal/"`, "no bucket",
		`BACKUP_CRON="0 2 * *": got 4 fields`,
		`RESTIC_KEEP_DAILY="seven"`, `LOG_LEVEL="loud"`, `LOG_FORMAT="xml"`, `BACKUP_TIMEOUT="forever"`,
		`PLATBACK_PROJECTS="a,*"`, `METRICS_LISTEN="9095"`, `PLATBACK_CACHE_DIR="cache"`, `CHECK_AFTER_BACKUP="sometimes"`,
	} {
		assert.Contains(t, msg, want)
	}
}

func TestLoadRepositoryRequiredWithoutVault(t *testing.T) {
	_, err := Load(env(nil))
	require.ErrorContains(t, err, "RESTIC_REPOSITORY is not set")
	_, err = Load(env(map[string]string{"VAULT_ADDR": "https://vault.internal:8200"}))
	require.ErrorContains(t, err, "RESTIC_REPOSITORY is not set", "VAULT_ADDR alone does not turn Vault on")
	_, err = Load(env(map[string]string{"VAULT_ADDR": "https://vault.internal:8200", "VAULT_SECRET_PATH": "ansible/data/stackback_app", "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s"}))
	require.NoError(t, err, "Vault may provide the repository (field repository)")
}

// The bad input of a bad day at start-up: each value is refused with the
// variable, the value and the fix, and every one is in the one error.
func TestLoadBadInput(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name string
		env  map[string]string
		want []string // in the message, each
	}{
		{"cron minute out of range", map[string]string{"BACKUP_CRON": "61 * * * *"},
			[]string{`BACKUP_CRON="61 * * * *": `, "above maximum (59)", "want 5 fields"}},
		{"cron in English", map[string]string{"BACKUP_CRON": "every day"},
			[]string{`BACKUP_CRON="every day": got 2 fields`, `write "@daily"`}},
		{"cron in English with an interval", map[string]string{"CRON_SCHEDULE": "every 6h"},
			[]string{`CRON_SCHEDULE="every 6h": `, `write "@every 6h"`}},
		{"retention cron", map[string]string{"RETENTION_CRON": "every week"},
			[]string{`RETENTION_CRON="every week": `, `write "@weekly"`}},
		{"time zone", map[string]string{"BACKUP_TZ": "Mars/Olympus"},
			[]string{`BACKUP_TZ="Mars/Olympus": unknown time zone`, "Europe/Paris"}},
		{"stagger without unit", map[string]string{"BACKUP_STAGGER": "10"},
			[]string{`BACKUP_STAGGER="10": `, "write 10m for minutes or 10s for seconds"}},
		{"stagger of a day or more", map[string]string{"BACKUP_STAGGER": "25h"},
			[]string{`BACKUP_STAGGER="25h": `, "[0, 24h)"}},
		{"timeout in days", map[string]string{"BACKUP_TIMEOUT": "1d"},
			[]string{`BACKUP_TIMEOUT="1d": `, "write 24h"}},
		{"repository s3 without endpoint", map[string]string{"RESTIC_REPOSITORY": "s3:"},
			[]string{`RESTIC_REPOSITORY="s3:": `, "no S3 endpoint", "s3:https://host/bucket"}},
		{"repository of another scheme", map[string]string{"RESTIC_REPOSITORY": "ftp://x/y"},
			[]string{`RESTIC_REPOSITORY="ftp://x/y": `, "unknown form", "an absolute local path"}},
		{"repository relative path", map[string]string{"RESTIC_REPOSITORY": "local:repo"},
			[]string{`RESTIC_REPOSITORY="local:repo": `, "absolute path"}},
		{"repository empty", map[string]string{"RESTIC_REPOSITORY": ""},
			[]string{"RESTIC_REPOSITORY is not set: set it to the repository URL"}},
		{"keep count not a number", map[string]string{"RESTIC_KEEP_DAILY": "seven"},
			[]string{`RESTIC_KEEP_DAILY="seven": want a whole number of snapshots, 0 or more`}},
		{"keep count negative, stack-back name", map[string]string{"KEEP_LAST": "-1"},
			[]string{`KEEP_LAST="-1": want a whole number`}},
		{"keep within", map[string]string{"RESTIC_KEEP_WITHIN": "30 days"},
			[]string{`RESTIC_KEEP_WITHIN="30 days": want a restic duration`, "30d"}},
		{"metrics port without colon", map[string]string{"METRICS_LISTEN": "9095"},
			[]string{`METRICS_LISTEN="9095": `, "a bare port needs a colon: write :9095"}},
		{"metrics URL", map[string]string{"METRICS_LISTEN": "http://0.0.0.0:9095"},
			[]string{`METRICS_LISTEN="http://0.0.0.0:9095": `, "not a URL"}},
		{"metrics host name with a bad character", map[string]string{"METRICS_LISTEN": "metrics_host:9095"},
			[]string{`METRICS_LISTEN="metrics_host:9095": `, `"metrics_host" is neither an IP address nor a host name`}},
		{"metrics host without port", map[string]string{"METRICS_LISTEN": "localhost"},
			[]string{`METRICS_LISTEN="localhost": want host:port or :port`}},
		{"password file missing", map[string]string{"RESTIC_PASSWORD": "", "RESTIC_PASSWORD_FILE": missing},
			[]string{`RESTIC_PASSWORD_FILE="` + missing + `": cannot open`, "no such file"}},
		{"password file unreadable", map[string]string{"RESTIC_PASSWORD": "", "RESTIC_PASSWORD_FILE": dir},
			[]string{`RESTIC_PASSWORD_FILE="` + dir + `": cannot read`}},
		{"no password", map[string]string{"RESTIC_PASSWORD": ""},
			[]string{"RESTIC_PASSWORD: not set (nor RESTIC_PASSWORD_FILE)"}},
		{"vault without address", map[string]string{"VAULT_ROLE_ID": "r", "VAULT_SECRET_ID_FILE": missing, "VAULT_SECRET_PATH": "ansible/data/app"},
			[]string{"VAULT_ADDR: not set, while VAULT_ROLE_ID, VAULT_SECRET_ID_FILE, VAULT_SECRET_PATH turn Vault on",
				`VAULT_SECRET_ID_FILE="` + missing + `": cannot open the secret_id file`}},
		{"vault maps no repository", map[string]string{"RESTIC_REPOSITORY": "", "VAULT_ADDR": "https://vault:8200", "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s",
			"VAULT_SECRET_PATH": "ansible/data/app", "VAULT_FIELD_MAP": "password=RESTIC_PASSWORD"},
			[]string{`RESTIC_REPOSITORY is not set and VAULT_FIELD_MAP="password=RESTIC_PASSWORD" maps no field of the Vault secret to it`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := map[string]string{"RESTIC_REPOSITORY": "/srv/repo"}
			maps.Copy(e, tt.env)
			_, err := Load(env(e))
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	// A pile of them: every one is in the error, each on its own line.
	t.Run("all at once", func(t *testing.T) {
		_, err := Load(env(map[string]string{
			"RESTIC_REPOSITORY": "ftp://x/y", "BACKUP_CRON": "61 * * * *", "RETENTION_CRON": "every day", "BACKUP_TZ": "Mars/Olympus",
			"BACKUP_STAGGER": "10", "RESTIC_KEEP_DAILY": "seven", "KEEP_LAST": "-1", "METRICS_LISTEN": "9095", "BACKUP_TIMEOUT": "1d",
			"VAULT_ROLE_ID": "r", "VAULT_SECRET_ID_FILE": missing, "VAULT_SECRET_PATH": "ansible/data/app", "VAULT_KV_VERSION": "3",
		}))
		require.Error(t, err)
		want := []string{`RESTIC_REPOSITORY="ftp://x/y": `, `BACKUP_CRON="61 * * * *": `, `RETENTION_CRON="every day": `, `BACKUP_TZ="Mars/Olympus": `,
			`BACKUP_STAGGER="10": `, `RESTIC_KEEP_DAILY="seven": `, `KEEP_LAST="-1": `, `METRICS_LISTEN="9095": `, `BACKUP_TIMEOUT="1d": `,
			"VAULT_ADDR: not set", `VAULT_SECRET_ID_FILE="` + missing + `": `, `VAULT_KV_VERSION="3": `}
		lines := strings.Split(err.Error(), "\n")
		assert.Len(t, lines, len(want), "one line each:\n%s", err)
		for _, w := range want {
			assert.Contains(t, err.Error(), w)
		}
	})
}

// Values that parse but would break later are refused at start-up, each
// with the variable, the value and the fix.
func TestLoadRejectsValuesThatBreakLater(t *testing.T) {
	tests := []struct {
		name, value string
		want        []string // in the message, besides NAME="value"
	}{
		{"HEALTH_MAX_AGE_FACTOR", "NaN", []string{"from 1 to 1000"}},
		{"HEALTH_MAX_AGE_FACTOR", "Inf", []string{"from 1 to 1000"}},
		{"HEALTH_MAX_AGE_FACTOR", "+Inf", []string{"from 1 to 1000"}},
		{"HEALTH_MAX_AGE_FACTOR", "infinity", []string{"from 1 to 1000"}},
		{"HEALTH_MAX_AGE_FACTOR", "1e300", []string{"from 1 to 1000"}},
		{"HEALTH_MAX_AGE_FACTOR", "0.5", []string{"from 1 to 1000"}},
		{"STOP_TIMEOUT", "500ms", []string{"at least 1s", "whole seconds"}},
		{"STOP_TIMEOUT", "999ms", []string{"at least 1s"}},
		{"STOP_TIMEOUT", "0", []string{"at least 1s"}},
		{"BACKUP_TIMEOUT", "1ns", []string{"at least 1m"}},
		{"BACKUP_TIMEOUT", "59s", []string{"at least 1m"}},
		{"BACKUP_TIMEOUT", "0", []string{"at least 1m"}},
		{"PLATBACK_PROJECTS", "a,b,a", []string{`project "a" is listed twice`}},
		{"PLATBACK_PROJECTS", "app, db ,app", []string{`project "app" is listed twice`}},
		{"METRICS_LISTEN", ":0", []string{"port number from 1 to 65535"}},
		{"METRICS_LISTEN", ":http", []string{"port number from 1 to 65535"}},
		{"METRICS_LISTEN", "10.0.0.5:70000", []string{"port number from 1 to 65535"}},
	}
	for _, bad := range []string{
		"abc", "5", "0/10", "11/10", "1/257", "1/2/3", "1/", "/", "0%", "-5%", "100.1%", "NaN%", "Inf%", "%",
		"0M", "-5M", "1.5G", "5MB", "5 %", "five percent",
	} {
		tests = append(tests, struct {
			name, value string
			want        []string
		}{"CHECK_READ_DATA_SUBSET", bad, []string{"want n/t", "a percentage above 0 and at most 100", "a size"}})
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{"RESTIC_REPOSITORY": "/srv/repo", tt.name: tt.value}))
			require.Error(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("%s=%q: ", tt.name, tt.value))
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// Values accepted, some made to work: the cache path is cleaned (mount
// destinations are compared with it), a stop timeout is rounded up to
// whole seconds, and every --read-data-subset form restic 0.19 takes passes.
func TestLoadAcceptsAndNormalises(t *testing.T) {
	tests := []struct {
		name, value string
		check       func(t *testing.T, c Config)
	}{
		{"PLATBACK_CACHE_DIR", "/cache/", func(t *testing.T, c Config) { assert.Equal(t, "/cache", c.CacheDir) }},
		{"PLATBACK_CACHE_DIR", "/var/cache//platback/./", func(t *testing.T, c Config) { assert.Equal(t, "/var/cache/platback", c.CacheDir) }},
		{"STOP_TIMEOUT", "1s", func(t *testing.T, c Config) { assert.Equal(t, time.Second, c.StopTimeout) }},
		{"STOP_TIMEOUT", "1500ms", func(t *testing.T, c Config) { assert.Equal(t, 2*time.Second, c.StopTimeout) }},
		{"STOP_TIMEOUT", "2m", func(t *testing.T, c Config) { assert.Equal(t, 2*time.Minute, c.StopTimeout) }},
		{"BACKUP_TIMEOUT", "1m", func(t *testing.T, c Config) { assert.Equal(t, time.Minute, c.BackupTimeout) }},
		{"HEALTH_MAX_AGE_FACTOR", "1", func(t *testing.T, c Config) { assert.Equal(t, 1.0, c.HealthFactor) }},
		{"HEALTH_MAX_AGE_FACTOR", "2.5", func(t *testing.T, c Config) { assert.Equal(t, 2.5, c.HealthFactor) }},
		{"HEALTH_MAX_AGE_FACTOR", "1000", func(t *testing.T, c Config) { assert.Equal(t, 1000.0, c.HealthFactor) }},
		{"PLATBACK_PROJECTS", "a, b", func(t *testing.T, c Config) { assert.Equal(t, []string{"a", "b"}, c.Projects) }},
		{"METRICS_LISTEN", "[::1]:9095", func(t *testing.T, c Config) { assert.Equal(t, "[::1]:9095", c.Listen) }},
	}
	for _, good := range []string{
		"1/10", "10/10", "1/1", "3/256", "5%", "2.5%", "0.01%", "100%", "100.0%",
		"500M", "500m", "2G", "1T", "1024K", "4096B", "4096b",
	} {
		tests = append(tests, struct {
			name, value string
			check       func(t *testing.T, c Config)
		}{"CHECK_READ_DATA_SUBSET", good, func(t *testing.T, c Config) { assert.Equal(t, good, c.CheckSubset) }})
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			c, err := Load(env(map[string]string{"RESTIC_REPOSITORY": "/srv/repo", tt.name: tt.value}))
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

// A repository URL with credentials in it is shown redacted: no part of
// the user:password reaches the start-up error.
func TestLoadRedactsRepositoryCredentials(t *testing.T) {
	for _, repo := range []string{
		"s3:https://AKIAEXAMPLEKEY:wJalrXUtnFEMIsecret@minio.internal/restic-app-bucket",
		"s3:http://AKIAEXAMPLEKEY:wJalrXUtnFEMIsecret@127.0.0.1:9000/",
		"https://backupuser:hunter2hunter2@rest.internal/app", // not a restic form
	} {
		t.Run(repo, func(t *testing.T) {
			_, err := Load(env(map[string]string{"RESTIC_REPOSITORY": repo}))
			require.Error(t, err)
			msg := err.Error()
			assert.Contains(t, msg, "RESTIC_REPOSITORY=")
			assert.Contains(t, msg, "***@")
			for _, secret := range []string{"AKIAEXAMPLEKEY", "wJalrXUtnFEMIsecret", "backupuser", "hunter2"} {
				assert.NotContains(t, msg, secret)
			}
		})
	}
}

// The README's variable table is MarkdownTable, word for word.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	assert.Contains(t, string(readme), MarkdownTable(), "paste config.MarkdownTable() into README.md")
}

// Load holds where the credentials come from, checked: the source is built
// from it (vaultcreds.NewSource) without reading the environment again.
func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("pw\n"), 0o600))
	vault := map[string]string{"VAULT_ADDR": "https://vault.internal:8200", "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s",
		"VAULT_SECRET_PATH": "ansible/data/stackback_app", "RESTIC_PASSWORD": ""}
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, s vaultcreds.Settings)
	}{
		{"plain password", map[string]string{"RESTIC_REPOSITORY": "/srv/repo"}, func(t *testing.T, s vaultcreds.Settings) {
			assert.False(t, s.UsesVault())
			p, ok := s.Plain()
			require.True(t, ok)
			assert.Equal(t, vaultcreds.PlainConfig{ResticPassword: "test-password", ResticRepository: "/srv/repo"}, p)
		}},
		{"plain files", map[string]string{"RESTIC_REPOSITORY": "/srv/repo", "RESTIC_PASSWORD": "", "RESTIC_PASSWORD_FILE": pw,
			"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY_FILE": pw}, func(t *testing.T, s vaultcreds.Settings) {
			p, ok := s.Plain()
			require.True(t, ok)
			assert.Equal(t, vaultcreds.PlainConfig{ResticPasswordFile: pw, AWSAccessKeyID: "AK", AWSSecretAccessKeyFile: pw, ResticRepository: "/srv/repo"}, p)
		}},
		{"vault", vault, func(t *testing.T, s vaultcreds.Settings) {
			assert.True(t, s.UsesVault())
			cfg, ok := s.Vault()
			require.True(t, ok)
			assert.Equal(t, "https://vault.internal:8200", cfg.Address)
			assert.Equal(t, vaultcreds.SecretLocation{Mount: "ansible", Path: "stackback_app", KVVersion: 2}, cfg.Secret)
			assert.Equal(t, vaultcreds.DefaultFieldMap(), cfg.Fields)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.env))
			require.NoError(t, err)
			tt.check(t, c.Credentials)
			src, err := vaultcreds.NewSource(c.Credentials)
			require.NoError(t, err)
			require.NoError(t, src.Close(t.Context()))
		})
	}

	// With a bad credentials' variable the Config still says which source
	// was meant (for the RESTIC_REPOSITORY message), and holds no usable one.
	bad := maps.Clone(vault)
	bad["VAULT_ADDR"] = ""
	c, err := Load(env(bad))
	require.ErrorContains(t, err, "VAULT_ADDR: not set")
	assert.NotContains(t, err.Error(), "RESTIC_REPOSITORY is not set")
	assert.True(t, c.Credentials.UsesVault())
	_, err = vaultcreds.NewSource(c.Credentials)
	require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
}

// The restic binary for commands that load nothing else (version, worker).
func TestResticBinary(t *testing.T) {
	for in, want := range map[string]string{"": "restic", "  ": "restic", "/usr/local/bin/restic": "/usr/local/bin/restic", " /opt/restic ": "/opt/restic"} {
		assert.Equal(t, want, ResticBinary(env(map[string]string{"PLATBACK_RESTIC": in})), "%q", in)
		c, err := Load(env(map[string]string{"RESTIC_REPOSITORY": "/srv/repo", "PLATBACK_RESTIC": in}))
		require.NoError(t, err)
		assert.Equal(t, want, c.Restic, "Load agrees for %q", in)
	}
}

// METRICS_LISTEN set and empty turns the endpoint off (os.Getenv alone
// cannot tell it from unset, which means the default :9095).
func TestMetricsListenEmptyTurnsItOff(t *testing.T) {
	base := map[string]string{"RESTIC_REPOSITORY": "/srv/restic", "RESTIC_PASSWORD": "pw"}
	lookup := func(extra map[string]string) func(string) (string, bool) {
		return func(name string) (string, bool) {
			if v, ok := extra[name]; ok {
				return v, true
			}
			v, ok := base[name]
			return v, ok
		}
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"unset":      {nil, ":9095"},
		"set empty":  {map[string]string{"METRICS_LISTEN": ""}, ""},
		"off":        {map[string]string{"METRICS_LISTEN": "off"}, ""},
		"an address": {map[string]string{"METRICS_LISTEN": "127.0.0.1:9101"}, "127.0.0.1:9101"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Load(Env(lookup(tc.env)))
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.Listen)
			h, err := LoadHealth(Env(lookup(tc.env)))
			require.NoError(t, err)
			assert.Equal(t, tc.want, h.Listen)
		})
	}
}
