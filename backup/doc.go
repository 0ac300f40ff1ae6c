// Package backup drives a pinned restic binary as a subprocess: it makes sure
// a repository exists (creating the S3 bucket and initialising the repository
// only when that is certainly right), backs up paths and streams, applies
// retention, checks, lists and restores snapshots.
//
// Every call has a deadline and honours context cancellation: restic gets
// SIGINT first and is killed if it does not stop. Errors are values to test
// with errors.Is (ErrWrongPassword, ErrRepoNotFound, ErrLocked, ...), and no
// error or log line carries a credential.
package backup
