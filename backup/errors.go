package backup

import (
	"errors"
	"fmt"
)

// Errors callers can test with errors.Is.
var (
	// ErrRepoNotFound: restic says no repository exists at the URL (exit 10).
	ErrRepoNotFound = errors.New("repository does not exist")
	// ErrWrongPassword: the repository exists but no key opens with the password (exit 12).
	ErrWrongPassword = errors.New("wrong repository password")
	// ErrLocked: the repository stayed locked by another process (exit 11).
	ErrLocked = errors.New("repository is locked")
	// ErrBucketMissing: the S3 bucket does not exist and may not be created.
	ErrBucketMissing = errors.New("bucket does not exist")
	// ErrAccessDenied: the S3 service refused the credentials for the bucket.
	ErrAccessDenied = errors.New("access denied")
	// ErrPartialBackup: restic saved a snapshot but could not read some files (exit 3).
	ErrPartialBackup = errors.New("backup is incomplete: some files could not be read")
	// ErrNoSummary: restic ended without reporting a snapshot.
	ErrNoSummary = errors.New("restic reported no summary")
	// ErrInterrupted: the call was cancelled or ran past its deadline.
	ErrInterrupted = errors.New("restic was interrupted")
	// ErrUnsupportedRestic: the restic binary is not a version this package was tested with.
	ErrUnsupportedRestic = errors.New("unsupported restic version")
	// ErrPolicyRemovesAll: a retention policy would remove every snapshot of a group.
	ErrPolicyRemovesAll = errors.New("retention policy would remove every snapshot of a group")
	// ErrInitRace: the repository did not open right after it was initialised.
	ErrInitRace = errors.New("repository does not open after init")
	// ErrBadURL: the repository URL cannot be used.
	ErrBadURL = errors.New("bad repository URL")
)

// ResticError is a failed restic run: the command, its exit code and the
// tail of what it printed on stderr, with credentials removed. It matches
// the sentinel errors above with errors.Is according to the exit code.
type ResticError struct {
	Command  string // restic subcommand, e.g. "backup"
	ExitCode int    // -1 when restic did not exit on its own
	Message  string // restic's error message (exit_error JSON or stderr tail), redacted
	cause    error
}

func (e *ResticError) Error() string {
	status := fmt.Sprintf("exit status %d", e.ExitCode)
	if e.ExitCode < 0 {
		status = "did not finish"
	}
	if e.cause != nil {
		status += " (" + e.cause.Error() + ")"
	}
	msg := e.Message
	if msg == "" {
		msg = "restic printed no message"
	}
	return fmt.Sprintf("restic %s: %s: %s", e.Command, status, msg)
}

// Unwrap returns the sentinel error matching the exit code, if any.
func (e *ResticError) Unwrap() error { return e.cause }

// causeOf maps restic's documented exit codes to sentinel errors.
func causeOf(code int) error {
	switch code {
	case 3:
		return ErrPartialBackup
	case 10:
		return ErrRepoNotFound
	case 11:
		return ErrLocked
	case 12:
		return ErrWrongPassword
		// 130 (interrupted) is ErrInterrupted only when the caller cancelled:
		// restic also exits 130 when a --stdin-from-command producer fails.
	}
	return nil
}
