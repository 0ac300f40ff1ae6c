// Package errkind lets an error cross a process boundary as text (a
// worker's response, a run's result file) and still match the backup
// package's sentinel errors with errors.Is on the other side.
package errkind

import (
	"errors"

	"github.com/platback/platback/backup"
)

// kinds are the sentinel errors carried by name.
var kinds = map[string]error{
	"partial":        backup.ErrPartialBackup,
	"repo-not-found": backup.ErrRepoNotFound,
	"wrong-password": backup.ErrWrongPassword,
	"locked":         backup.ErrLocked,
	"interrupted":    backup.ErrInterrupted,
	"no-summary":     backup.ErrNoSummary,
	"bucket-missing": backup.ErrBucketMissing,
	"access-denied":  backup.ErrAccessDenied,
	"unsupported":    backup.ErrUnsupportedRestic,
	"bad-url":        backup.ErrBadURL,
	"removes-all":    backup.ErrPolicyRemovesAll,
	"init-race":      backup.ErrInitRace,
}

// Of names the sentinel err matches, or "" for none.
func Of(err error) string {
	if err == nil {
		return ""
	}
	for name, sentinel := range kinds {
		if errors.Is(err, sentinel) {
			return name
		}
	}
	return ""
}

// New returns an error with message msg that matches the sentinel named
// kind (errors.Is); nil when msg is empty.
func New(msg, kind string) error {
	if msg == "" {
		return nil
	}
	if sentinel, ok := kinds[kind]; ok {
		return &kindError{msg: msg, sentinel: sentinel}
	}
	return errors.New(msg)
}

type kindError struct {
	msg      string
	sentinel error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.sentinel }
