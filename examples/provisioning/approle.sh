#!/bin/sh
# approle.sh APP — the Vault side of one app's backups. Run it as an operator
# whose token may write policies and AppRole roles, with VAULT_ADDR and
# VAULT_TOKEN set as the vault CLI reads them:
#
#   VAULT_ADDR=https://vault.internal:8200 VAULT_TOKEN=… ./approle.sh mattermost
#
# It creates or updates
#   - the policy stackback-APP: read on ansible/data/stackback_APP, nothing
#     else (vault-policy.hcl with APP filled in);
#   - the AppRole role stackback-APP with that policy;
# and writes the role's role_id and a new secret_id into
# $PLATBACK_SECRETS_DIR/APP/ (default /etc/platback/APP/; the directory 0700,
# the files 0600), the directory the app's compose file mounts at
# /run/secrets. Files are replaced by rename, which the sidecar sees at its
# next login because the directory is mounted, not the files.
#
# It assumes AppRole at auth/approle and a KV v2 engine at ansible/, as on
# Platform One; otherwise, once:
#   vault auth enable approle
#   vault secrets enable -path=ansible kv-v2
# The secret itself (password, access_key, secret_key) is written by Ansible
# (ansible-snippet.yml), or by hand:
#   vault kv put -mount=ansible stackback_APP password=… access_key=… secret_key=…
set -eu

app=${1:?usage: approle.sh APP (the app name, e.g. mattermost)}
case $app in
*[!a-z0-9_-]*) echo "approle.sh: app name '$app': use lowercase letters, digits, - and _" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
dir=${PLATBACK_SECRETS_DIR:-/etc/platback}/$app
role=stackback-$app

# The sidecar keeps its token and renews it while it runs; when the token
# reaches its max TTL it logs in again, reading secret_id again. Short token
# lifetimes therefore cost nothing. The secret_id is used at every login, so
# it has no use limit; with SECRET_ID_TTL (e.g. 2160h) deliver a new one
# (re-run this script or the Ansible play) before it expires.
TOKEN_TTL=${TOKEN_TTL:-1h}
TOKEN_MAX_TTL=${TOKEN_MAX_TTL:-24h}
SECRET_ID_TTL=${SECRET_ID_TTL:-0}
# The addresses the app's VM reaches Vault from, e.g. 10.0.3.17/32: a
# secret_id or token copied elsewhere is then useless.
BIND_CIDRS=${BIND_CIDRS:-}

sed "s/{{ app_name }}/$app/g" "$here/vault-policy.hcl" | vault policy write "$role" -

# token_no_default_policy stays false: the "default" policy lets the token
# renew and revoke itself, which the sidecar does.
vault write "auth/approle/role/$role" \
	token_policies="$role" \
	token_ttl="$TOKEN_TTL" token_max_ttl="$TOKEN_MAX_TTL" \
	secret_id_ttl="$SECRET_ID_TTL" secret_id_num_uses=0 \
	${BIND_CIDRS:+secret_id_bound_cidrs="$BIND_CIDRS" token_bound_cidrs="$BIND_CIDRS"}

umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
vault read -field=role_id "auth/approle/role/$role/role-id" >"$dir/.role_id.new"
vault write -f -field=secret_id "auth/approle/role/$role/secret-id" >"$dir/.secret_id.new"
mv "$dir/.role_id.new" "$dir/role_id"
mv "$dir/.secret_id.new" "$dir/secret_id"
echo "approle.sh: role $role ready; role_id and secret_id in $dir" >&2
