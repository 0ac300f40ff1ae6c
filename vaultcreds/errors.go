package vaultcreds

import (
	"errors"
	"fmt"
)

// Errors callers can test with errors.Is. The errors returned by this package
// wrap one of them and add what went wrong and what to do; their text never
// contains a secret_id, a token or a secret value.
var (
	// ErrNotConfigured is returned by ConfigFromEnv when no Vault variable is
	// set at all: the caller should fall back to plain environment variables
	// (see FromEnv and SourceFromEnv).
	ErrNotConfigured = errors.New("vaultcreds: Vault is not configured")

	// ErrInvalidConfig marks a configuration problem found at start-up or by
	// Vault (a mount that does not exist, an unknown KV version). It is
	// returned as a *ConfigError naming the variable to fix.
	ErrInvalidConfig = errors.New("vaultcreds: invalid configuration")

	// ErrInvalidSecretID means Vault refused the AppRole login: the secret_id
	// (or role_id) is wrong, expired or used up, or a response-wrapped
	// secret_id was already unwrapped. Retrying does not help; an operator
	// must deliver a new secret_id.
	ErrInvalidSecretID = errors.New("vaultcreds: AppRole login rejected")

	// ErrPermissionDenied means Vault answered 403 to the read of the secret:
	// the AppRole's policies do not grant read on the path.
	ErrPermissionDenied = errors.New("vaultcreds: permission denied")

	// ErrSecretNotFound means there is no secret (or no live KV v2 version)
	// at the configured path.
	ErrSecretNotFound = errors.New("vaultcreds: secret not found")

	// ErrMissingField means the secret exists but lacks a required field of
	// the field map, or the field is empty or not a string.
	ErrMissingField = errors.New("vaultcreds: missing field")

	// ErrUnavailable means Vault could not be reached or did not answer
	// usefully (down, sealed, 5xx, rate-limited) until the retry deadline.
	ErrUnavailable = errors.New("vaultcreds: Vault unavailable")

	// ErrClosed is returned by Fetch after Close.
	ErrClosed = errors.New("vaultcreds: client closed")
)

// ConfigError is a start-up configuration problem. It names the variable, its
// value when that value is not secret, and how to fix it. It matches
// ErrInvalidConfig with errors.Is.
type ConfigError struct {
	// Var is the environment variable (or the Config field's variable) at fault.
	Var string
	// Value is the offending value, empty when the value is secret or unset.
	Value string
	// Problem says what is wrong.
	Problem string
	// Fix says what to do, when there is something to say.
	Fix string
	// Err is an underlying error (for example from reading a file), if any.
	Err error
}

// Error implements error.
func (e *ConfigError) Error() string {
	s := "vaultcreds: " + e.Var
	if e.Value != "" {
		s += fmt.Sprintf("=%q", e.Value)
	}
	s += ": " + e.Problem
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Fix != "" {
		s += " (" + e.Fix + ")"
	}
	return s
}

// Is reports whether target is ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }
