package vaultcreds_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/vaultcreds"
)

func TestParseSecretPath(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    vaultcreds.SecretLocation
		wantErr string
	}{
		{in: "ansible/data/stackback_mattermost", want: vaultcreds.SecretLocation{Mount: "ansible", Path: "stackback_mattermost", KVVersion: 2}},
		{in: "/ansible/data/stackback_n8n/", want: vaultcreds.SecretLocation{Mount: "ansible", Path: "stackback_n8n", KVVersion: 2}},
		{in: "team/kv/data/apps/mattermost", want: vaultcreds.SecretLocation{Mount: "team/kv", Path: "apps/mattermost", KVVersion: 2}},
		{in: "secret/data/data", want: vaultcreds.SecretLocation{Mount: "secret", Path: "data", KVVersion: 2}},
		{in: "kv1/stackback_mattermost", want: vaultcreds.SecretLocation{Mount: "kv1", Path: "stackback_mattermost"}},
		{in: "ansible/stackback_mattermost", want: vaultcreds.SecretLocation{Mount: "ansible", Path: "stackback_mattermost"}},
		{in: "ansible/metadata/stackback_mattermost", wantErr: "use ansible/data/stackback_mattermost"},
		{in: "ansible/data/", wantErr: "nothing after"},
		{in: "ansible", wantErr: "want <mount>/data/<path>"},
		{in: "", wantErr: "empty path"},
		{in: "ansible//data/x", wantErr: "double slash"},
		{in: "ansible/../sys/x", wantErr: `".." segments`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := vaultcreds.ParseSecretPath(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseFieldMap(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    vaultcreds.FieldMap
		wantErr string
	}{
		{in: vaultcreds.DefaultFieldMap().String(), want: vaultcreds.DefaultFieldMap()},
		{in: " password = RESTIC_PASSWORD , key?=B2_ACCOUNT_KEY,", want: vaultcreds.FieldMap{
			{Field: "password", Env: "RESTIC_PASSWORD"}, {Field: "key", Env: "B2_ACCOUNT_KEY", Optional: true}}},
		{in: "password", wantErr: "has no '='"},
		{in: "=RESTIC_PASSWORD", wantErr: "empty field name"},
		{in: "password=RESTIC-PASSWORD", wantErr: "not a valid environment variable name"},
		{in: "password=A,password=B", wantErr: "mapped twice"},
		{in: "password=A,other=A", wantErr: "target of two fields"},
		{in: "password?=RESTIC_PASSWORD", wantErr: "every field is optional"},
		{in: " , ", wantErr: "no field=VARIABLE pair"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := vaultcreds.ParseFieldMap(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	roleFile := writeFile(t, dir, "role_id", "role-123\n")
	sidFile := writeFile(t, dir, "secret_id", "  sid-456 \n")
	emptyFile := writeFile(t, dir, "empty", " \n")
	missing := filepath.Join(dir, "missing")
	base := func() map[string]string {
		return map[string]string{
			"VAULT_ADDR":           "https://vault.internal:8200",
			"VAULT_ROLE_ID_FILE":   roleFile,
			"VAULT_SECRET_ID_FILE": sidFile,
			"VAULT_SECRET_PATH":    "ansible/data/stackback_mattermost",
		}
	}

	t.Run("user setup and defaults", func(t *testing.T) {
		cfg, err := vaultcreds.ConfigFromEnv(getenv(base()))
		require.NoError(t, err)
		assert.Equal(t, "https://vault.internal:8200", cfg.Address)
		assert.Equal(t, vaultcreds.SecretLocation{Mount: "ansible", Path: "stackback_mattermost", KVVersion: 2}, cfg.Secret)
		assert.Equal(t, "approle", cfg.AuthMount)
		assert.Equal(t, vaultcreds.DefaultFieldMap(), cfg.Fields)
		assert.Equal(t, vaultcreds.DefaultRetryTimeout, cfg.RetryTimeout)
		assert.Equal(t, vaultcreds.DefaultRequestTimeout, cfg.RequestTimeout)
		assert.False(t, cfg.SecretIDWrapped)
	})

	t.Run("everything set", func(t *testing.T) {
		env := base()
		delete(env, "VAULT_SECRET_PATH")
		for k, v := range map[string]string{
			"VAULT_NAMESPACE": "platform", "VAULT_SKIP_VERIFY": "true", "VAULT_TLS_SERVER_NAME": "vault",
			"VAULT_SECRET_ID_WRAPPED": "1", "VAULT_APPROLE_MOUNT": "auth/approle-backup/",
			"VAULT_KV_MOUNT": "team/kv", "VAULT_KV_PATH": "apps/mattermost", "VAULT_KV_VERSION": "2",
			"VAULT_FIELD_MAP": "password=RESTIC_PASSWORD", "VAULT_CLIENT_TIMEOUT": "10", "VAULT_RETRY_TIMEOUT": "45s",
		} {
			env[k] = v
		}
		cfg, err := vaultcreds.ConfigFromEnv(getenv(env))
		require.NoError(t, err)
		assert.Equal(t, "platform", cfg.Namespace)
		assert.True(t, cfg.TLS.Insecure)
		assert.Equal(t, "vault", cfg.TLS.TLSServerName)
		assert.True(t, cfg.SecretIDWrapped)
		assert.Equal(t, "approle-backup", cfg.AuthMount)
		assert.Equal(t, vaultcreds.SecretLocation{Mount: "team/kv", Path: "apps/mattermost", KVVersion: 2}, cfg.Secret)
		assert.Equal(t, vaultcreds.FieldMap{{Field: "password", Env: "RESTIC_PASSWORD"}}, cfg.Fields)
		assert.Equal(t, "10s", cfg.RequestTimeout.String())
		assert.Equal(t, "45s", cfg.RetryTimeout.String())
	})

	t.Run("explicit KV v1 keeps a data segment", func(t *testing.T) {
		env := base()
		env["VAULT_SECRET_PATH"] = "kv1/data/stackback"
		env["VAULT_KV_VERSION"] = "1"
		cfg, err := vaultcreds.ConfigFromEnv(getenv(env))
		require.NoError(t, err)
		assert.Equal(t, vaultcreds.SecretLocation{Mount: "kv1", Path: "data/stackback", KVVersion: 1}, cfg.Secret)
	})

	t.Run("not configured", func(t *testing.T) {
		_, err := vaultcreds.ConfigFromEnv(getenv(map[string]string{"VAULT_ADDR": "https://vault:8200", "RESTIC_PASSWORD": "x"}))
		require.ErrorIs(t, err, vaultcreds.ErrNotConfigured)
	})

	for _, tc := range []struct {
		name    string
		set     map[string]string
		wantVar string
		want    []string // substrings of the message
	}{
		{"secret_id file missing", map[string]string{"VAULT_SECRET_ID_FILE": missing}, "VAULT_SECRET_ID_FILE", []string{missing, "cannot open the secret_id file", "no such file"}},
		{"secret_id file empty", map[string]string{"VAULT_SECRET_ID_FILE": emptyFile}, "VAULT_SECRET_ID_FILE", []string{emptyFile, "secret_id file is empty"}},
		{"wrapped secret_id file empty", map[string]string{"VAULT_SECRET_ID_FILE": emptyFile, "VAULT_SECRET_ID_WRAPPED": "true"}, "VAULT_SECRET_ID_FILE", []string{"response-wrapping token of the secret_id file is empty"}},
		{"no secret_id", map[string]string{"VAULT_SECRET_ID_FILE": ""}, "VAULT_SECRET_ID_FILE", []string{"neither it nor VAULT_SECRET_ID"}},
		{"both secret_ids", map[string]string{"VAULT_SECRET_ID": "sid-inline"}, "VAULT_SECRET_ID", []string{"set only one"}},
		{"role_id file missing", map[string]string{"VAULT_ROLE_ID_FILE": missing}, "VAULT_ROLE_ID_FILE", []string{"role_id file"}},
		{"no role_id", map[string]string{"VAULT_ROLE_ID_FILE": ""}, "VAULT_ROLE_ID_FILE", []string{"neither it nor VAULT_ROLE_ID"}},
		{"no address", map[string]string{"VAULT_ADDR": ""}, "VAULT_ADDR", []string{"not set"}},
		{"bad address", map[string]string{"VAULT_ADDR": "vault:8200"}, "VAULT_ADDR", []string{`"vault:8200"`, "not an http(s) URL"}},
		{"metadata path", map[string]string{"VAULT_SECRET_PATH": "ansible/metadata/x"}, "VAULT_SECRET_PATH", []string{`"ansible/metadata/x"`, "use ansible/data/x"}},
		{"no path", map[string]string{"VAULT_SECRET_PATH": ""}, "VAULT_SECRET_PATH", []string{"not set"}},
		{"path and mount", map[string]string{"VAULT_KV_MOUNT": "ansible"}, "VAULT_SECRET_PATH", []string{"either"}},
		{"mount without path", map[string]string{"VAULT_SECRET_PATH": "", "VAULT_KV_MOUNT": "ansible"}, "VAULT_KV_PATH", []string{"not set"}},
		{"bad kv version", map[string]string{"VAULT_KV_VERSION": "3"}, "VAULT_KV_VERSION", []string{`"3"`, "want 1 or 2"}},
		{"bad field map", map[string]string{"VAULT_FIELD_MAP": "password:RESTIC_PASSWORD"}, "VAULT_FIELD_MAP", []string{`"password:RESTIC_PASSWORD"`, "no '='", "for example password=RESTIC_PASSWORD"}},
		{"bad skip verify", map[string]string{"VAULT_SKIP_VERIFY": "yes please"}, "VAULT_SKIP_VERIFY", []string{"not a boolean"}},
		{"bad wrapped", map[string]string{"VAULT_SECRET_ID_WRAPPED": "maybe"}, "VAULT_SECRET_ID_WRAPPED", []string{"not a boolean"}},
		{"bad retry timeout", map[string]string{"VAULT_RETRY_TIMEOUT": "soon"}, "VAULT_RETRY_TIMEOUT", []string{"not a positive duration"}},
		{"client cert without key", map[string]string{"VAULT_CLIENT_CERT": roleFile}, "VAULT_CLIENT_CERT", []string{"set both"}},
		{"ca cert missing", map[string]string{"VAULT_CACERT": missing}, "VAULT_CACERT", []string{"cannot read"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := base()
			for k, v := range tc.set {
				env[k] = v
			}
			_, err := vaultcreds.ConfigFromEnv(getenv(env))
			require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
			var ce *vaultcreds.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.wantVar, ce.Var)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "sid-456")
			assert.NotContains(t, err.Error(), "sid-inline")
			assert.NotContains(t, err.Error(), "role-123")
		})
	}
}

// Every bad Vault variable is reported at once, not one per restart.
func TestConfigFromEnvReportsEveryBadVariable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	_, err := vaultcreds.ConfigFromEnv(getenv(map[string]string{
		// no VAULT_ADDR
		"VAULT_ROLE_ID_FILE":   dir, // a directory: cannot be read
		"VAULT_SECRET_ID_FILE": missing,
		"VAULT_SECRET_PATH":    "ansible/metadata/stackback_app",
		"VAULT_KV_VERSION":     "3",
		"VAULT_SKIP_VERIFY":    "yes please",
		"VAULT_FIELD_MAP":      "password:RESTIC_PASSWORD",
		"VAULT_RETRY_TIMEOUT":  "soon",
	}))
	require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
	var vars []string
	var joined interface{ Unwrap() []error }
	require.ErrorAs(t, err, &joined)
	for _, e := range joined.Unwrap() {
		var ce *vaultcreds.ConfigError
		require.ErrorAs(t, e, &ce)
		vars = append(vars, ce.Var)
	}
	assert.ElementsMatch(t, []string{"VAULT_ADDR", "VAULT_ROLE_ID_FILE", "VAULT_SECRET_ID_FILE", "VAULT_SECRET_PATH",
		"VAULT_KV_VERSION", "VAULT_SKIP_VERIFY", "VAULT_FIELD_MAP", "VAULT_RETRY_TIMEOUT"}, vars, "each bad variable once")
	msg := err.Error()
	for _, want := range []string{
		"VAULT_ADDR: not set, while VAULT_ROLE_ID_FILE, VAULT_SECRET_ID_FILE, VAULT_SECRET_PATH turn Vault on", "https://vault.internal:8200",
		`VAULT_ROLE_ID_FILE="` + dir + `": cannot read the role_id file`,
		`VAULT_SECRET_ID_FILE="` + missing + `": cannot open the secret_id file`,
		`VAULT_SECRET_PATH="ansible/metadata/stackback_app"`, `VAULT_KV_VERSION="3"`, `VAULT_SKIP_VERIFY="yes please"`,
		`VAULT_FIELD_MAP="password:RESTIC_PASSWORD"`, `VAULT_RETRY_TIMEOUT="soon"`,
	} {
		assert.Contains(t, msg, want)
	}
}

func TestNewValidates(t *testing.T) {
	_, err := vaultcreds.New(vaultcreds.Config{Address: "http://127.0.0.1:1", RoleID: "r", SecretIDFile: filepath.Join(t.TempDir(), "nope"),
		Secret: vaultcreds.SecretLocation{Mount: "ansible", Path: "x", KVVersion: 2}})
	require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "VAULT_SECRET_ID_FILE")
}

func TestConfigRedacts(t *testing.T) {
	cfg := vaultcreds.Config{Address: "https://vault:8200", RoleID: "role-secretish", SecretID: "sid-very-secret",
		Secret: vaultcreds.SecretLocation{Mount: "ansible", Path: "x", KVVersion: 2}}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), cfg.String(), mustJSON(t, cfg), fmt.Sprintf("%v", &cfg)} {
		assert.NotContains(t, s, "sid-very-secret")
		assert.NotContains(t, s, "role-secretish")
		assert.Contains(t, s, "https://vault:8200")
	}
}

