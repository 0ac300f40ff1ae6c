// Package doctor checks the whole chain a platback sidecar depends on — the
// Docker engine and its own compose project, the plan, Vault (or the plain
// credential variables), the S3 endpoint, bucket, permissions and bucket
// settings, the restic repository, each target's last snapshot, the
// schedule and its collisions with other sidecars on the engine — and says
// for each check pass, warn, fail or skip, with the fix.
//
// Run is read-only except for one small probe object it writes under
// platback-doctor/ in the repository's prefix (outside restic's
// directories) and deletes at once: it never creates the bucket or the
// repository, takes no restic lock, and never prints a secret value.
// Every check has its own deadline (Options.StepTimeout), and one failing
// check never hides the others: a check that needs a failed one is skipped
// with the reason.
package doctor
