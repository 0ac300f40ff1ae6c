package vaultcreds_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed/vaultbed"
	"github.com/platback/platback/vaultcreds"
)

// CheckHealth against a real server: up, sealed, and nothing listening.
func TestCheckHealth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Vault dev server")
	}
	s := vaultbed.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := vaultcreds.Config{Address: s.Addr}

	h, err := vaultcreds.CheckHealth(ctx, cfg)
	require.NoError(t, err)
	assert.True(t, h.Initialized)
	assert.False(t, h.Sealed)
	assert.NotEmpty(t, h.Version)

	s.Seal(t)
	h, err = vaultcreds.CheckHealth(ctx, cfg)
	assert.True(t, h.Sealed)
	assert.True(t, errors.Is(err, vaultcreds.ErrUnavailable), "%v", err)
	assert.ErrorContains(t, err, "is sealed")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := "http://" + ln.Addr().String()
	ln.Close()
	_, err = vaultcreds.CheckHealth(ctx, vaultcreds.Config{Address: addr})
	assert.True(t, errors.Is(err, vaultcreds.ErrUnavailable), "%v", err)
	assert.ErrorContains(t, err, "VAULT_ADDR="+addr+" does not answer")
}
