package vaultcreds_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/vaultcreds"
)

func TestSettingsFromEnv(t *testing.T) {
	dir := t.TempDir()
	roleFile := writeFile(t, dir, "role_id", "role-123\n")
	sidFile := writeFile(t, dir, "secret_id", "sid-456\n")
	pwFile := writeFile(t, dir, "pw", "file-password\n")
	missing := filepath.Join(dir, "missing")
	vaultEnv := map[string]string{
		"VAULT_ADDR": "https://vault.internal:8200", "VAULT_ROLE_ID_FILE": roleFile, "VAULT_SECRET_ID_FILE": sidFile,
		"VAULT_SECRET_PATH": "ansible/data/stackback_mattermost",
	}

	t.Run("vault", func(t *testing.T) {
		s, err := vaultcreds.SettingsFromEnv(getenv(vaultEnv))
		require.NoError(t, err)
		assert.True(t, s.UsesVault())
		cfg, ok := s.Vault()
		require.True(t, ok)
		want, err := vaultcreds.ConfigFromEnv(getenv(vaultEnv))
		require.NoError(t, err)
		assert.Equal(t, want, cfg, "the same Config as ConfigFromEnv, defaults applied")
		_, ok = s.Plain()
		assert.False(t, ok)
		src, err := vaultcreds.NewSource(s)
		require.NoError(t, err)
		assert.IsType(t, &vaultcreds.Client{}, src)
		require.NoError(t, src.Close(context.Background()))
	})

	t.Run("plain", func(t *testing.T) {
		s, err := vaultcreds.SettingsFromEnv(getenv(map[string]string{
			"VAULT_ADDR": "https://vault:8200", "RESTIC_PASSWORD_FILE": " " + pwFile + " ", "AWS_ACCESS_KEY_ID": "AKPLAIN", "AWS_SECRET_ACCESS_KEY": "plain-sk",
		}))
		require.NoError(t, err)
		assert.False(t, s.UsesVault(), "VAULT_ADDR alone does not turn Vault on")
		p, ok := s.Plain()
		require.True(t, ok)
		assert.Equal(t, vaultcreds.PlainConfig{ResticPasswordFile: pwFile, AWSAccessKeyID: "AKPLAIN", AWSSecretAccessKey: "plain-sk"}, p)
		_, ok = s.Vault()
		assert.False(t, ok)
		src, err := vaultcreds.NewSource(s)
		require.NoError(t, err)
		creds, err := src.Credentials(context.Background())
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"RESTIC_PASSWORD": "file-password", "AWS_ACCESS_KEY_ID": "AKPLAIN", "AWS_SECRET_ACCESS_KEY": "plain-sk"}, creds.Env())
	})

	// The errors are ConfigFromEnv's and FromEnv's, every bad variable at
	// once; the Settings still say which source was meant, and NewSource
	// refuses them.
	for _, tc := range []struct {
		name      string
		env       map[string]string
		usesVault bool
		want      []string
	}{
		{"bad vault", map[string]string{"VAULT_ROLE_ID_FILE": missing, "VAULT_SECRET_ID": "sid-inline", "VAULT_KV_VERSION": "3"}, true,
			[]string{"VAULT_ADDR: not set", `VAULT_ROLE_ID_FILE="` + missing + `": cannot open the role_id file`, "VAULT_SECRET_PATH: not set", `VAULT_KV_VERSION="3"`}},
		{"bad plain", map[string]string{"RESTIC_PASSWORD_FILE": missing, "AWS_ACCESS_KEY_ID": "a"}, false,
			[]string{`RESTIC_PASSWORD_FILE="` + missing + `": cannot open`, "AWS_SECRET_ACCESS_KEY: not set (nor AWS_SECRET_ACCESS_KEY_FILE) while its pair is"}},
		{"nothing", map[string]string{}, false, []string{"RESTIC_PASSWORD: not set (nor RESTIC_PASSWORD_FILE)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := vaultcreds.SettingsFromEnv(getenv(tc.env))
			require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "sid-inline")
			assert.Equal(t, tc.usesVault, s.UsesVault())
			_, ok := s.Vault()
			assert.False(t, ok)
			_, ok = s.Plain()
			assert.False(t, ok)
			_, err = vaultcreds.NewSource(s)
			require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
			assert.Contains(t, err.Error(), "not checked")
		})
	}

	t.Run("zero Settings", func(t *testing.T) {
		_, err := vaultcreds.NewSource(vaultcreds.Settings{})
		require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
	})
}

