#!/usr/bin/env bash
# The README's demo command (make demo). It builds the pinned tools, then:
#  1. the engine alone: a throwaway MinIO, a bucket and repository created,
#     a folder backed up, restored and compared;
#  2. the whole thing: the platback/sidecar image built locally, a throwaway
#     MinIO, Vault and two compose-like stacks (app volume + bind mount,
#     postgres, mariadb); the sidecar takes its secrets from Vault, runs a
#     scheduled backup and run-once, then everything is wiped and restored
#     and compared. Everything it starts is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/tools.sh restic minio vault
go run ./internal/demo
echo "demo: now the sidecar in a compose stack (a few minutes; the first run also builds the database images)"
log=$(mktemp)
if ! go test -count=1 -timeout 40m -run '^TestEndToEnd$' -v ./cmd/sidecar > "$log" 2>&1; then
  tail -100 "$log"
  echo "demo failed (full log: $log)" >&2
  exit 1
fi
# The test's "demo:" lines and their continuation lines tell the story.
awk '/e2e_test.go:[0-9]+: demo:/ {show=1; sub(/^ +e2e_test.go:[0-9]+: /, ""); print; next}
     show && /^        / {sub(/^        /, "  "); print; next}
     {show=0}' "$log"
rm -f "$log"
echo "demo: OK"
