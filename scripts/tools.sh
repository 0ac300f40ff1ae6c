#!/usr/bin/env bash
# Installs the pinned tools platback's tests and demo need into .tools/bin,
# built from the Go module proxy. Idempotent: a tool whose pinned version is
# already installed is skipped.
#
#   scripts/tools.sh [restic] [minio] [vault] [openbao]   (default: restic minio vault)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
mkdir -p "$bin"

RESTIC_VERSION=v0.19.1
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

# stamp NAME VERSION: true when NAME was already installed at VERSION.
installed() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" > "$bin/.$1.version"; }

install_restic() {
  installed restic "$RESTIC_VERSION" && return
  echo "tools: building restic $RESTIC_VERSION" >&2
  CGO_ENABLED=0 GOBIN="$bin" go install -trimpath -ldflags="-s -w" \
    "github.com/restic/restic/cmd/restic@$RESTIC_VERSION"
  mark restic "$RESTIC_VERSION"
}

install_minio() {
  installed minio "$MINIO_VERSION" && return
  echo "tools: building minio $MINIO_VERSION (a few minutes the first time)" >&2
  CGO_ENABLED=0 GOBIN="$bin" go install -trimpath -ldflags="-s -w" \
    "github.com/minio/minio@$MINIO_VERSION"
  mark minio "$MINIO_VERSION"
}

# Vault and OpenBao cannot be go-installed; each is built from its own small
# tools module (tools/vault, tools/openbao) whose go.mod/go.sum are committed.
install_server() { # name dir version ldflags
  local name=$1 dir=$2 version=$3 ldflags=$4
  installed "$name" "$version" && return
  echo "tools: building $name $version (several minutes the first time)" >&2
  (cd "$root/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$bin/$name" .)
  mark "$name" "$version"
}
install_vault() { install_server vault tools/vault v1.19.5 "-s -w"; }
install_openbao() {
  install_server bao tools/openbao v2.4.0 \
    "-s -w -X github.com/openbao/openbao/version.fullVersion=2.4.0"
}

[ $# -gt 0 ] || set -- restic minio vault
for tool in "$@"; do
  case "$tool" in
    restic) install_restic ;;
    minio) install_minio ;;
    vault) install_vault ;;
    openbao) install_openbao ;;
    *) echo "tools: unknown tool '$tool' (want restic, minio, vault or openbao)" >&2; exit 2 ;;
  esac
done
