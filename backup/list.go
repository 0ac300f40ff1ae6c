package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// Node is one file, directory or link of a snapshot as `restic ls --json`
// reports it.
type Node struct {
	Path string `json:"path"`
	// Type is "file", "dir", "symlink", …
	Type string `json:"type"`
	Size uint64 `json:"size"`
}

// List lists every node of snapshot (an id), recursively
// (`restic ls --json`).
func (r *Repo) List(ctx context.Context, snapshot string) ([]Node, error) {
	var out []byte
	err := r.run(ctx, invocation{command: "ls", args: []string{snapshot}, json: true, locking: true,
		timeout: r.opts.Timeouts.Restore, onLine: func(b []byte) { out = append(append(out, b...), '\n') }})
	if err != nil {
		return nil, fmt.Errorf("list snapshot %s: %w", snapshot, err)
	}
	return parseList(out)
}

// parseList reads the nodes of `restic ls --json`: one JSON object a
// line, the snapshot's first, then its nodes.
func parseList(out []byte) ([]Node, error) {
	var nodes []Node
	for line := range bytes.Lines(out) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var n struct {
			Node
			StructType  string `json:"struct_type"`
			MessageType string `json:"message_type"`
		}
		if err := json.Unmarshal(line, &n); err != nil {
			return nil, fmt.Errorf("read restic ls output: %w", err)
		}
		if n.MessageType == "node" || n.StructType == "node" {
			nodes = append(nodes, n.Node)
		}
	}
	return nodes, nil
}
