package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Snapshot is one restic snapshot as `restic snapshots --json` reports it.
type Snapshot struct {
	ID       string    `json:"id"`
	ShortID  string    `json:"short_id"`
	Time     time.Time `json:"time"`
	Parent   string    `json:"parent,omitempty"`
	Tree     string    `json:"tree"`
	Paths    []string  `json:"paths"`
	Hostname string    `json:"hostname"`
	Tags     []string  `json:"tags,omitempty"`
	Summary  *struct {
		FilesNew        uint64 `json:"files_new"`
		FilesChanged    uint64 `json:"files_changed"`
		DataAdded       uint64 `json:"data_added"`
		TotalFiles      uint64 `json:"total_files_processed"`
		TotalBytes      uint64 `json:"total_bytes_processed"`
		FilesUnmodified uint64 `json:"files_unmodified"`
	} `json:"summary,omitempty"`
}

// Filter selects snapshots. Empty fields match everything; all Tags must be
// present on a snapshot.
type Filter struct {
	Host  string
	Tags  []string
	Paths []string
}

func (f Filter) args() ([]string, error) {
	var args []string
	if f.Host != "" {
		args = append(args, "--host", f.Host)
	}
	if len(f.Tags) > 0 {
		if err := checkTags(f.Tags); err != nil {
			return nil, err
		}
		args = append(args, "--tag", strings.Join(f.Tags, ","))
	}
	for _, p := range f.Paths {
		args = append(args, "--path", p)
	}
	return args, nil
}

// Snapshots lists the snapshots matching f, oldest first.
func (r *Repo) Snapshots(ctx context.Context, f Filter) ([]Snapshot, error) {
	args, err := f.args()
	if err != nil {
		return nil, err
	}
	var out []byte
	err = r.run(ctx, invocation{command: "snapshots", args: args, json: true, locking: true,
		timeout: r.opts.Timeouts.Snapshot, onLine: func(b []byte) { out = append(out, b...) }})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return parseSnapshots(out)
}

func parseSnapshots(out []byte) ([]Snapshot, error) {
	var snaps []Snapshot
	if err := json.Unmarshal(out, &snaps); err != nil {
		return nil, fmt.Errorf("read restic snapshots output: %w", err)
	}
	return snaps, nil
}
