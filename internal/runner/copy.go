package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/errkind"
	"github.com/platback/platback/internal/metrics"
	"github.com/platback/platback/vaultcreds"
)

// CopyResult is a run's copy of its snapshots to the second repository
// (COPY_REPOSITORY).
type CopyResult struct {
	// Repository is the second repository's URL, credentials redacted.
	Repository string        `json:"repository"`
	Duration   time.Duration `json:"duration"`
	// Snapshots is how many snapshots of the stack the second repository
	// holds after the copy's retention; -1 when the retention did not run
	// (RETENTION_CRON, or a failure before it).
	Snapshots int `json:"snapshots"`
	// Err is the copy's error: in JSON "error" and "error_kind", as
	// TargetResult.Err.
	Err       error  `json:"-"`
	Error     string `json:"error,omitempty"`
	ErrorKind string `json:"error_kind,omitempty"`
}

// OK reports whether the copy and its retention succeeded.
func (c CopyResult) OK() bool { return c.Err == nil }

// MarshalJSON writes Err as "error" and "error_kind".
func (c CopyResult) MarshalJSON() ([]byte, error) {
	type plain CopyResult
	p := plain(c)
	if c.Err != nil {
		p.Error, p.ErrorKind = c.Err.Error(), errkind.Of(c.Err)
	}
	return json.Marshal(p)
}

// UnmarshalJSON rebuilds Err from "error" and "error_kind".
func (c *CopyResult) UnmarshalJSON(b []byte) error {
	type plain CopyResult
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = CopyResult(p)
	c.Err = errkind.New(c.Error, c.ErrorKind)
	return nil
}

// secondCopy is where a session copies its snapshots: the repository and
// restic's environment for it, or the error that makes copying impossible
// (a bad URL from the Vault secret, a local path on no mount); the zero
// value is no copy.
type secondCopy struct {
	url string
	env map[string]string
	err error
}

// copyTarget takes the second copy's repository and password out of env,
// the run's credentials (a Vault field map may have put them there: the
// primary's restic and the workers never get them), and returns the copy.
// Its S3 keys are the primary's: restic 0.19 opens both repositories of a
// copy with one pair. Without COPY_RESTIC_PASSWORD the copy's password is
// the primary's.
func (rn *Runner) copyTarget(env map[string]string, primary string, self *container.InspectResponse) secondCopy {
	fromCreds, password := env[vaultcreds.EnvCopyRepository], env[vaultcreds.EnvCopyResticPassword]
	delete(env, vaultcreds.EnvCopyRepository)
	delete(env, vaultcreds.EnvCopyResticPassword)
	url := rn.Config.CopyRepository
	switch {
	case url == "":
		url = fromCreds
	case fromCreds != "" && fromCreds != url:
		rn.Log.Warn("COPY_REPOSITORY differs from the second repository in the credentials; using COPY_REPOSITORY", "repository", backup.RedactURL(url))
	}
	if url == "" {
		return secondCopy{}
	}
	c := secondCopy{url: url, env: maps.Clone(env)}
	if password != "" {
		c.env[vaultcreds.EnvResticPassword] = password
	}
	loc, err := backup.ParseLocation(url)
	switch {
	case err != nil:
		c.err = fmt.Errorf("COPY_REPOSITORY (from the credentials) %s: %w", backup.RedactURL(url), err)
	case config.SameRepository(url, primary):
		c.err = fmt.Errorf("COPY_REPOSITORY %s is the primary repository itself: a copy must go to another repository", backup.RedactURL(url))
	case loc.Kind == "local" && self != nil:
		// The copy runs in the sidecar: its path must be on a mount.
		if _, err := localRepositoryMount("COPY_REPOSITORY", loc, self); err != nil {
			c.err = err
		}
	}
	return c
}

// copySnapshots copies the host's snapshots the second repository does not
// hold yet (those of this run, and any an earlier failed copy missed),
// then applies the copy's retention to the targets' groups, unless
// RETENTION_CRON does it. A failure is the copy's, never the run's.
func (rn *Runner) copySnapshots(ctx context.Context, s *Session, targets []discover.Target) *CopyResult {
	start := time.Now()
	cr := &CopyResult{Repository: backup.RedactURL(s.copy.url), Snapshots: -1}
	n, err := rn.copyTo(ctx, s, targets)
	cr.Duration = time.Since(start)
	if err == nil {
		cr.Snapshots = n
	}
	cr.Err = err
	if err != nil {
		cr.Error = err.Error()
		rn.Log.Error("copy to the second repository failed; the backup itself is not affected", "repository", cr.Repository, "err", err)
	} else {
		rn.Log.Info("copied to the second repository", "repository", cr.Repository, "snapshots", n, "duration", cr.Duration.Round(time.Millisecond))
	}
	if rn.Metrics != nil {
		rn.Metrics.Copy(metrics.Copy{End: start.Add(cr.Duration), Duration: cr.Duration, Err: err, Snapshots: cr.Snapshots})
	}
	return cr
}

