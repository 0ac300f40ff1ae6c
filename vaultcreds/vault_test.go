package vaultcreds_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed/vaultbed"
	"github.com/platback/platback/vaultcreds"
)

// TestVault runs against one real dev server (Vault, or OpenBao with
// PLATBACK_VAULT=openbao) started for the whole test. At the end, no log
// line, error text or printed value of any subtest may contain a secret:
// password, keys, secret_id, role_id, wrapping token or token.
func TestVault(t *testing.T) {
	s := vaultbed.Start(t)
	secrets := newSecretSet()
	secrets.add("bed secret value", s.Secret["password"], s.Secret["access_key"], s.Secret["secret_key"])
	secrets.add("secret_id", s.SecretID)
	secrets.add("role_id", s.RoleID)
	secrets.add("root token", s.RootToken)
	t.Cleanup(func() { secrets.check(t) })

	want := map[string]string{
		vaultcreds.EnvResticPassword: s.Secret["password"],
		vaultcreds.EnvAWSAccessKeyID: s.Secret["access_key"],
		vaultcreds.EnvAWSSecretKey:   s.Secret["secret_key"],
	}

	// The user's setup: AppRole files and the Ansible lookup's path form.
	t.Run("KV2UserPathForm", func(t *testing.T) {
		env := appRoleEnv(t, s, s.RoleID, s.SecretID)
		src, err := vaultcreds.SourceFromEnv(getenv(env))
		require.NoError(t, err)
		require.IsType(t, &vaultcreds.Client{}, src)
		require.NoError(t, src.Close(context.Background()))

		c, _ := newClient(t, secrets, env)
		creds, err := fetch(t, secrets, c, 20*time.Second)
		require.NoError(t, err)
		assert.Equal(t, want, creds.Env())
		_, hasRepo := creds.Lookup(vaultcreds.EnvResticRepository)
		assert.False(t, hasRepo, "optional repository field absent from the secret")
	})

	// The sidecar's path: the settings are checked at start-up (the
	// secret_id file read once, to see it is there and not empty), the
	// client is built from them later, and it reads the file at its login:
	// the secret_id delivered in between is the one it logs in with.
	t.Run("SettingsThenSourceReadsAtLogin", func(t *testing.T) {
		env := appRoleEnv(t, s, s.RoleID, "not-the-secret-id-yet")
		settings, err := vaultcreds.SettingsFromEnv(getenv(env))
		require.NoError(t, err)
		log, _ := newLogger(t, secrets)
		src, err := vaultcreds.NewSource(settings, vaultcreds.WithLogger(log))
		require.NoError(t, err)
		c := src.(*vaultcreds.Client)
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		require.NoError(t, os.WriteFile(env["VAULT_SECRET_ID_FILE"], []byte(s.SecretID+"\n"), 0o600))
		creds, err := fetch(t, secrets, c, 20*time.Second)
		require.NoError(t, err)
		assert.Equal(t, want, creds.Env())
	})

	// `vault kv get` style (no data/ segment) and explicit mount + path:
	// the client asks Vault the mount's version.
	t.Run("KV2DetectedVersion", func(t *testing.T) {
		for name, set := range map[string]map[string]string{
			"cli path form":  {"VAULT_SECRET_PATH": vaultbed.KV2Mount + "/" + vaultbed.SecretName},
			"mount and path": {"VAULT_SECRET_PATH": "", "VAULT_KV_MOUNT": vaultbed.KV2Mount, "VAULT_KV_PATH": vaultbed.SecretName},
		} {
			env := appRoleEnv(t, s, s.RoleID, s.SecretID)
			for k, v := range set {
				env[k] = v
			}
			c, buf := newClient(t, secrets, env)
			creds, err := fetch(t, secrets, c, 20*time.Second)
			require.NoError(t, err, name)
			assert.Equal(t, want, creds.Env(), name)
			assert.Contains(t, buf.String(), `"kv_version":2`, name)
		}
	})

	t.Run("KV1", func(t *testing.T) {
		repo := "s3:http://127.0.0.1:9000/restic-stackback-v1-bucket"
		v1 := map[string]string{"password": "pw1-" + vaultbed.Random(8), "access_key": "AKV1" + vaultbed.Random(6), "secret_key": "sk1-" + vaultbed.Random(10), "repository": repo}
		secrets.add("kv1 value", v1["password"], v1["access_key"], v1["secret_key"])
		s.PutKV1(t, vaultbed.KV1Mount, "stackback_v1", vaultbed.ToAny(v1))
		for name, version := range map[string]string{"explicit version 1": "1", "detected": ""} {
			env := appRoleEnv(t, s, s.RoleID, s.SecretID)
			env["VAULT_SECRET_PATH"] = vaultbed.KV1Mount + "/stackback_v1"
			env["VAULT_KV_VERSION"] = version
			c, _ := newClient(t, secrets, env)
			creds, err := fetch(t, secrets, c, 20*time.Second)
			require.NoError(t, err, name)
			assert.Equal(t, map[string]string{
				vaultcreds.EnvResticPassword:   v1["password"],
				vaultcreds.EnvAWSAccessKeyID:   v1["access_key"],
				vaultcreds.EnvAWSSecretKey:     v1["secret_key"],
				vaultcreds.EnvResticRepository: repo,
			}, creds.Env(), name)
			assert.NotContains(t, creds.SecretValues(), repo, "the repository is not redacted from restic's output")
		}
	})

	t.Run("CustomFieldMap", func(t *testing.T) {
		env := appRoleEnv(t, s, s.RoleID, s.SecretID)
		env["VAULT_FIELD_MAP"] = "password=RESTIC_PASSWORD, secret_key=B2_ACCOUNT_KEY, missing?=RESTIC_REPOSITORY"
		c, _ := newClient(t, secrets, env)
		creds, err := fetch(t, secrets, c, 20*time.Second)
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"RESTIC_PASSWORD": s.Secret["password"], "B2_ACCOUNT_KEY": s.Secret["secret_key"]}, creds.Env())
	})

	// A wrapping token unwraps once: the same client keeps the secret_id
	// (and logs in again with it after its token was revoked), a restarted
	// sidecar holding the same wrapping token gets a clear error without
	// retries, and a freshly delivered wrapping token works again.
	t.Run("WrappedSecretID", func(t *testing.T) {
		wrap := s.NewWrappedSecretID(t, vaultbed.RoleName, 5*time.Minute)
		secrets.add("wrapping token", wrap)
		env := appRoleEnv(t, s, s.RoleID, wrap)
		env["VAULT_SECRET_ID_WRAPPED"] = "true"

		a, abuf := newClient(t, secrets, env)
		creds, err := fetch(t, secrets, a, 20*time.Second)
		require.NoError(t, err)
		assert.Equal(t, want, creds.Env())
		first := a.TokenForTest()

		// Revoke the kept token behind the client's back: the next run logs
		// in again with the secret_id unwrapped before.
		require.NoError(t, s.Root.Auth().Token().RevokeTree(first))
		creds, err = fetch(t, secrets, a, 20*time.Second)
		require.NoError(t, err)
		assert.Equal(t, want, creds.Env())
		assert.NotEqual(t, first, a.TokenForTest())
		assert.Equal(t, 2, abuf.count("logged in with AppRole"))
		assert.Equal(t, 1, abuf.count("unwrapped the response-wrapped secret_id"))

		b, bbuf := newClient(t, secrets, env)
		start := time.Now()
		_, err = fetch(t, secrets, b, 20*time.Second)
		require.ErrorIs(t, err, vaultcreds.ErrInvalidSecretID)
		assert.Less(t, time.Since(start), 2*time.Second, "no retries")
		assert.Zero(t, bbuf.count("retrying"))
		msg := err.Error()
		assert.Contains(t, msg, "VAULT_SECRET_ID_FILE")
		assert.Contains(t, msg, "fresh one")
		assert.Contains(t, msg, "-wrap-ttl")
		t.Logf("second unwrap: %v", err)

		fresh := s.NewWrappedSecretID(t, vaultbed.RoleName, 5*time.Minute)
		secrets.add("wrapping token", fresh)
		writeFile(t, "", env["VAULT_SECRET_ID_FILE"], fresh)
		creds, err = fetch(t, secrets, b, 20*time.Second)
		require.NoError(t, err)
		assert.Equal(t, want, creds.Env())
	})

	// Each run reads the secret again: a new KV version applies at once.
	t.Run("RotatedSecret", func(t *testing.T) {
		name := "stackback_rotating"
		data := map[string]string{"password": "old-" + vaultbed.Random(8), "access_key": "AKOLD" + vaultbed.Random(4), "secret_key": "old-sk-" + vaultbed.Random(8)}
		secrets.add("rotating value", data["password"], data["access_key"], data["secret_key"])
		s.PutKV2(t, vaultbed.KV2Mount, name, vaultbed.ToAny(data))
		env := appRoleEnv(t, s, s.RoleID, s.SecretID)
		env["VAULT_SECRET_PATH"] = vaultbed.KV2Mount + "/data/" + name
		c, _ := newClient(t, secrets, env)
		creds, err := fetch(t, secrets, c, 20*time.Second)
		require.NoError(t, err)
		assert.Equal(t, data["password"], creds.Get(vaultcreds.EnvResticPassword))

		data["password"] = "new-" + vaultbed.Random(8)
		data["secret_key"] = "new-sk-" + vaultbed.Random(8)
		secrets.add("rotated value", data["password"], data["secret_key"])
		s.PutKV2(t, vaultbed.KV2Mount, name, vaultbed.ToAny(data))
		creds, err = fetch(t, secrets, c, 20*time.Second)
		require.NoError(t, err)
		assert.Equal(t, data["password"], creds.Get(vaultcreds.EnvResticPassword))
		assert.Equal(t, data["secret_key"], creds.Get(vaultcreds.EnvAWSSecretKey))
	})

	// The role's token TTL is 3 s. A client holding its token across an 8 s
	// run keeps it alive with the lifetime watcher (same token, still valid,
	// reused without a new login); a client without renewal loses it after
	// the TTL and must log in again. Close revokes the token.
	t.Run("TokenRenewal", func(t *testing.T) {
		env := appRoleEnv(t, s, s.RoleID, s.SecretID)
		c, buf := newClient(t, secrets, env)
		ctl, ctlBuf := newClient(t, secrets, env, vaultcreds.WithoutRenewal())
		_, err := fetch(t, secrets, c, 20*time.Second)
		require.NoError(t, err)
		_, err = fetch(t, secrets, ctl, 20*time.Second)
		require.NoError(t, err)
		tok, ctlTok := c.TokenForTest(), ctl.TokenForTest()
		start := time.Now()

		time.Sleep(vaultbed.TokenTTL + 1500*time.Millisecond)
		_, err = s.TokenClient(t, ctlTok).Auth().Token().LookupSelf()
		require.Error(t, err, "without renewal the token expires after its TTL")
		_, err = fetch(t, secrets, ctl, 20*time.Second)
		require.NoError(t, err)
		assert.NotEqual(t, ctlTok, ctl.TokenForTest(), "expired token replaced by a new login")
		assert.Equal(t, 2, ctlBuf.count("logged in with AppRole"))

		time.Sleep(8*time.Second - time.Since(start))
		_, err = s.TokenClient(t, tok).Auth().Token().LookupSelf()
		require.NoError(t, err, "the renewed token still works after %s", time.Since(start).Round(time.Second))
		// TTLs count whole seconds: a lookup just before a renewal can read
		// 0 on a busy machine; the renewal then brings it back up.
		assert.Eventually(t, func() bool {
			look, err := s.TokenClient(t, tok).Auth().Token().LookupSelf()
			if err != nil {
				return false
			}
			ttl, _ := look.TokenTTL()
			return ttl > 0
		}, 3*time.Second, 200*time.Millisecond, "the token's TTL is renewed")
		creds, err := fetch(t, secrets, c, 20*time.Second)
		require.NoError(t, err)
		assert.Equal(t, want, creds.Env())
		assert.Equal(t, tok, c.TokenForTest(), "the renewed token is reused")
		assert.Equal(t, 1, buf.count("logged in with AppRole"))
		assert.GreaterOrEqual(t, buf.count("token renewed"), 2)

		require.NoError(t, c.Close(context.Background()))
		_, err = s.TokenClient(t, tok).Auth().Token().LookupSelf()
		require.Error(t, err, "Close revokes the token")
		assert.Contains(t, buf.String(), "token revoked")
		_, err = c.Fetch(context.Background())
		require.ErrorIs(t, err, vaultcreds.ErrClosed)
	})

	t.Run("WrongSecretID", func(t *testing.T) {
		for name, ids := range map[string][2]string{
			"wrong secret_id": {s.RoleID, "11111111-2222-3333-4444-" + vaultbed.Random(6)},
			"wrong role_id":   {"99999999-2222-3333-4444-" + vaultbed.Random(6), s.SecretID},
		} {
			secrets.add("wrong id", ids[0], ids[1])
			c, buf := newClient(t, secrets, appRoleEnv(t, s, ids[0], ids[1]))
			start := time.Now()
			_, err := fetch(t, secrets, c, 20*time.Second)
			require.ErrorIs(t, err, vaultcreds.ErrInvalidSecretID, name)
			assert.Less(t, time.Since(start), 2*time.Second, "%s: no retries", name)
			assert.Zero(t, buf.count("retrying"), name)
			assert.Contains(t, err.Error(), "VAULT_SECRET_ID_FILE", name)
			assert.Contains(t, err.Error(), "auth/approle/role/<role>/secret-id", name)
			t.Logf("%s: %v", name, err)
		}
	})

	t.Run("MissingField", func(t *testing.T) {
		for name, data := range map[string]map[string]any{
			"absent": {"password": "pw-partial-" + vaultbed.Random(6), "access_key": "AKPART" + vaultbed.Random(4)},
			"empty":  {"password": "pw-empty-" + vaultbed.Random(6), "access_key": "AKEMPTY" + vaultbed.Random(4), "secret_key": ""},
		} {
			secrets.add("partial value", data["password"].(string), data["access_key"].(string))
			path := "stackback_partial_" + name
			s.PutKV2(t, vaultbed.KV2Mount, path, data)
			env := appRoleEnv(t, s, s.RoleID, s.SecretID)
			env["VAULT_SECRET_PATH"] = vaultbed.KV2Mount + "/data/" + path
			c, buf := newClient(t, secrets, env)
			creds, err := fetch(t, secrets, c, 20*time.Second)
			require.ErrorIs(t, err, vaultcreds.ErrMissingField, name)
			assert.True(t, creds.IsZero(), "no partial credentials")
			assert.Contains(t, err.Error(), vaultbed.KV2Mount+"/data/"+path)
			assert.Contains(t, err.Error(), `"secret_key"`)
			assert.Contains(t, err.Error(), "AWS_SECRET_ACCESS_KEY")
			assert.Zero(t, buf.count("retrying"))
			t.Logf("%s: %v", name, err)
		}
	})

	t.Run("PermissionDenied", func(t *testing.T) {
		s.WritePolicy(t, "elsewhere", `path "ansible/data/other" { capabilities = ["read"] }`)
		roleID := s.CreateRole(t, "noread", map[string]any{"token_policies": "elsewhere", "token_ttl": 60})
		secretID := s.NewSecretID(t, "noread")
		secrets.add("noread ids", roleID, secretID)
		c, _ := newClient(t, secrets, appRoleEnv(t, s, roleID, secretID))
		_, err := fetch(t, secrets, c, 20*time.Second)
		require.ErrorIs(t, err, vaultcreds.ErrPermissionDenied)
		assert.Contains(t, err.Error(), vaultbed.SecretPath)
		t.Logf("%v", err)
	})

	t.Run("SecretNotFound", func(t *testing.T) {
		env := appRoleEnv(t, s, s.RoleID, s.SecretID)
		env["VAULT_SECRET_PATH"] = vaultbed.KV2Mount + "/data/stackback_nothere"
		c, _ := newClient(t, secrets, env)
		_, err := fetch(t, secrets, c, 20*time.Second)
		require.ErrorIs(t, err, vaultcreds.ErrSecretNotFound)
		assert.Contains(t, err.Error(), "ansible/data/stackback_nothere")
	})

	t.Run("WrongAppRoleMount", func(t *testing.T) {
		env := appRoleEnv(t, s, s.RoleID, s.SecretID)
		env["VAULT_APPROLE_MOUNT"] = "approle-nope"
		c, _ := newClient(t, secrets, env)
		_, err := fetch(t, secrets, c, 20*time.Second)
		require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
		assert.Contains(t, err.Error(), "VAULT_APPROLE_MOUNT")
		t.Logf("%v", err)
	})

	t.Run("HTTPSForPlainHTTP", func(t *testing.T) {
		env := appRoleEnv(t, s, s.RoleID, s.SecretID)
		env["VAULT_ADDR"] = "https://" + strings.TrimPrefix(s.Addr, "http://")
		c, buf := newClient(t, secrets, env)
		_, err := fetch(t, secrets, c, 20*time.Second)
		require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
		assert.Zero(t, buf.count("retrying"))
		assert.Contains(t, err.Error(), "VAULT_ADDR")
		assert.Contains(t, err.Error(), "http://")
		t.Logf("%v", err)
	})

	// Everything a user might print or log after a successful run, at
	// debug level, through every formatting path.
	t.Run("NothingSecretPrinted", func(t *testing.T) {
		env := appRoleEnv(t, s, s.RoleID, s.SecretID)
		env["VAULT_SECRET_ID"] = s.SecretID // the plain variable variant, printed below
		env["VAULT_SECRET_ID_FILE"] = ""
		cfg, err := vaultcreds.ConfigFromEnv(getenv(env))
		require.NoError(t, err)
		c, _ := newClient(t, secrets, env)
		creds, err := fetch(t, secrets, c, 20*time.Second)
		require.NoError(t, err)
		log, _ := newLogger(t, secrets)
		log.Info("run", "creds", creds, "config", cfg, "client", c)
		log.Info("run", slog.Any("creds", &creds), slog.Any("cfg", &cfg))
		var printed []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			printed = append(printed, fmt.Sprintf(verb, creds), fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, c), fmt.Sprintf(verb, &creds))
		}
		nested := struct {
			run   string
			creds vaultcreds.Credentials
			Creds vaultcreds.Credentials
		}{"nightly", creds, creds}
		printed = append(printed, fmt.Sprintf("%v %+v %#v", nested, nested, nested), creds.String(), creds.GoString(), cfg.String())
		for _, v := range []any{creds, cfg, nested, map[string]any{"c": creds}} {
			b, err := json.Marshal(v)
			require.NoError(t, err)
			printed = append(printed, string(b))
		}
		joined := strings.Join(printed, "\n")
		secrets.watchString("printed values", joined)
		assert.Contains(t, joined, "RESTIC_PASSWORD")
		assert.Contains(t, joined, vaultcreds.Redacted)
		assert.Equal(t, []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTIC_PASSWORD"}, creds.Names())
	})
}