func TestFromEnv(t *testing.T) {
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", "file-password\n")
	keyFile := writeFile(t, dir, "key", "file-key")
	empty := writeFile(t, dir, "empty", "\n")

	t.Run("plain", func(t *testing.T) {
		src, err := vaultcreds.FromEnv(getenv(map[string]string{
			"RESTIC_PASSWORD": "plain-pw", "AWS_ACCESS_KEY_ID": "AKPLAIN", "AWS_SECRET_ACCESS_KEY": "plain-sk", "RESTIC_REPOSITORY": "s3:http://minio/b",
		}))
		require.NoError(t, err)
		creds, err := src.Credentials(context.Background())
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"RESTIC_PASSWORD": "plain-pw", "AWS_ACCESS_KEY_ID": "AKPLAIN", "AWS_SECRET_ACCESS_KEY": "plain-sk", "RESTIC_REPOSITORY": "s3:http://minio/b"}, creds.Env())
		assert.NotContains(t, fmt.Sprintf("%v %+v %#v", src, src, src), "plain-pw")
	})

	t.Run("docker secrets files, read at each run", func(t *testing.T) {
		src, err := vaultcreds.FromEnv(getenv(map[string]string{
			"RESTIC_PASSWORD_FILE": pwFile, "AWS_ACCESS_KEY_ID": "AKFILE", "AWS_SECRET_ACCESS_KEY_FILE": keyFile,
		}))
		require.NoError(t, err)
		creds, err := src.Credentials(context.Background())
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"RESTIC_PASSWORD": "file-password", "AWS_ACCESS_KEY_ID": "AKFILE", "AWS_SECRET_ACCESS_KEY": "file-key"}, creds.Env())
		writeFile(t, dir, "pw", "rotated-password\n")
		creds, err = src.Credentials(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "rotated-password", creds.Get("RESTIC_PASSWORD"))
	})

	t.Run("every bad variable at once", func(t *testing.T) {
		_, err := vaultcreds.FromEnv(getenv(map[string]string{
			"RESTIC_PASSWORD_FILE": filepath.Join(dir, "nope"), "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY_FILE": filepath.Join(dir, "nope-too"),
		}))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "RESTIC_PASSWORD_FILE")
		assert.Contains(t, err.Error(), "AWS_SECRET_ACCESS_KEY_FILE")
	})

	t.Run("SourceFromEnv falls back to plain variables", func(t *testing.T) {
		src, err := vaultcreds.SourceFromEnv(getenv(map[string]string{"VAULT_ADDR": "https://vault:8200", "RESTIC_PASSWORD": "pw"}))
		require.NoError(t, err)
		require.IsType(t, &vaultcreds.EnvSource{}, src)
	})

	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantVar string
		want    string
	}{
		{"no password", map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, "RESTIC_PASSWORD", "or use Vault"},
		{"password twice", map[string]string{"RESTIC_PASSWORD": "pw", "RESTIC_PASSWORD_FILE": pwFile}, "RESTIC_PASSWORD", "set only one"},
		{"password file missing", map[string]string{"RESTIC_PASSWORD_FILE": filepath.Join(dir, "nope")}, "RESTIC_PASSWORD_FILE", "cannot open"},
		{"password file empty", map[string]string{"RESTIC_PASSWORD_FILE": empty}, "RESTIC_PASSWORD_FILE", "empty"},
		{"half an S3 key", map[string]string{"RESTIC_PASSWORD": "pw", "AWS_ACCESS_KEY_ID": "a"}, "AWS_SECRET_ACCESS_KEY", "while its pair is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := vaultcreds.FromEnv(getenv(tc.env))
			var ce *vaultcreds.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.wantVar, ce.Var)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"sealed 503", &api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}}, true},
		{"500", &api.ResponseError{StatusCode: 500}, true},
		{"502 from a proxy", &api.ResponseError{StatusCode: 502}, true},
		{"rate limited 429", fmt.Errorf("wrapped: %w", &api.ResponseError{StatusCode: 429}), true},
		{"412 not yet consistent", &api.ResponseError{StatusCode: 412}, true},
		{"connection refused", &url.Error{Op: "Get", URL: "http://127.0.0.1:1", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"400 invalid secret id", &api.ResponseError{StatusCode: 400}, false},
		{"403", &api.ResponseError{StatusCode: 403}, false},
		{"404", &api.ResponseError{StatusCode: 404}, false},
		{"unknown CA", &url.Error{Op: "Get", URL: "https://vault", Err: x509.UnknownAuthorityError{}}, false},
		{"config error", &vaultcreds.ConfigError{Var: "X"}, false},
		{"missing file", os.ErrNotExist, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, vaultcreds.Transient(tc.err))
		})
	}
}
