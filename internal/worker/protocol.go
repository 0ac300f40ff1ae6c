// Package worker runs restic inside short-lived containers that have
// targets' volumes mounted: the sidecar cannot see other containers'
// volumes, so it starts a worker from its own image with the mounts
// attached, sends the job — credentials included — over the worker's stdin,
// and reads the results from its stdout. One worker backs up several
// volumes, one snapshot each, one after the other, and reports each as soon
// as it is done. Nothing secret is in the worker's configuration
// (environment, labels, command), so `docker inspect` shows none.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"time"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/errkind"
)

// OwnerLabel holds the owner of a worker's restic locks (Request.Owner),
// so a sidecar can remove the locks of a worker that was killed.
const OwnerLabel = "io.platback.lock-owner"

// SidecarLabel marks a worker container with the identity of the sidecar
// that started it (compose project/service/number), so a sidecar removes
// only its own leftover workers.
const SidecarLabel = "io.platback.sidecar"

// Op is what a worker does.
type Op string

// Worker operations.
const (
	OpBackup  Op = "backup"
	OpRestore Op = "restore"
	// OpVerify restores a snapshot into the scratch volume mounted at
	// Path and compares it with the snapshot's file list (Verify).
	OpVerify Op = "verify"
)

// Request is the job a worker reads from its stdin.
type Request struct {
	Op         Op                `json:"op"`
	Repository string            `json:"repository"`
	Env        map[string]string `json:"env"` // credentials: only ever sent over stdin
	Host       string            `json:"host"`
	CacheDir   string            `json:"cache_dir,omitempty"`
	// Timeout bounds each backup (or the restore).
	Timeout  time.Duration `json:"timeout"`
	LogLevel slog.Level    `json:"log_level"`
	// Owner names the locks the worker's restic takes (backup.Options.Owner),
	// so the sidecar can remove exactly them if the worker is killed.
	Owner string `json:"owner,omitempty"`
	// ResticVersion is the version the sidecar found for the restic binary
	// at ResticPath in the worker's image; a worker whose restic is that
	// path runs no `restic version` of its own.
	ResticVersion string `json:"restic_version,omitempty"`
	ResticPath    string `json:"restic_path,omitempty"`

	// Backups are what a backup saves, one snapshot each, one after the
	// other; the worker prints a Response for each as soon as it is done.
	Backups []BackupJob `json:"backups,omitempty"`

	// Path is the snapshot path to restore, where the volume is mounted.
	Path string   `json:"path,omitempty"`
	Tags []string `json:"tags,omitempty"`
	// Snapshot to restore ("latest" of Tags and Host when empty).
	Snapshot string `json:"snapshot,omitempty"`
	// Mirror deletes files the snapshot does not hold (restore only).
	Mirror bool `json:"mirror,omitempty"`
	// DryRun reports what a restore would change and writes nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// MaxBytes bounds what a verify restores (0: only the free space of
	// the scratch volume bounds it).
	MaxBytes uint64 `json:"max_bytes,omitempty"`
}

// BackupJob is one snapshot of a backup Request: the volume mounted at
// Path, tagged with Tags.
type BackupJob struct {
	Path string   `json:"path"`
	Tags []string `json:"tags"`
}

// responses is how many Responses the worker prints for req.
func (req Request) responses() int {
	if req.Op == OpBackup {
		return len(req.Backups)
	}
	return 1
}

