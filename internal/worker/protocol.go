// Package worker runs restic inside short-lived containers that have a
// target's volume mounted: the sidecar cannot see other containers' volumes,
// so it starts a worker from its own image with the mounts attached, sends
// the job — credentials included — over the worker's stdin, and reads the
// result from its stdout. Nothing secret is in the worker's configuration
// (environment, labels, command), so `docker inspect` shows none.
package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
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
)

// Request is the job a worker reads from its stdin.
type Request struct {
	Op         Op                `json:"op"`
	Repository string            `json:"repository"`
	Env        map[string]string `json:"env"` // credentials: only ever sent over stdin
	Host       string            `json:"host"`
	Tags       []string          `json:"tags"`
	CacheDir   string            `json:"cache_dir,omitempty"`
	Timeout    time.Duration     `json:"timeout"`
	LogLevel   slog.Level        `json:"log_level"`
	// Path is the snapshot path: what to back up, or what to restore.
	Path string `json:"path"`
	// Snapshot to restore ("latest" of Tags and Host when empty).
	Snapshot string `json:"snapshot,omitempty"`
	// Mirror deletes files the snapshot does not hold (restore only).
	Mirror bool `json:"mirror,omitempty"`
	// DryRun reports what a restore would change and writes nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Owner names the locks the worker's restic takes (backup.Options.Owner),
	// so the sidecar can remove exactly them if the worker is killed.
	Owner string `json:"owner,omitempty"`
}

// Response is what a worker prints on stdout when it is done.
type Response struct {
	Summary  backup.Summary        `json:"summary"`
	Restore  backup.RestoreSummary `json:"restore"`
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
// restic binary, write a Response to out. Logs go to logOut. The sidecar
// keeps in open while it waits for the result: when in ends, the sidecar
// is gone, and Serve stops restic cleanly (restic removes its lock) and
// returns.
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
	start := time.Now()
	resp := run(ctx, req, restic, log)
	resp.Duration = time.Since(start)
	return json.NewEncoder(out).Encode(resp)
}

func run(ctx context.Context, req Request, restic string, log *slog.Logger) Response {
	repo, err := backup.Open(ctx, req.Repository, backup.Options{
		Restic: restic, Env: req.Env, Host: req.Host, CacheDir: req.CacheDir, Logger: log, Owner: req.Owner,
		Timeouts: backup.Timeouts{Backup: req.Timeout, Restore: req.Timeout},
	})
	if err != nil {
		var resp Response
		resp.failed(err)
		return resp
	}
	switch req.Op {
	case OpBackup:
		s, err := repo.Backup(ctx, []string{req.Path}, backup.BackupOptions{Tags: req.Tags})
		resp := Response{Summary: s, Errors: s.Errors}
		if err != nil {
			resp.failed(err)
		}
		return resp
	case OpRestore:
		// The volume is mounted at Path: restore the snapshot's Path onto /.
		s, err := repo.Restore(ctx, req.Snapshot, "/", backup.RestoreOptions{
			Filter: backup.Filter{Host: req.Host, Tags: req.Tags, Paths: []string{req.Path}}, Include: []string{req.Path},
			Delete: req.Mirror, DryRun: req.DryRun})
		resp := Response{Restore: s}
		if err != nil {
			resp.failed(err)
		}
		return resp
	}
	return Response{Error: fmt.Sprintf("worker: unknown operation %q", req.Op)}
}
