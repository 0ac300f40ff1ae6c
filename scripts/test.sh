#!/usr/bin/env bash
# The README's test command (make test): installs the pinned tools, then runs
# every test against the real components (restic, MinIO, Vault, Docker).
#   PLATBACK_VAULT=openbao scripts/test.sh   runs the Vault tests against OpenBao.
set -euo pipefail
cd "$(dirname "$0")/.."

vault_tool=vault
[ "${PLATBACK_VAULT:-vault}" = openbao ] && vault_tool=openbao
scripts/tools.sh restic minio "$vault_tool"

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt: these files need formatting:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -count=1 -timeout 25m ./...