// Response is what a worker prints on stdout, one JSON line per job: for
// each backup as soon as it is done, for a restore once.
type Response struct {
	// Job is the index of the backup in Request.Backups.
	Job      int                   `json:"job"`
	Summary  backup.Summary        `json:"summary"`
	Restore  backup.RestoreSummary `json:"restore"`
	Verify   VerifySummary         `json:"verify"`
	Duration time.Duration         `json:"duration"`
	Error    string                `json:"error,omitempty"`
	// Kind names the backup sentinel error the worker's error matched
	// (package errkind), so errors.Is works across the container boundary.
	Kind   string   `json:"kind,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

// failed fills the error fields of a Response from err.
func (r *Response) failed(err error) {
	r.Error, r.Kind = err.Error(), errkind.Of(err)
}

// Err turns a Response's error back into an error that matches the backup
// sentinel the worker's error matched (errors.Is), e.g.
// backup.ErrPartialBackup for a partial backup.
func (r Response) Err() error { return errkind.New(r.Error, r.Kind) }

// Serve is the worker's side: read a Request from in, run it with the
// restic binary, write a Response per job to out as each is done. Logs go
// to logOut. The sidecar keeps in open while it waits for the results: when
// in ends, the sidecar is gone, and Serve stops restic cleanly (restic
// removes its lock), starts nothing more and returns.
func Serve(ctx context.Context, in io.Reader, out io.Writer, logOut io.Writer, restic string) error {
	var req Request
	dec := json.NewDecoder(io.LimitReader(in, 1<<20))
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("worker: read the job from stdin: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: req.LogLevel}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), in))
		if ctx.Err() == nil {
			log.Warn("stdin closed: the sidecar that started this worker is gone; stopping restic")
			cancel()
		}
	}()
	enc := json.NewEncoder(out)
	var werr error
	run(ctx, req, restic, log, func(resp Response) {
		if err := enc.Encode(resp); err != nil && werr == nil {
			werr = fmt.Errorf("worker: write a result: %w", err)
		}
	})
	return werr
}

// run does the job, handing each Response to done.
func run(ctx context.Context, req Request, restic string, log *slog.Logger, done func(Response)) {
	start := time.Now()
	opts := backup.Options{
		Restic: restic, Env: req.Env, Host: req.Host, CacheDir: req.CacheDir, Logger: log, Owner: req.Owner,
		Timeouts: backup.Timeouts{Backup: req.Timeout, Restore: req.Timeout},
	}
	if req.ResticVersion != "" && req.ResticPath != "" {
		if bin, err := exec.LookPath(restic); err == nil && bin == req.ResticPath {
			opts.ResticVersion = req.ResticVersion
		}
	}
	repo, err := backup.Open(ctx, req.Repository, opts)
	if err != nil {
		for i := range req.responses() {
			resp := Response{Job: i, Duration: time.Since(start)}
			resp.failed(err)
			done(resp)
		}
		return
	}
	switch req.Op {
	case OpBackup:
		var repoErr error // the repository cannot be used: every backup would fail alike
		for i, job := range req.Backups {
			if ctx.Err() != nil {
				return // the sidecar is gone or stopped the worker: start nothing more
			}
			start := time.Now()
			resp := Response{Job: i}
			if repoErr != nil {
				resp.failed(repoErr)
				done(resp)
				continue
			}
			s, err := repo.Backup(ctx, []string{job.Path}, backup.BackupOptions{Tags: job.Tags})
			resp.Summary, resp.Errors, resp.Duration = s, s.Errors, time.Since(start)
			if err != nil {
				resp.failed(err)
				if errors.Is(err, backup.ErrWrongPassword) || errors.Is(err, backup.ErrRepoNotFound) {
					repoErr = err
				}
			}
			done(resp)
		}
	case OpRestore:
		// The volume is mounted at Path: restore the snapshot's Path onto /.
		s, err := repo.Restore(ctx, req.Snapshot, "/", backup.RestoreOptions{
			Filter: backup.Filter{Host: req.Host, Tags: req.Tags, Paths: []string{req.Path}}, Include: []string{req.Path},
			Delete: req.Mirror, DryRun: req.DryRun})
		resp := Response{Restore: s, Duration: time.Since(start)}
		if err != nil {
			resp.failed(err)
		}
		done(resp)
	case OpVerify:
		v, err := verify(ctx, repo, req)
		resp := Response{Verify: v, Duration: time.Since(start)}
		if err != nil {
			resp.failed(err)
		}
		done(resp)
	default:
		done(Response{Error: fmt.Sprintf("worker: unknown operation %q", req.Op)})
	}
}
