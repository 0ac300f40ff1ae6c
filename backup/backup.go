package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/platback/platback/internal/ids"
	"io"
	"os"
	"strings"
	"time"
)

// BackupOptions adjust one backup.
type BackupOptions struct {
	Tags     []string      // added to Options.Tags for this snapshot
	Excludes []string      // restic --exclude patterns
	Dir      string        // working directory, for relative paths
	Timeout  time.Duration // overrides Timeouts.Backup
	Time     time.Time     // snapshot time (restic --time); default now
}

// Summary is restic's report of a saved snapshot.
type Summary struct {
	SnapshotID      string        `json:"snapshot_id"`
	FilesNew        uint64        `json:"files_new"`
	FilesChanged    uint64        `json:"files_changed"`
	FilesUnmodified uint64        `json:"files_unmodified"`
	DirsNew         uint64        `json:"dirs_new"`
	DirsChanged     uint64        `json:"dirs_changed"`
	DirsUnmodified  uint64        `json:"dirs_unmodified"`
	DataAdded       uint64        `json:"data_added"`        // bytes added before compression
	DataAddedPacked uint64        `json:"data_added_packed"` // bytes added to the repository
	TotalFiles      uint64        `json:"total_files_processed"`
	TotalBytes      uint64        `json:"total_bytes_processed"`
	Duration        time.Duration `json:"-"`
	// Errors are the files restic could not read (a partial backup).
	Errors []string `json:"-"`
}

// message is any line of restic's --json backup output.
type message struct {
	Type string `json:"message_type"`
	// status
	PercentDone float64 `json:"percent_done"`
	TotalFiles  uint64  `json:"total_files"`
	FilesDone   uint64  `json:"files_done"`
	TotalBytes  uint64  `json:"total_bytes"`
	BytesDone   uint64  `json:"bytes_done"`
	// error
	Error struct {
		Message string `json:"message"`
	} `json:"error"`
	During string `json:"during"`
	Item   string `json:"item"`
	// summary
	Summary
	TotalDuration float64 `json:"total_duration"`
}

// backupOutput collects what restic reports while it backs up.
type backupOutput struct {
	r        *Repo
	summary  *Summary
	errors   []string
	lastLog  time.Time
	progress []any // log attributes naming the target
}

func (o *backupOutput) line(b []byte) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		o.r.log.Debug("restic printed a non-JSON line", "line", o.r.redact.String(string(b)))
		return
	}
	switch m.Type {
	case "status":
		if time.Since(o.lastLog) < o.r.opts.ProgressEvery {
			return
		}
		o.lastLog = time.Now()
		o.r.log.Info("backup progress", append(o.progress,
			"percent", fmt.Sprintf("%.1f", m.PercentDone*100),
			"files_done", m.FilesDone, "files_total", m.TotalFiles,
			"bytes_done", m.BytesDone, "bytes_total", m.TotalBytes)...)
	case "error":
		e := m.Error.Message
		if m.Item != "" {
			e = m.Item + ": " + e
		}
		e = o.r.redact.String(e)
		o.errors = append(o.errors, e)
		o.r.log.Warn("backup could not read an item", append(o.progress, "error", e)...)
	case "summary":
		s := m.Summary
		s.Duration = time.Duration(m.TotalDuration * float64(time.Second))
		o.summary = &s
	}
}

// Backup saves paths as one snapshot tagged with Options.Tags and o.Tags,
// on the stable Options.Host. A partial snapshot (restic exit 3) is returned
// with its Summary and an error matching ErrPartialBackup.
func (r *Repo) Backup(ctx context.Context, paths []string, o BackupOptions) (Summary, error) {
	if len(paths) == 0 {
		return Summary{}, errors.New("backup: no paths given")
	}
	args, err := r.backupArgs(o)
	if err != nil {
		return Summary{}, err
	}
	args = append(args, "--")
	return r.backup(ctx, append(args, paths...), o, "paths", strings.Join(paths, ","))
}

// StreamStderrEnv names a file a BackupStream producer may append its error
// messages to. restic 0.19.1 forwards a producer's stderr only on a best
// effort basis (it can exit before reading it), so a producer that writes
// its errors there too, e.g. `sh -c 'pg_dumpall 2>>"$PLATBACK_STREAM_STDERR"'`,
// always gets them into BackupStream's error.
const StreamStderrEnv = "PLATBACK_STREAM_STDERR"

