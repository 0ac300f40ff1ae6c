package config

import (
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
)

// COPY_REPOSITORY and COPY_KEEP_*: each bad value refused at start-up
// naming the variable and the fix, every one reported; the copy keeps the
// primary's policy unless COPY_KEEP_* is set; Vault may fill the copy's
// repository and password, and a plain password beside Vault is refused.
func TestLoadCopy(t *testing.T) {
	vault := map[string]string{"VAULT_ADDR": "https://vault.internal:8200", "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s",
		"VAULT_SECRET_PATH": "ansible/data/stackback_app", "RESTIC_PASSWORD": "", "RESTIC_REPOSITORY": "s3:https://minio.internal/app"}
	with := func(base map[string]string, kv map[string]string) map[string]string {
		out := maps.Clone(base)
		maps.Copy(out, kv)
		return out
	}
	plain := map[string]string{"RESTIC_REPOSITORY": "s3:https://minio.internal/app"}
	bad := []struct {
		name string
		vars map[string]string
		want []string
	}{
		{"no bucket", with(plain, map[string]string{"COPY_REPOSITORY": "s3:https://minio.internal/"}), []string{`COPY_REPOSITORY="s3:https://minio.internal/"`, "no bucket"}},
		{"the primary itself", with(plain, map[string]string{"COPY_REPOSITORY": "s3:https://minio.internal/app/"}), []string{`COPY_REPOSITORY="s3:https://minio.internal/app/": it is RESTIC_REPOSITORY itself`}},
		{"credentials in the URL are not shown", map[string]string{"RESTIC_REPOSITORY": "rest:https://user:SECRETPW@host/repo", "COPY_REPOSITORY": "rest:https://user:SECRETPW@host/repo"},
			[]string{"COPY_REPOSITORY=", "it is RESTIC_REPOSITORY itself"}},
		{"keep without a copy", with(plain, map[string]string{"COPY_KEEP_DAILY": "7"}), []string{"COPY_KEEP_DAILY set without COPY_REPOSITORY: set COPY_REPOSITORY"}},
		{"password without a copy", with(plain, map[string]string{"COPY_RESTIC_PASSWORD": "pw"}), []string{"COPY_RESTIC_PASSWORD set without COPY_REPOSITORY"}},
		{"bad keep", with(plain, map[string]string{"COPY_REPOSITORY": "/srv/copy", "COPY_KEEP_DAILY": "seven", "COPY_KEEP_WITHIN": "2 weeks"}),
			[]string{`COPY_KEEP_DAILY="seven": want a whole number`, `COPY_KEEP_WITHIN="2 weeks": want a restic duration`}},
		{"plain password beside Vault", with(vault, map[string]string{"COPY_REPOSITORY": "/srv/copy", "COPY_RESTIC_PASSWORD_FILE": "/run/secrets/copy"}),
			[]string{"COPY_RESTIC_PASSWORD_FILE is set while the credentials come from Vault", "copy_password=COPY_RESTIC_PASSWORD"}},
		{"copy password file missing", with(plain, map[string]string{"COPY_REPOSITORY": "/srv/copy", "COPY_RESTIC_PASSWORD_FILE": "/nonexistent/copy-password"}),
			[]string{"COPY_RESTIC_PASSWORD_FILE", "/nonexistent/copy-password"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(tt.vars))
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "SECRETPW")
		})
	}

	t.Run("every bad copy variable in one error", func(t *testing.T) {
		_, err := Load(env(with(plain, map[string]string{"COPY_REPOSITORY": "s3:https://minio.internal/", "COPY_KEEP_LAST": "-1", "BACKUP_CRON": "daily"})))
		require.Error(t, err)
		for _, w := range []string{"COPY_REPOSITORY=", `COPY_KEEP_LAST="-1"`, `BACKUP_CRON="daily"`} {
			assert.Contains(t, err.Error(), w)
		}
	})

	pwFile := filepath.Join(t.TempDir(), "copy-password")
	require.NoError(t, os.WriteFile(pwFile, []byte("copy-pw\n"), 0o600))
	good := []struct {
		name   string
		vars   map[string]string
		copies bool
		repo   string
		policy backup.Policy
	}{
		{"no copy", plain, false, "", backup.Policy{}},
		{"the primary's policy", with(plain, map[string]string{"COPY_REPOSITORY": "s3:https://offsite.internal/app-copy", "RESTIC_KEEP_DAILY": "7"}),
			true, "s3:https://offsite.internal/app-copy", backup.Policy{Daily: 7}},
		{"its own policy", with(plain, map[string]string{"COPY_REPOSITORY": " /srv/copy ", "RESTIC_KEEP_DAILY": "7", "COPY_KEEP_MONTHLY": "12", "COPY_KEEP_WITHIN": "90d",
			"COPY_RESTIC_PASSWORD_FILE": pwFile}),
			true, "/srv/copy", backup.Policy{Within: "90d", Monthly: 12}},
		{"the default policy", with(plain, map[string]string{"COPY_REPOSITORY": "/srv/copy"}), true, "/srv/copy", backup.DefaultPolicy()},
		{"from Vault", with(vault, map[string]string{"VAULT_FIELD_MAP": "password=RESTIC_PASSWORD,copy_repository?=COPY_REPOSITORY,copy_password?=COPY_RESTIC_PASSWORD"}),
			true, "", backup.DefaultPolicy()},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.vars))
			require.NoError(t, err)
			assert.Equal(t, tt.copies, c.Copies())
			assert.Equal(t, tt.repo, c.CopyRepository)
			if tt.copies {
				assert.Equal(t, tt.policy, c.CopyPolicy)
			}
		})
	}
}

// AWS_DEFAULT_REGION (or AWS_REGION) is read; a URL in its place is
// refused naming the variable.
func TestLoadRegion(t *testing.T) {
	c, err := Load(env(map[string]string{"RESTIC_REPOSITORY": "s3:https://garage.internal/app", "AWS_REGION": " garage "}))
	require.NoError(t, err)
	assert.Equal(t, "garage", c.Region)
	_, err = Load(env(map[string]string{"RESTIC_REPOSITORY": "s3:https://garage.internal/app", "AWS_DEFAULT_REGION": "https://garage.internal"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `AWS_DEFAULT_REGION="https://garage.internal": want an S3 region name`)
}
