package doctor

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/moby/moby/client"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/schedule"
	"github.com/platback/platback/vaultcreds"
)

// Status is the outcome of one check.
type Status string

// The statuses of a check. Only Fail makes a Report fail.
const (
	Pass Status = "pass"
	Warn Status = "warn" // works, but something needs attention
	Fail Status = "fail" // backups or restores will fail (or already do)
	Skip Status = "skip" // not checked: a check it needs failed, or it does not apply
)

// Check is the result of one check. Detail and Fix never hold a secret
// value (a password, key, token or secret_id).
type Check struct {
	// Name identifies the check, e.g. "docker", "s3 lifecycle" or
	// "snapshot /volumes/app/data".
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Fix says what to do; empty when there is nothing to do.
	Fix string `json:"fix,omitempty"`
}

// Report is the checks in the order they ran.
type Report []Check

// OK reports whether no check failed (warnings and skips allowed).
func (r Report) OK() bool { return r.Count(Fail) == 0 }

// Count is the number of checks with status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, c := range r {
		if c.Status == s {
			n++
		}
	}
	return n
}

// Find returns the check named name.
func (r Report) Find(name string) (Check, bool) {
	for _, c := range r {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Defaults of Options.
const (
	DefaultStepTimeout     = 30 * time.Second
	DefaultCollisionWindow = 5 * time.Minute
	// CollisionHorizon is how far ahead the schedules of the sidecars on
	// the engine are compared.
	CollisionHorizon = 7 * 24 * time.Hour
)

// Options says what to check, as the sidecar's configuration says it (see
// internal/config: cmd/sidecar fills it from the environment).
type Options struct {
	// Docker is the engine's client (discover.NewClient); nil fails the
	// Docker checks and skips the ones that need them.
	Docker *client.Client
	// Discover finds the sidecar's project and plans its backup.
	Discover discover.Options
	// Credentials says where the restic password and S3 keys come from
	// (vaultcreds.SettingsFromEnv).
	Credentials vaultcreds.Settings
	// Repository is RESTIC_REPOSITORY; empty when Vault provides it.
	Repository string
	// Region is AWS_DEFAULT_REGION: the S3 region when the server needs
	// one; a region in the credentials wins.
	Region string
	// CopyRepository is COPY_REPOSITORY, the second copy's repository;
	// empty when there is none or Vault provides it (a field mapped to
	// COPY_REPOSITORY).
	CopyRepository string
	// Schedule is BACKUP_CRON, BACKUP_TZ and BACKUP_STAGGER; Name defaults
	// to the project.
	Schedule schedule.Spec
	// Host is restic's --host of the snapshots; default the plan's
	// projects joined by "+", as a run does.
	Host string
	// Restic is the restic binary; CacheDir its cache (PLATBACK_CACHE_DIR).
	Restic   string
	CacheDir string
	// CreateBucket: a missing bucket is created by the first run, so it is
	// a warning, not a failure (doctor never creates it).
	CreateBucket bool
	// StepTimeout bounds every check; default DefaultStepTimeout.
	StepTimeout time.Duration
	// CollisionWindow: another sidecar's run starting this close to one
	// of ours is a collision; default DefaultCollisionWindow.
	CollisionWindow time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives the packages' debug logs; default discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.StepTimeout <= 0 {
		o.StepTimeout = DefaultStepTimeout
	}
	if o.CollisionWindow <= 0 {
		o.CollisionWindow = DefaultCollisionWindow
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// Run runs every check and returns the report; it never stops at a failed
// check. ctx bounds the whole; each check also has Options.StepTimeout.
func Run(ctx context.Context, o Options) Report {
	r := &run{o: o.withDefaults()}
	defer r.close(context.WithoutCancel(ctx))
	r.docker(ctx)
	r.findProject(ctx)
	r.plan(ctx)
	r.credentials(ctx)
	r.restic(ctx)
	r.s3Checks(ctx)
	r.repository(ctx)
	r.copyRepository(ctx)
	r.schedule()
	r.snapshots(ctx)
	r.stagger(ctx)
	return r.rep
}
