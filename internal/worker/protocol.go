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
)

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
}

// Response is what a worker prints on stdout when it is done.
type Response struct {
	Summary  backup.Summary        `json:"summary"`
	Restore  backup.RestoreSummary `json:"restore"`
	Duration time.Duration         `json:"duration"`
	Error    string                `json:"error,omitempty"`
	Partial  bool                  `json:"partial,omitempty"`
	Errors   []string              `json:"errors,omitempty"`
}

// Serve is the worker's side: read a Request from in, run it with the
// restic binary, write a Response to out. Logs go to logOut.
func Serve(ctx context.Context, in io.Reader, out io.Writer, logOut io.Writer, restic string) error {
	var req Request
	if err := json.NewDecoder(io.LimitReader(in, 1<<20)).Decode(&req); err != nil {
		return fmt.Errorf("worker: read the job from stdin: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: req.LogLevel}))
	start := time.Now()
	resp := run(ctx, req, restic, log)
	resp.Duration = time.Since(start)
	return json.NewEncoder(out).Encode(resp)
}

func run(ctx context.Context, req Request, restic string, log *slog.Logger) Response {
	repo, err := backup.Open(ctx, req.Repository, backup.Options{
		Restic: restic, Env: req.Env, Host: req.Host, CacheDir: req.CacheDir, Logger: log,
		Timeouts: backup.Timeouts{Backup: req.Timeout, Restore: req.Timeout},
	})
	if err != nil {
		return Response{Error: err.Error()}
	}
	switch req.Op {
	case OpBackup:
		s, err := repo.Backup(ctx, []string{req.Path}, backup.BackupOptions{Tags: req.Tags})
		resp := Response{Summary: s, Errors: s.Errors}
		if err != nil {
			resp.Error = err.Error()
			resp.Partial = s.SnapshotID != ""
		}
		return resp
	case OpRestore:
		// The volume is mounted at Path: restore the snapshot's Path onto /.
		s, err := repo.Restore(ctx, req.Snapshot, "/", backup.RestoreOptions{
			Filter: backup.Filter{Host: req.Host, Tags: req.Tags, Paths: []string{req.Path}}, Include: []string{req.Path}})
		resp := Response{Restore: s}
		if err != nil {
			resp.Error = err.Error()
		}
		return resp
	}
	return Response{Error: fmt.Sprintf("worker: unknown operation %q", req.Op)}
}
