package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// serve runs Serve as the sidecar drives it: the job on stdin, which stays
// open until the result is in.
func serve(t *testing.T, req Request, restic string) (Response, string) {
	t.Helper()
	in, stdin := io.Pipe()
	defer stdin.Close()
	go func() { _ = json.NewEncoder(stdin).Encode(req) }()
	var out, logs bytes.Buffer
	require.NoError(t, Serve(context.Background(), in, &out, &logs, restic))
	var resp Response
	require.NoError(t, json.Unmarshal(out.Bytes(), &resp), out.String())
	return resp, logs.String()
}

// When the sidecar dies its worker's stdin closes: the worker stops restic
// cleanly, restic removes its own lock, and the worker ends at once.
func TestServeStopsWhenStdinCloses(t *testing.T) {
	restic := testbed.Tool(t, "restic")
	ctx := context.Background()
	repoDir := filepath.Join(t.TempDir(), "repo")
	env := map[string]string{"RESTIC_PASSWORD": "worker-eof"}
	r, err := backup.Open(ctx, repoDir, backup.Options{Restic: restic, Env: env, Host: "h"})
	require.NoError(t, err)
	_, err = r.EnsureRepo(ctx)
	require.NoError(t, err)
	src := t.TempDir()
	big := make([]byte, 64<<20)
	_, _ = rand.Read(big)
	for i := range 6 {
		require.NoError(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), big, 0o644))
	}

	in, stdin := io.Pipe()
	go func() {
		_ = json.NewEncoder(stdin).Encode(Request{Op: OpBackup, Repository: repoDir, Env: env, Host: "h", Path: src, Timeout: time.Hour})
	}()
	var out bytes.Buffer
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, in, &out, logs, restic) }()
	require.Eventually(t, func() bool {
		locks, err := r.Locks(ctx)
		return err == nil && len(locks) == 1
	}, time.Minute, 50*time.Millisecond, "restic took its lock")
	start := time.Now()
	require.NoError(t, stdin.Close()) // the sidecar is gone
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("the worker went on after its stdin closed")
	}
	t.Logf("worker stopped %s after its stdin closed", time.Since(start).Round(time.Millisecond))
	var resp Response
	require.NoError(t, json.Unmarshal(out.Bytes(), &resp))
	require.ErrorIs(t, resp.Err(), backup.ErrInterrupted)
	assert.Contains(t, logs.String(), "the sidecar that started this worker is gone")
	locks, err := r.Locks(ctx)
	require.NoError(t, err)
	assert.Empty(t, locks, "restic removed its own lock")
	snaps, err := r.Snapshots(ctx, backup.Filter{})
	require.NoError(t, err)
	assert.Empty(t, snaps)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
