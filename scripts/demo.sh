#!/usr/bin/env bash
# The README's demo command (make demo): it builds the pinned tools, then runs
# examples/mattermost/docker-compose.yml with real docker-compose against a
# throwaway MinIO and Vault (images built locally, nothing pulled): sidecar
# plan, run-once, snapshots, a wipe of the whole stack, a restore, a check.
# Everything it starts is removed at the end (PLATBACK_DEMO_KEEP=1 keeps a
# failed demo running for a look). The end-to-end test is make e2e.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/tools.sh restic minio vault
exec go run ./internal/demo
