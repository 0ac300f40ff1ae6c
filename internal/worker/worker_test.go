package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/testbed"
)

// Serve is the worker's side of the protocol: a job on stdin, a result on
// stdout, logs on stderr. Run against the real restic on a local repository.
func TestServeBackupAndRestore(t *testing.T) {
	restic := testbed.Tool(t, "restic")
	ctx := context.Background()
	repoDir := filepath.Join(t.TempDir(), "repo")
	password := "worker-secret-password"
	r, err := backup.Open(ctx, repoDir, backup.Options{Restic: restic, Env: map[string]string{"RESTIC_PASSWORD": password}, Host: "h"})
	require.NoError(t, err)
	_, err = r.EnsureRepo(ctx)
	require.NoError(t, err)

	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "a.txt"), []byte("volume data"), 0o644))
	req := Request{Op: OpBackup, Repository: repoDir, Env: map[string]string{"RESTIC_PASSWORD": password}, Host: "h",
		Tags: []string{"service=app"}, Path: src, Timeout: time.Minute}
	resp, logs := serve(t, req, restic)
	require.NoError(t, resp.Err(), logs)
	assert.Len(t, resp.Summary.SnapshotID, 64)
	assert.Equal(t, uint64(1), resp.Summary.FilesNew)
	assert.NotContains(t, logs, password)

	// Restore writes the snapshot's path back in place.
	require.NoError(t, os.WriteFile(filepath.Join(src, "a.txt"), []byte("damaged"), 0o644))
	req.Op = OpRestore
	resp, logs = serve(t, req, restic)
	require.NoError(t, resp.Err(), logs)
	data, err := os.ReadFile(filepath.Join(src, "a.txt"))
	require.NoError(t, err)
	assert.Equal(t, "volume data", string(data))

	// A wrong password is reported in the response, without the password.
	req.Op, req.Env = OpBackup, map[string]string{"RESTIC_PASSWORD": "not-the-password"}
	resp, _ = serve(t, req, restic)
	require.Error(t, resp.Err())
	assert.Contains(t, resp.Error, "wrong")
	assert.NotContains(t, resp.Error, "not-the-password")
}

func TestServeRejectsGarbage(t *testing.T) {
	var out, logs bytes.Buffer
	err := Serve(context.Background(), strings.NewReader("not json"), &out, &logs, "restic")
	require.ErrorContains(t, err, "read the job from stdin")
}

func serve(t *testing.T, req Request, restic string) (Response, string) {
	t.Helper()
	in, _ := json.Marshal(req)
	var out, logs bytes.Buffer
	require.NoError(t, Serve(context.Background(), bytes.NewReader(in), &out, &logs, restic))
	var resp Response
	require.NoError(t, json.Unmarshal(out.Bytes(), &resp), out.String())
	return resp, logs.String()
}
