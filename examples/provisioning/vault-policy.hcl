# Read-only on the app's one secret, the KV v2 path the sidecar reads
# (VAULT_SECRET_PATH=ansible/data/stackback_{{ app_name }}), and nothing else.
# {{ app_name }} is filled in by approle.sh (or Ansible's template module).
# The token's own renewal and revocation come from Vault's "default" policy,
# which the role keeps (token_no_default_policy stays false).
path "ansible/data/stackback_{{ app_name }}" {
  capabilities = ["read"]
}
