package vaultcreds_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed/vaultbed"
	"github.com/platback/platback/vaultcreds"
)

// TestVaultTLS runs a -dev-tls server: VAULT_CACERT is honoured as the Vault
// CLI honours it; an untrusted certificate or an http/https mix-up is a
// configuration error naming the variable, at once, not a retry storm.
// (An http:// address for a TLS listener is not tested: Vault resets the
// connection, which looks like any network failure and is retried.)
func TestVaultTLS(t *testing.T) {
	s := vaultbed.StartTLS(t)
	secrets := newSecretSet()
	secrets.add("bed secret value", s.Secret["password"], s.Secret["access_key"], s.Secret["secret_key"])
	secrets.add("secret_id", s.SecretID)
	secrets.add("role_id", s.RoleID)
	t.Cleanup(func() { secrets.check(t) })
	require.True(t, strings.HasPrefix(s.Addr, "https://"))

	t.Run("CACert", func(t *testing.T) {
		env := appRoleEnv(t, s, s.RoleID, s.SecretID)
		env["VAULT_CACERT"] = s.CACert
		c, _ := newClient(t, secrets, env)
		creds, err := fetch(t, secrets, c, 20*time.Second)
		require.NoError(t, err)
		assert.Equal(t, s.Secret["password"], creds.Get(vaultcreds.EnvResticPassword))
	})

	t.Run("SkipVerify", func(t *testing.T) {
		env := appRoleEnv(t, s, s.RoleID, s.SecretID)
		env["VAULT_SKIP_VERIFY"] = "true"
		c, _ := newClient(t, secrets, env)
		_, err := fetch(t, secrets, c, 20*time.Second)
		require.NoError(t, err)
	})

	t.Run("UntrustedCertificate", func(t *testing.T) {
		c, buf := newClient(t, secrets, appRoleEnv(t, s, s.RoleID, s.SecretID))
		start := time.Now()
		_, err := fetch(t, secrets, c, 20*time.Second)
		require.ErrorIs(t, err, vaultcreds.ErrInvalidConfig)
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.Zero(t, buf.count("retrying"))
		assert.Contains(t, err.Error(), "VAULT_CACERT")
		assert.Contains(t, err.Error(), "certificate")
		t.Logf("%v", err)
	})

}