// BackupStream saves what producer writes to its stdout as one file named
// filename (e.g. "/databases/postgres/all.sql"), using restic's
// --stdin-from-command: when the producer exits non-zero no snapshot is
// kept, and the error carries the tail of the producer's error output (see
// StreamStderrEnv).
func (r *Repo) BackupStream(ctx context.Context, filename string, producer []string, o BackupOptions) (Summary, error) {
	if len(producer) == 0 {
		return Summary{}, errors.New("backup stream: no producer command given")
	}
	if !strings.HasPrefix(filename, "/") {
		return Summary{}, fmt.Errorf("backup stream: filename %q must be absolute, e.g. /databases/db/all.sql", filename)
	}
	args, err := r.backupArgs(o)
	if err != nil {
		return Summary{}, err
	}
	args = append(args, "--stdin-from-command", "--stdin-filename", filename, "--")
	errFile, err := os.CreateTemp("", "platback-stream-stderr-")
	if err != nil {
		return Summary{}, fmt.Errorf("backup stream: %w", err)
	}
	errFile.Close()
	defer os.Remove(errFile.Name())
	s, err := r.backup(ctx, append(args, producer...), o, "stream", filename, StreamStderrEnv+"="+errFile.Name())
	if err != nil {
		if tail := r.redact.String(strings.TrimSpace(fileTail(errFile.Name(), 2<<10))); tail != "" && !strings.Contains(err.Error(), tail) {
			err = fmt.Errorf("%w; producer error output: %s", err, tail)
		}
	}
	return s, err
}

// fileTail returns the last n bytes of a file ("" when unreadable).
func fileTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return string(b)
}

func (r *Repo) backupArgs(o BackupOptions) ([]string, error) {
	if r.opts.Host == "" {
		return nil, errors.New("backup: Options.Host is empty: set a stable host name (the sidecar uses the compose project), or every run re-reads all data")
	}
	if err := checkTags(o.Tags); err != nil {
		return nil, err
	}
	args := []string{"--host", r.opts.Host}
	for _, t := range append(append([]string{}, r.opts.Tags...), o.Tags...) {
		args = append(args, "--tag", t)
	}
	if !o.Time.IsZero() {
		args = append(args, "--time", o.Time.Local().Format("2006-01-02 15:04:05"))
	}
	for _, e := range o.Excludes {
		args = append(args, "--exclude", e)
	}
	return args, nil
}

func (r *Repo) backup(ctx context.Context, args []string, o BackupOptions, kind, what string, env ...string) (Summary, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = r.opts.Timeouts.Backup
	}
	out := &backupOutput{r: r, lastLog: time.Now(), progress: []any{kind, what}}
	err := r.run(ctx, invocation{command: "backup", args: args, json: true, locking: true,
		timeout: timeout, dir: o.Dir, onLine: out.line, env: env})
	var s Summary
	if out.summary != nil {
		s = *out.summary
	}
	s.Errors = out.errors
	switch {
	case err != nil && errors.Is(err, ErrPartialBackup) && s.SnapshotID != "":
		details := strings.Join(first(s.Errors, 5), "; ")
		var rerr *ResticError
		if details == "" && errors.As(err, &rerr) {
			details = rerr.Message
		}
		return s, fmt.Errorf("backup %s %s: %w: snapshot %s was saved without some items: %s", kind, what, ErrPartialBackup, ids.Snapshot(s.SnapshotID), details)
	case err != nil:
		return s, fmt.Errorf("backup %s %s: %w", kind, what, err)
	case out.summary == nil || s.SnapshotID == "":
		return s, fmt.Errorf("backup %s %s: %w", kind, what, ErrNoSummary)
	}
	return s, nil
}

// checkTags refuses tags restic would split or misread.
func checkTags(tags []string) error {
	for _, t := range tags {
		if t == "" || strings.ContainsAny(t, ",\n") {
			return fmt.Errorf("tag %q is not usable: tags must be non-empty and contain no comma", t)
		}
	}
	return nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