// Settings made by hand are checked like those from the environment.
func TestVaultAndPlainSettings(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	s, err := vaultcreds.VaultSettings(vaultcreds.Config{Address: "https://vault:8200", RoleID: "r", SecretID: "s",
		Secret: vaultcreds.SecretLocation{Mount: "ansible", Path: "app", KVVersion: 2}})
	require.NoError(t, err)
	cfg, ok := s.Vault()
	require.True(t, ok)
	assert.Equal(t, vaultcreds.DefaultAuthMount, cfg.AuthMount, "defaults applied")
	assert.Equal(t, vaultcreds.DefaultFieldMap(), cfg.Fields)

	_, err = vaultcreds.VaultSettings(vaultcreds.Config{Address: "https://vault:8200", RoleID: "r", SecretIDFile: missing,
		Secret: vaultcreds.SecretLocation{Mount: "ansible", Path: "app", KVVersion: 2}})
	require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
	assert.Contains(t, err.Error(), `VAULT_SECRET_ID_FILE="`+missing+`": cannot open the secret_id file`)

	s, err = vaultcreds.PlainSettings(vaultcreds.PlainConfig{ResticPassword: "pw"})
	require.NoError(t, err)
	assert.False(t, s.UsesVault())
	_, err = vaultcreds.PlainSettings(vaultcreds.PlainConfig{ResticPassword: "pw", ResticPasswordFile: missing, AWSAccessKeyIDFile: missing})
	require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
	for _, w := range []string{"RESTIC_PASSWORD: set together with RESTIC_PASSWORD_FILE", `AWS_ACCESS_KEY_ID_FILE="` + missing + `": cannot open`,
		"AWS_SECRET_ACCESS_KEY: not set (nor AWS_SECRET_ACCESS_KEY_FILE) while its pair is"} {
		assert.Contains(t, err.Error(), w)
	}
}

// NewSource reads no file: the check at start-up did, and the source reads
// them again only when it needs the value. A file missing between the
// check and the first run fails that run, not the construction.
func TestNewSourceReadsFilesOnlyWhenUsed(t *testing.T) {
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", "first-password\n")
	sidFile := writeFile(t, dir, "secret_id", "sid-456\n")

	plain, err := vaultcreds.SettingsFromEnv(getenv(map[string]string{"RESTIC_PASSWORD_FILE": pwFile}))
	require.NoError(t, err)
	vault, err := vaultcreds.SettingsFromEnv(getenv(map[string]string{"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_ROLE_ID": "r",
		"VAULT_SECRET_ID_FILE": sidFile, "VAULT_SECRET_PATH": "ansible/data/app"}))
	require.NoError(t, err)
	require.NoError(t, os.Remove(pwFile))
	require.NoError(t, os.Remove(sidFile))

	src, err := vaultcreds.NewSource(plain)
	require.NoError(t, err, "the file is not read again to build the source")
	_, err = src.Credentials(context.Background())
	require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig, "read at the run")
	assert.Contains(t, err.Error(), `RESTIC_PASSWORD_FILE="`+pwFile+`": cannot open`)
	writeFile(t, dir, "pw", "rotated-password\n")
	creds, err := src.Credentials(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "rotated-password", creds.Get("RESTIC_PASSWORD"))

	vsrc, err := vaultcreds.NewSource(vault, vaultcreds.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err, "the secret_id file is not read again to build the client")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = vsrc.Credentials(ctx)
	require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig, "read at the login")
	assert.Contains(t, err.Error(), `VAULT_SECRET_ID_FILE="`+sidFile+`": cannot open the secret_id file`)
	require.NoError(t, vsrc.Close(context.Background()))
}

// Settings and PlainConfig print and log file paths and variable names,
// never a value.
func TestSettingsRedact(t *testing.T) {
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", "file-password\n")
	plain, err := vaultcreds.SettingsFromEnv(getenv(map[string]string{
		"RESTIC_PASSWORD_FILE": pwFile, "AWS_ACCESS_KEY_ID": "AKSECRETISH", "AWS_SECRET_ACCESS_KEY": "sk-very-secret",
		"RESTIC_REPOSITORY": "s3:https://AKINURL:skinurl@minio/b",
	}))
	require.NoError(t, err)
	vault, err := vaultcreds.SettingsFromEnv(getenv(map[string]string{
		"VAULT_ADDR": "https://vault:8200", "VAULT_ROLE_ID": "role-secretish", "VAULT_SECRET_ID": "sid-very-secret", "VAULT_SECRET_PATH": "ansible/data/app",
	}))
	require.NoError(t, err)
	p, _ := plain.Plain()
	var printed []string
	for _, v := range []any{plain, vault, p, &plain, &p, struct{ S vaultcreds.Settings }{vault}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			printed = append(printed, fmt.Sprintf(verb, v))
		}
		b, err := json.Marshal(v)
		require.NoError(t, err)
		printed = append(printed, string(b))
	}
	var log bytes.Buffer
	slog.New(slog.NewJSONHandler(&log, nil)).Info("settings", "plain", plain, "vault", vault, "p", p)
	slog.New(slog.NewTextHandler(&log, nil)).Info("settings", "plain", plain, "vault", vault, "p", p)
	printed = append(printed, log.String())
	all := strings.Join(printed, "\n")
	for _, secret := range []string{"file-password", "AKSECRETISH", "sk-very-secret", "AKINURL", "skinurl", "role-secretish", "sid-very-secret"} {
		assert.NotContains(t, all, secret)
	}
	for _, want := range []string{"RESTIC_PASSWORD_FILE=" + pwFile, "AWS_ACCESS_KEY_ID=" + vaultcreds.Redacted, "https://vault:8200", `"RESTIC_PASSWORD_FILE":"` + pwFile + `"`} {
		assert.Contains(t, all, want)
	}
}
