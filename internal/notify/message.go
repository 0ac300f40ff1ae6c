package notify

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/redact"
)

// Stack names the stack and its sidecar in messages.
type Stack struct {
	Project string // the compose project
	// Container is the sidecar's container name, for the commands of the
	// fix; empty outside a container.
	Container string
}

// Outcome is what a message needs of a run (package daemon builds it
// from the runner's Result). Error texts come from the runner, which
// builds them without credentials.
type Outcome struct {
	Start     time.Time
	Duration  time.Duration
	Targets   []Target
	Err       error    // the run's own error (credentials, repository, nothing to back up…)
	Retention []string // retention errors
	Check     string   // the restic check's error
	// CopiedTo is the second repository the run's snapshots were copied
	// to ("" when there is none or the copy failed: CopyMessage says).
	CopiedTo string
}

// Target is one target's part of an Outcome.
type Target struct {
	Path, Kind string
	BytesAdded uint64
	Err        error
}

// OK reports whether the run backed up at least one target and nothing failed.
func (o Outcome) OK() bool {
	if o.Err != nil || len(o.Targets) == 0 || len(o.Retention) > 0 || o.Check != "" {
		return false
	}
	for _, t := range o.Targets {
		if t.Err != nil {
			return false
		}
	}
	return true
}

// Limits of a message: chat services cut long ones (Discord at 2000
// characters), and a long error text says nothing more.
const (
	maxCause   = 400 // characters of one error text
	maxListed  = 8   // failed targets listed by name
	maxMessage = 1900
)

// RunMessage is the message about a finished run: at LevelInfo when it
// succeeded, else at LevelError naming the failed targets, each with its
// cause, and the fix.
func RunMessage(s Stack, o Outcome) Message {
	name := s.name()
	if o.OK() {
		var added uint64
		for _, t := range o.Targets {
			added += t.BytesAdded
		}
		text := fmt.Sprintf("platback: backup of %s succeeded: %d target(s), %s added, in %s.",
			name, len(o.Targets), bytes(added), o.Duration.Round(time.Second))
		if o.CopiedTo != "" {
			text += " Copied to " + o.CopiedTo + "."
		}
		return Message{Level: LevelInfo, Title: "platback: " + name + " backed up", Text: text}
	}
	var b strings.Builder
	var causes []error
	switch {
	case o.Err != nil:
		fmt.Fprintf(&b, "platback: backup of %s FAILED: %s\n", name, cause(o.Err.Error()))
		causes = append(causes, o.Err)
	case len(o.Targets) == 0:
		fmt.Fprintf(&b, "platback: backup of %s FAILED: nothing was backed up\n", name)
	default:
		failed := 0
		for _, t := range o.Targets {
			if t.Err != nil {
				failed++
			}
		}
		if failed > 0 {
			fmt.Fprintf(&b, "platback: backup of %s FAILED: %d of %d target(s) failed\n", name, failed, len(o.Targets))
		} else {
			fmt.Fprintf(&b, "platback: backup of %s FAILED after every target was backed up\n", name)
		}
		listed := 0
		for _, t := range o.Targets {
			if t.Err == nil {
				continue
			}
			if listed == maxListed {
				fmt.Fprintf(&b, "- … and %d more (sidecar run-once lists them all)\n", failed-listed)
				break
			}
			listed++
			fmt.Fprintf(&b, "- %s (%s): %s\n", t.Path, t.Kind, cause(t.Err.Error()))
			causes = append(causes, t.Err)
		}
	}
	for _, e := range o.Retention {
		fmt.Fprintf(&b, "- retention: %s\n", cause(e))
	}
	if o.Check != "" {
		fmt.Fprintf(&b, "- restic check: %s\n", cause(o.Check))
	}
	b.WriteString("Fix: ")
	if hint := hintFor(causes, o.Targets); hint != "" {
		b.WriteString(hint + "; ")
	}
	fmt.Fprintf(&b, "see the log (%s), fix the cause, then back up now: %s", s.logs(), s.runOnce())
	return Message{Level: LevelError, Title: "platback: backup of " + name + " failed", Text: truncate(b.String(), maxMessage)}
}

