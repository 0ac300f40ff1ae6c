// Package vaultcreds gives a backup run its restic and S3 credentials, either
// from HashiCorp Vault (or OpenBao) through an AppRole login at run time, or
// from plain environment variables, keeping them in memory only.
//
// With Vault, each run logs in (or reuses the previous, still-valid and
// renewed token) and reads the secret again from a KV v1 or v2 engine, so
// rotated secrets apply at the next run. The secret's fields map to
// RESTIC_PASSWORD, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally
// RESTIC_REPOSITORY, as the user's Ansible template did:
//
//	VAULT_ADDR=https://vault.internal:8200
//	VAULT_ROLE_ID_FILE=/run/secrets/role_id
//	VAULT_SECRET_ID_FILE=/run/secrets/secret_id
//	VAULT_SECRET_PATH=ansible/data/stackback_mattermost
//
// Without Vault, RESTIC_PASSWORD(_FILE), AWS_ACCESS_KEY_ID(_FILE),
// AWS_SECRET_ACCESS_KEY(_FILE) and RESTIC_REPOSITORY(_FILE) are read as
// stack-back reads them, and the optional COPY_RESTIC_PASSWORD(_FILE), the
// password of the sidecar's second copy (with Vault, a field mapped to
// COPY_RESTIC_PASSWORD).
//
// SettingsFromEnv reads the variables once and checks them all at start-up
// (each secret file read once, to fail early when it is missing or empty);
// NewSource builds the Source from those Settings later, reading nothing
// again. SourceFromEnv does both at once. The secret files are then read
// only when used: at each Vault login, or at each run for plain variables.
//
// A Credentials value never prints its values (fmt, JSON, slog), errors never
// contain a secret_id, token or value, and nothing secret is logged.
package vaultcreds