// copyTo is copySnapshots' work: it returns the snapshot count after
// retention (-1 when retention is RETENTION_CRON's).
func (rn *Runner) copyTo(ctx context.Context, s *Session, targets []discover.Target) (int, error) {
	dst, err := rn.openCopy(ctx, s)
	if err != nil {
		return -1, err
	}
	// Only the primary's config is read (chunker parameters) when the copy
	// must be created; the copy's own password is proven by the copy.
	if _, err := dst.EnsureRepoWith(ctx, backup.EnsureOptions{ChunkerFrom: s.Repo, SkipOpen: true}); err != nil {
		return -1, copyError(err)
	}
	rn.removeCopyLocks(ctx, s, dst)
	if err := dst.CopyFrom(ctx, s.Repo, backup.CopyOptions{Filter: backup.Filter{Host: s.Host}}); err != nil {
		return -1, copyError(err)
	}
	if rn.Config.RetentionCron != "" {
		return -1, nil
	}
	res, err := dst.Forget(ctx, rn.Config.CopyPolicy, backup.ForgetOptions{Filter: backup.Filter{Host: s.Host}, Select: ofTargets(targets)})
	if err != nil {
		return -1, fmt.Errorf("retention of the second repository: %w", err)
	}
	return remaining(res), nil
}

// remaining counts the snapshots a forget left: those it kept in the
// groups it selected, and every snapshot of the groups it did not.
func remaining(res backup.ForgetResult) int {
	n := 0
	for _, g := range res.Groups {
		n += len(g.Keep)
	}
	for _, g := range res.Others {
		n += g.Snapshots()
	}
	return n
}

// CopyRetention applies the second copy's retention to the targets'
// groups there (RETENTION_CRON's schedule); nothing when the session has
// no copy.
func (rn *Runner) CopyRetention(ctx context.Context, s *Session, targets []discover.Target) error {
	if s.copy.url == "" || len(targets) == 0 {
		return nil
	}
	dst, err := rn.openCopy(ctx, s)
	if err != nil {
		return err
	}
	rn.removeCopyLocks(ctx, s, dst)
	if _, err := dst.Forget(ctx, rn.Config.CopyPolicy, backup.ForgetOptions{Filter: backup.Filter{Host: s.Host}, Select: ofTargets(targets)}); err != nil {
		return fmt.Errorf("retention of the second repository %s: %w", backup.RedactURL(s.copy.url), copyError(err))
	}
	return nil
}

// openCopy opens the session's second repository.
func (rn *Runner) openCopy(ctx context.Context, s *Session) (*backup.Repo, error) {
	if s.copy.err != nil {
		return nil, s.copy.err
	}
	return backup.Open(ctx, s.copy.url, backup.Options{
		Restic: rn.Restic, Env: s.copy.env, Host: s.Host, CacheDir: rn.Config.CacheDir,
		CreateBucket: rn.Config.CreateBucket, Logger: rn.Log, Owner: s.owners + "copy",
		Timeouts: backup.Timeouts{Backup: rn.Config.BackupTimeout},
	})
}

// removeCopyLocks removes the locks a killed copy of this sidecar left in
// the second repository (those in the primary go when a session opens).
func (rn *Runner) removeCopyLocks(ctx context.Context, s *Session, dst *backup.Repo) {
	removed, err := dst.RemoveLocksWithOwnerPrefix(ctx, s.owners)
	switch {
	case errors.Is(err, backup.ErrLocksUnsupported):
	case err != nil:
		rn.Log.Warn("could not remove the locks a killed copy left in the second repository", "err", err)
	case len(removed) > 0:
		rn.Log.Warn("removed locks a killed copy of this sidecar left in the second repository", "locks", len(removed))
	}
}

// copyError adds the fix to a wrong password: the primary's was proven
// by the run, so it is the second repository's.
func copyError(err error) error {
	if errors.Is(err, backup.ErrWrongPassword) {
		return fmt.Errorf("%w (the password of COPY_REPOSITORY is COPY_RESTIC_PASSWORD or its Vault field, else RESTIC_PASSWORD: set the one that opens it)", err)
	}
	return err
}

// ofTargets selects the snapshot groups of the targets (see holds).
func ofTargets(targets []discover.Target) func(backup.ForgetGroup) bool {
	return func(g backup.ForgetGroup) bool {
		return slices.ContainsFunc(targets, func(t discover.Target) bool { return holds(g.Paths, g.Tags, t) })
	}
}