// StaleMessage is the message about a stack whose last success is too
// old: since is the last success (zero: none since the sidecar started at
// started), maxAge what `sidecar health` allows, lastErr why the last run
// failed ("" when it succeeded or there was none).
func StaleMessage(s Stack, since, started time.Time, maxAge string, lastErr string) Message {
	name := s.name()
	var b strings.Builder
	if since.IsZero() {
		fmt.Fprintf(&b, "platback: no backup of %s has succeeded since the sidecar started at %s (the schedule allows %s)\n",
			name, started.UTC().Format(time.RFC3339), maxAge)
	} else {
		fmt.Fprintf(&b, "platback: the last successful backup of %s is older than %s: %s\n", name, maxAge, since.UTC().Format(time.RFC3339))
	}
	if lastErr != "" {
		fmt.Fprintf(&b, "Last run failed: %s\n", cause(lastErr))
	} else {
		b.WriteString("No run has failed: runs were skipped or did not start (a run still going, the sidecar stopped, the schedule).\n")
	}
	fmt.Fprintf(&b, "Fix: see the log (%s), then back up now: %s", s.logs(), s.runOnce())
	return Message{Level: LevelError, Title: "platback: backup of " + name + " is stale", Text: truncate(b.String(), maxMessage)}
}

// StartupCheckMessage is the message about a failing start-up check: the
// next run will fail the same way.
func StartupCheckMessage(s Stack, err string) Message {
	name := s.name()
	text := fmt.Sprintf("platback: the sidecar of %s cannot back up: its start-up check failed: %s\n"+
		"Fix: correct the cause (credentials, S3, the repository); the check is retried, see the log (%s)", name, cause(err), s.logs())
	return Message{Level: LevelError, Title: "platback: " + name + " cannot back up", Text: truncate(text, maxMessage)}
}

// CheckMessage is the message about a repository check of CHECK_CRON:
// subset is the part of the data it read ("" for none), errText its error
// ("" when it passed, a message at LevelInfo).
func CheckMessage(s Stack, subset string, took time.Duration, errText string) Message {
	name := s.name()
	read := "structure only"
	if subset != "" {
		read = "structure and data part " + subset
	}
	if errText == "" {
		return Message{Level: LevelInfo, Title: "platback: repository of " + name + " checked",
			Text: fmt.Sprintf("platback: restic check of the repository of %s passed (%s) in %s.", name, read, took.Round(time.Second))}
	}
	check := "sidecar check"
	if s.Container != "" {
		check = "docker exec " + s.Container + " sidecar check"
	}
	text := fmt.Sprintf("platback: restic check of the repository of %s FAILED (%s): %s\n"+
		"The repository may be damaged. Fix: read the errors (%s), do not prune until a check passes, "+
		"see restic's guide to repairing a repository, then check again: %s (the next scheduled check reads the same part)",
		name, read, cause(errText), s.logs(), check)
	return Message{Level: LevelError, Title: "platback: repository check of " + name + " failed", Text: truncate(text, maxMessage)}
}

// hintFor is a fix for the causes the backup package names, or "".
func hintFor(causes []error, targets []Target) string {
	for _, err := range causes {
		switch {
		case errors.Is(err, backup.ErrWrongPassword):
			return "the restic password (RESTIC_PASSWORD or its Vault field) does not open the repository: set the password it was created with"
		case errors.Is(err, backup.ErrAccessDenied):
			return "the S3 credentials may not use the bucket: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or their Vault fields) and the bucket's policy"
		case errors.Is(err, backup.ErrBucketMissing):
			return "the bucket does not exist: create it, or let the sidecar create it (PLATBACK_CREATE_BUCKET=true)"
		case errors.Is(err, backup.ErrLocked):
			return "the repository is locked: if no other restic uses it, remove stale locks with `sidecar unlock`"
		}
	}
	for _, t := range targets {
		if t.Err != nil && t.Kind != "volume" {
			return "check that the database container runs and that its dump works (its credentials, its disk)"
		}
	}
	return ""
}

