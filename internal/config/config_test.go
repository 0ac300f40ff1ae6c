package config

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
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
		`BACKUP_CRON: schedule: cron "0 2 * *"`,
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

// The README's variable table is MarkdownTable, word for word.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	assert.Contains(t, string(readme), MarkdownTable(), "paste config.MarkdownTable() into README.md")
}
