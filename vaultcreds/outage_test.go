package vaultcreds_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed/vaultbed"
	"github.com/platback/platback/vaultcreds"
)

// TestVaultOutage uses a server of its own, since it rate-limits, seals and
// finally stops it. Between runs the client keeps a renewed token; each
// failure mode is retried with backoff within the deadline, then reported
// as ErrUnavailable naming VAULT_ADDR.
func TestVaultOutage(t *testing.T) {
	s := vaultbed.Start(t)
	secrets := newSecretSet()
	secrets.add("bed secret value", s.Secret["password"], s.Secret["access_key"], s.Secret["secret_key"])
	secrets.add("secret_id", s.SecretID)
	secrets.add("role_id", s.RoleID)
	t.Cleanup(func() { secrets.check(t) })

	c, buf := newClient(t, secrets, appRoleEnv(t, s, s.RoleID, s.SecretID))
	creds, err := fetch(t, secrets, c, 20*time.Second)
	require.NoError(t, err)
	require.Equal(t, s.Secret["password"], creds.Get(vaultcreds.EnvResticPassword))

	// 429: one read per 2 s on the mount. The second run is rate-limited,
	// waits and succeeds within its deadline.
	t.Run("RateLimited", func(t *testing.T) {
		remove, err := s.SetRateLimit("stackback-slow", vaultbed.KV2Mount+"/", 1, 2*time.Second)
		if err != nil {
			t.Skipf("%s has no rate-limit quotas: %v", s.Kind, err)
		}
		defer remove()
		before := buf.count("retrying")
		for i := 0; i < 2; i++ {
			_, err := fetch(t, secrets, c, 10*time.Second)
			require.NoError(t, err, "run %d", i+1)
		}
		assert.Greater(t, buf.count("retrying"), before, "the rate-limited read was retried")
		assert.Contains(t, buf.String(), "HTTP 429")
	})

	// Sealed: 503 on every request until the deadline.
	t.Run("Sealed", func(t *testing.T) {
		s.Seal(t)
		before := buf.count("retrying")
		start := time.Now()
		_, err := fetch(t, secrets, c, 3*time.Second)
		require.ErrorIs(t, err, vaultcreds.ErrUnavailable)
		assert.Less(t, time.Since(start), 4*time.Second)
		assert.GreaterOrEqual(t, buf.count("retrying")-before, 2)
		assert.Contains(t, err.Error(), "sealed")
		assert.Contains(t, err.Error(), "VAULT_ADDR")
		t.Logf("%v", err)
	})

	// Stopped: connection refused until the deadline.
	t.Run("Stopped", func(t *testing.T) {
		s.Stop()
		require.True(t, s.Exited())
		before := buf.count("retrying")
		start := time.Now()
		_, err := fetch(t, secrets, c, 3*time.Second)
		elapsed := time.Since(start)
		require.ErrorIs(t, err, vaultcreds.ErrUnavailable)
		assert.Less(t, elapsed, 4*time.Second)
		retries := buf.count("retrying") - before
		assert.GreaterOrEqual(t, retries, 2)
		msg := err.Error()
		assert.Contains(t, msg, s.Addr)
		assert.Contains(t, msg, "VAULT_ADDR")
		assert.Contains(t, msg, "connection refused")
		assert.Contains(t, msg, "attempts")
		t.Logf("%d retries in %s: %v", retries, elapsed.Round(time.Millisecond), err)

		// Close does not hang; it cannot revoke a token that may still be
		// valid, and says so (a token already past its TTL needs nothing).
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start = time.Now()
		err = c.Close(ctx)
		assert.Less(t, time.Since(start), 3*time.Second)
		if err != nil {
			assert.True(t, strings.Contains(err.Error(), "revoking"), err.Error())
		}
	})
}