func (s Stack) name() string {
	if s.Project == "" {
		return "this stack"
	}
	return "stack " + s.Project
}

func (s Stack) logs() string {
	if s.Container == "" {
		return "the sidecar's output"
	}
	return "docker logs " + s.Container
}

func (s Stack) runOnce() string {
	if s.Container == "" {
		return "sidecar run-once"
	}
	return "docker exec " + s.Container + " sidecar run-once"
}

// cause is an error text for a message: on one line, without URL
// credentials, cut at maxCause characters.
func cause(text string) string {
	text = strings.Join(strings.Fields(redact.URL(text)), " ")
	return truncate(text, maxCause)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = " …"
	cut := n - len(mark)
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + mark
}

func bytes(n uint64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// VerifyTarget is one target's restore drill as a message names it.
type VerifyTarget struct {
	Path     string
	Snapshot string
	Age      time.Duration
	Detail   string
	Error    string // "" when it passed
}

// VerifyMessage is the message about a restore drill (VERIFY_CRON): at
// LevelError naming each target that failed, its snapshot, the cause and
// the fix; at LevelInfo when every target passed.
func VerifyMessage(s Stack, targets []VerifyTarget) Message {
	name := s.name()
	verify := "sidecar verify"
	if s.Container != "" {
		verify = "docker exec " + s.Container + " sidecar verify"
	}
	var failed []string
	for _, t := range targets {
		switch {
		case t.Error == "":
		case t.Snapshot == "":
			failed = append(failed, fmt.Sprintf("- %s: %s", t.Path, cause(t.Error)))
		default:
			failed = append(failed, fmt.Sprintf("- %s (snapshot %s, %s old): %s", t.Path, t.Snapshot, t.Age.Round(time.Minute), cause(t.Error)))
		}
	}
	if len(failed) == 0 {
		return Message{Level: LevelInfo, Title: "platback: restore drill of " + name + " passed",
			Text: fmt.Sprintf("platback: the latest snapshots of %d target(s) of %s were restored into scratch space and checked.", len(targets), name)}
	}
	text := fmt.Sprintf("platback: restore drill of %s FAILED for %d of %d target(s): their latest snapshot could not be restored as it should:\n%s\n"+
		"Fix: read the cause (%s); a refusal for space needs more free space on the Docker data root or a larger VERIFY_MAX_BYTES; "+
		"a damaged snapshot needs a repository check (sidecar check) and a new backup; then run the drill again: %s",
		name, len(failed), len(targets), strings.Join(failed, "\n"), s.logs(), verify)
	return Message{Level: LevelError, Title: "platback: restore drill of " + name + " failed", Text: truncate(text, maxMessage)}
}

// CopyMessage is the message about a failed copy to the second repository
// (COPY_REPOSITORY): the backup itself succeeded, the off-site copy did
// not. repository is the URL without credentials, err the copy's error.
func CopyMessage(s Stack, repository string, err error) Message {
	name := s.name()
	hint := "check that the second repository is reachable and that the S3 user may use its bucket (the copy uses the primary's S3 keys)"
	switch {
	case errors.Is(err, backup.ErrWrongPassword):
		hint = "the second repository's password is COPY_RESTIC_PASSWORD or its Vault field, else RESTIC_PASSWORD: set the one it was created with"
	case errors.Is(err, backup.ErrAccessDenied):
		hint = "the primary's S3 keys open both repositories (restic 0.19): give the second bucket to the same S3 user"
	case errors.Is(err, backup.ErrLocked):
		hint = "the second repository is locked: if no other restic uses it, remove its stale locks"
	}
	text := fmt.Sprintf("platback: the backup of %s succeeded, but copying it to the second repository %s FAILED: %s\n"+
		"The snapshots are in the primary repository only; the next run copies what this one missed. Fix: %s; see the log (%s), then back up now: %s",
		name, repository, cause(err.Error()), hint, s.logs(), s.runOnce())
	return Message{Level: LevelError, Title: "platback: second copy of " + name + " failed", Text: truncate(text, maxMessage)}
}
