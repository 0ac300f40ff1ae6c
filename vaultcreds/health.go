package vaultcreds

import (
	"context"
	"fmt"
)

// Health is what Vault's sys/health says (no token needed).
type Health struct {
	Initialized bool
	Sealed      bool
	Standby     bool
	Version     string
}

// CheckHealth asks the Vault of cfg (its address, namespace and TLS
// settings, as a login would use them) whether it answers, is initialised
// and unsealed, within ctx and cfg.RequestTimeout. It sends no credential.
// The error names VAULT_ADDR and what is wrong; a sealed or uninitialised
// Vault is an error wrapping ErrUnavailable.
func CheckHealth(ctx context.Context, cfg Config) (Health, error) {
	cfg = cfg.withDefaults()
	cl, err := newAPIClient(cfg)
	if err != nil {
		return Health{}, err
	}
	resp, err := cl.Sys().HealthWithContext(ctx)
	if err != nil {
		return Health{}, fmt.Errorf("%w: %s=%s does not answer sys/health: %v", ErrUnavailable, EnvVaultAddr, cfg.Address, err)
	}
	h := Health{Initialized: resp.Initialized, Sealed: resp.Sealed, Standby: resp.Standby, Version: resp.Version}
	switch {
	case !h.Initialized:
		return h, fmt.Errorf("%w: Vault at %s=%s is not initialised", ErrUnavailable, EnvVaultAddr, cfg.Address)
	case h.Sealed:
		return h, fmt.Errorf("%w: Vault at %s=%s is sealed: unseal it (vault operator unseal)", ErrUnavailable, EnvVaultAddr, cfg.Address)
	}
	return h, nil
}
