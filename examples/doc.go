// Package examples holds what a user copies: compose stacks with a
// platback/sidecar (mattermost, n8n, a stack-back migration), per-app
// provisioning (S3 policy, Vault policy and AppRole, an Ansible snippet) and
// the staggered schedules. Its tests run them as the user would, on the
// real components: docker-compose 1.29 and Compose v2's loader, platback's
// own planner and configuration, a real MinIO with restic, a real Vault.
package examples
