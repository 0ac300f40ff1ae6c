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
		Backups: []BackupJob{{Path: src, Tags: []string{"service=app"}}}, Timeout: time.Minute}
	resp, logs := serve(t, req, restic)
	require.NoError(t, resp.Err(), logs)
	assert.Len(t, resp.Summary.SnapshotID, 64)
	assert.Equal(t, uint64(1), resp.Summary.FilesNew)
	assert.NotContains(t, logs, password)

	// Restore writes the snapshot's path back in place.
	require.NoError(t, os.WriteFile(filepath.Join(src, "a.txt"), []byte("damaged"), 0o644))
	req = Request{Op: OpRestore, Repository: repoDir, Env: map[string]string{"RESTIC_PASSWORD": password}, Host: "h",
		Path: src, Timeout: time.Minute}
	resp, logs = serve(t, req, restic)
	require.NoError(t, resp.Err(), logs)
	data, err := os.ReadFile(filepath.Join(src, "a.txt"))
	require.NoError(t, err)
	assert.Equal(t, "volume data", string(data))

	// A wrong password is reported in the response, without the password.
	req.Op, req.Env = OpBackup, map[string]string{"RESTIC_PASSWORD": "not-the-password"}
	req.Backups = []BackupJob{{Path: src}}
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

// One worker backs up several volumes, one snapshot each with its own path
// and tags, one after the other: a volume that fails fails alone, and each
// result is on its own line.
func TestServeBacksUpSeveralVolumes(t *testing.T) {
	restic := testbed.Tool(t, "restic")
	ctx := context.Background()
	repoDir := filepath.Join(t.TempDir(), "repo")
	env := map[string]string{"RESTIC_PASSWORD": "worker-several"}
	r, err := backup.Open(ctx, repoDir, backup.Options{Restic: restic, Env: env, Host: "h"})
	require.NoError(t, err)
	_, err = r.EnsureRepo(ctx)
	require.NoError(t, err)
	var dirs []string
	for i := range 2 {
		dirs = append(dirs, t.TempDir())
		require.NoError(t, os.WriteFile(filepath.Join(dirs[i], "f"), []byte(fmt.Sprint(i)), 0o644))
	}
	req := Request{Op: OpBackup, Repository: repoDir, Env: env, Host: "h", Timeout: time.Minute, Backups: []BackupJob{
		{Path: dirs[0], Tags: []string{"service=a"}},
		{Path: filepath.Join(t.TempDir(), "gone"), Tags: []string{"service=b"}},
		{Path: dirs[1], Tags: []string{"service=c"}},
	}}
	resps, logs := serveAll(t, req, restic)
	require.Len(t, resps, 3, logs)
	for i, resp := range resps {
		assert.Equal(t, i, resp.Job)
	}
	require.NoError(t, resps[0].Err())
	require.Error(t, resps[1].Err())
	assert.Empty(t, resps[1].Summary.SnapshotID)
	require.NoError(t, resps[2].Err())
	snaps, err := r.Snapshots(ctx, backup.Filter{})
	require.NoError(t, err)
	require.Len(t, snaps, 2)
	for i, sn := range snaps {
		want := []int{0, 2}[i]
		assert.Equal(t, []string{req.Backups[want].Path}, sn.Paths)
		assert.Equal(t, req.Backups[want].Tags, sn.Tags)
		assert.Equal(t, resps[want].Summary.SnapshotID, sn.ID)
	}
}

// A worker of the sidecar's own image runs no `restic version`: the
// sidecar checked that very binary and says so in the job. Another binary
// is checked.
func TestServeTrustsTheSidecarsVersionCheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls.log")
	bin := filepath.Join(dir, "restic")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\necho \"$1\" >> '"+log+"'\nexec '"+testbed.Tool(t, "restic")+"' \"$@\"\n"), 0o755))
	calls := func() string { b, _ := os.ReadFile(log); return strings.Join(strings.Fields(string(b)), " ") }
	repoDir := filepath.Join(t.TempDir(), "repo")
	env := map[string]string{"RESTIC_PASSWORD": "worker-version"}
	r, err := backup.Open(ctx, repoDir, backup.Options{Restic: testbed.Tool(t, "restic"), Env: env, Host: "h"})
	require.NoError(t, err)
	_, err = r.EnsureRepo(ctx)
	require.NoError(t, err)
	req := Request{Op: OpBackup, Repository: repoDir, Env: env, Host: "h", Timeout: time.Minute, Backups: []BackupJob{{Path: t.TempDir()}, {Path: t.TempDir()}},
		ResticVersion: r.Version, ResticPath: bin}
	resps, logs := serveAll(t, req, bin)
	require.Len(t, resps, 2, logs)
	assert.Equal(t, "backup backup", calls())

	req.ResticPath = testbed.Tool(t, "restic") // not the worker's binary
	_, logs = serveAll(t, req, bin)
	assert.Equal(t, "backup backup version backup backup", calls(), logs)
}

// serve runs Serve as the sidecar drives it for one job: the job on stdin,
// which stays open until the result is in.
func serve(t *testing.T, req Request, restic string) (Response, string) {
	t.Helper()
	resps, logs := serveAll(t, req, restic)
	require.Len(t, resps, 1, logs)
	return resps[0], logs
}

// serveAll is serve for a job with several results, one per line.
func serveAll(t *testing.T, req Request, restic string) ([]Response, string) {
	t.Helper()
	in, stdin := io.Pipe()
	defer stdin.Close()
	go func() { _ = json.NewEncoder(stdin).Encode(req) }()
	var out, logs bytes.Buffer
	require.NoError(t, Serve(context.Background(), in, &out, &logs, restic))
	var resps []Response
	dec := json.NewDecoder(&out)
	for dec.More() {
		var resp Response
		require.NoError(t, dec.Decode(&resp), out.String())
		resps = append(resps, resp)
	}
	return resps, logs.String()
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
		_ = json.NewEncoder(stdin).Encode(Request{Op: OpBackup, Repository: repoDir, Env: env, Host: "h", Timeout: time.Hour,
			Backups: []BackupJob{{Path: src}, {Path: src, Tags: []string{"never-started"}}}})
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
	require.NoError(t, json.Unmarshal(out.Bytes(), &resp), "one result: the second backup never started")
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
