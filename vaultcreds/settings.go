package vaultcreds

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
)

// Settings says where a backup run's credentials come from, checked: Vault
// with AppRole (a Config) or plain variables (a PlainConfig). Get one from
// SettingsFromEnv, VaultSettings or PlainSettings, which check everything
// once and report every problem together; NewSource then builds the Source
// from it without checking or reading anything again.
//
// A secret file (VAULT_ROLE_ID_FILE, VAULT_SECRET_ID_FILE, RESTIC_PASSWORD_FILE,
// AWS_*_FILE…) is read once by that check, to fail at start-up when it is
// missing, unreadable or empty, and its content is not kept; after that it is
// read only when used: at each Vault login, or at each run for the plain
// variables, so a rotated secret applies without a restart.
//
// The zero Settings is not usable: NewSource refuses it. Settings print and
// log without any secret value.
type Settings struct {
	vault   bool
	checked bool
	vcfg    Config
	plain   PlainConfig
}

// SettingsFromEnv reads and checks the credentials' variables through getenv
// (os.Getenv in the sidecar): Vault when one of VAULT_ROLE_ID(_FILE),
// VAULT_SECRET_ID(_FILE), VAULT_SECRET_PATH, VAULT_KV_MOUNT or VAULT_KV_PATH
// is set (see ConfigFromEnv), the plain variables otherwise (see FromEnv).
// Each variable is read once. Every bad variable is reported, each a
// *ConfigError, joined with errors.Join when there are several.
//
// With an error, the Settings returned still says which source the variables
// select (UsesVault), so a caller can word its own messages; NewSource
// refuses it.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	cfg, err := ConfigFromEnv(getenv)
	switch {
	case errors.Is(err, ErrNotConfigured):
		return PlainSettings(plainConfigFromEnv(getenv))
	case err != nil:
		return Settings{vault: true}, err
	}
	return Settings{vault: true, checked: true, vcfg: cfg}, nil
}

// VaultSettings checks cfg (see Config.Validate, which reads the role_id and
// secret_id files once) and returns Settings for a Vault source.
func VaultSettings(cfg Config) (Settings, error) {
	cfg = cfg.withDefaults()
	cfg.Fields = slices.Clone(cfg.Fields)
	if err := cfg.Validate(); err != nil {
		return Settings{vault: true}, err
	}
	return Settings{vault: true, checked: true, vcfg: cfg}, nil
}

// PlainSettings checks p (see PlainConfig.Validate, which reads each _FILE
// once) and returns Settings for plain variables.
func PlainSettings(p PlainConfig) (Settings, error) {
	if err := p.Validate(); err != nil {
		return Settings{}, err
	}
	return Settings{checked: true, plain: p}, nil
}

// UsesVault reports whether the credentials come from Vault.
func (s Settings) UsesVault() bool { return s.vault }

// Vault returns the Vault configuration, defaults applied, and true when s
// is checked Settings of a Vault source.
func (s Settings) Vault() (Config, bool) {
	if !s.vault || !s.checked {
		return Config{}, false
	}
	c := s.vcfg
	c.Fields = slices.Clone(c.Fields)
	return c, true
}

// Plain returns the plain variables' configuration and true when s is
// checked Settings of a plain source.
func (s Settings) Plain() (PlainConfig, bool) {
	if s.vault || !s.checked {
		return PlainConfig{}, false
	}
	return s.plain, true
}

// errUnchecked is NewSource's answer to Settings that were not checked.
var errUnchecked = fmt.Errorf("%w: the credentials' Settings were not checked: get them from SettingsFromEnv, VaultSettings or PlainSettings, and stop at their error",
	ErrInvalidConfig)

// NewSource returns the Source s describes: a Vault *Client or an
// *EnvSource. It checks and reads nothing (s was checked when it was made)
// and does not contact Vault: the first Credentials call logs in.
func NewSource(s Settings, opts ...Option) (Source, error) {
	switch {
	case !s.checked:
		return nil, errUnchecked
	case s.vault:
		return newClient(s.vcfg, opts...)
	}
	return newEnvSource(s.plain), nil
}

// String describes the source without any secret value.
func (s Settings) String() string {
	switch {
	case !s.checked:
		return "vaultcreds.Settings{unchecked}"
	case s.vault:
		return "vaultcreds.Settings{Vault: " + s.vcfg.String() + "}"
	}
	return "vaultcreds.Settings{Plain: " + s.plain.String() + "}"
}

// GoString implements fmt.GoStringer (%#v) without any secret value.
func (s Settings) GoString() string { return s.String() }

// Format implements fmt.Formatter: every verb prints String.
func (s Settings) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue implements slog.LogValuer with no secret in it.
func (s Settings) LogValue() slog.Value {
	switch {
	case !s.checked:
		return slog.StringValue("unchecked")
	case s.vault:
		return slog.GroupValue(slog.Any("vault", s.vcfg))
	}
	return slog.GroupValue(slog.Any("plain", s.plain))
}

// MarshalJSON implements json.Marshaler with no secret in it.
func (s Settings) MarshalJSON() ([]byte, error) {
	switch {
	case !s.checked:
		return []byte(`{}`), nil
	case s.vault:
		return json.Marshal(map[string]any{"vault": s.vcfg})
	}
	return json.Marshal(map[string]any{"plain": s.plain})
}
