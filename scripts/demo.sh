#!/usr/bin/env bash
# The README's demo command (make demo): builds the pinned tools, starts a
# throwaway MinIO, backs up a generated folder with the engine, restores it
# and compares. Everything it starts is stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/tools.sh restic minio
go run ./internal/demo
