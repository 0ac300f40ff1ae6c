package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/notify"
	"github.com/platback/platback/internal/runner"
)

// A failed second copy: the run stays OK, a second message names the
// copy's repository, cause and fix; a good copy adds no message at level
// error and is named in the success message at level info.
func TestAlertsSecondCopy(t *testing.T) {
	rec := &recorder{}
	al := Alerts{Notifier: rec, Stack: notify.Stack{Project: "shop"}}
	wrong := fmt.Errorf("copy snapshots from s3:http://a/b to s3:http://c/d: %w", backup.ErrWrongPassword)
	res := runner.Result{Projects: []string{"shop"}, Targets: []runner.TargetResult{{Path: "/volumes/a", Kind: "volume"}},
		Copy: &runner.CopyResult{Repository: "s3:http://c/d", Err: wrong}}
	require.True(t, res.OK(), "a failed copy does not fail the run")
	dl := al.finished(context.Background(), res)
	assert.Equal(t, Delivery{NotificationsSent: 2}, dl, "the run's message (filtered by level) and the copy's")
	require.Len(t, rec.msgs, 2)
	assert.Equal(t, notify.LevelInfo, rec.msgs[0].Level)
	copyMsg := rec.msgs[1]
	assert.Equal(t, notify.LevelError, copyMsg.Level)
	assert.Equal(t, "platback: second copy of stack shop failed", copyMsg.Title)
	assert.Contains(t, copyMsg.Text, "the backup of stack shop succeeded, but copying it to the second repository s3:http://c/d FAILED: copy snapshots")
	assert.Contains(t, copyMsg.Text, "Fix: the second repository's password is COPY_RESTIC_PASSWORD")

	rec.msgs = nil
	res.Copy = &runner.CopyResult{Repository: "s3:http://c/d", Snapshots: 4}
	al.finished(context.Background(), res)
	require.Len(t, rec.msgs, 1)
	assert.Contains(t, rec.msgs[0].Text, "Copied to s3:http://c/d.")
}

// The last successful copy is carried over failed copies and runs without
// a copy, and a copy's error survives the file (its kind too).
func TestLastRunCopy(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	ok := runner.Result{Start: t0, Duration: time.Minute, Projects: []string{"app"}, Targets: []runner.TargetResult{{Path: "/volumes/app/data", Kind: "volume"}},
		Copy: &runner.CopyResult{Repository: "/srv/copy", Snapshots: 2, Duration: time.Second}}
	require.NoError(t, SaveLastRun(dir, ok, "daemon"))
	lr, _, err := LoadLastRun(dir)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(time.Minute), lr.LastCopySuccess)
	require.NotNil(t, lr.Result.Copy)
	assert.True(t, lr.Result.Copy.OK())
	assert.Equal(t, 2, lr.Result.Copy.Snapshots)

	failed := ok
	failed.Start = t0.Add(24 * time.Hour)
	failed.Copy = &runner.CopyResult{Repository: "/srv/copy", Snapshots: -1, Err: fmt.Errorf("copy: %w", backup.ErrWrongPassword)}
	require.NoError(t, SaveLastRun(dir, failed, "run-once"))
	lr, _, err = LoadLastRun(dir)
	require.NoError(t, err)
	assert.True(t, lr.OK, "the run is OK")
	require.NotNil(t, lr.Result.Copy)
	assert.False(t, lr.Result.Copy.OK())
	assert.True(t, errors.Is(lr.Result.Copy.Err, backup.ErrWrongPassword), "the kind survives the file: %v", lr.Result.Copy.Err)
	assert.Equal(t, t0.Add(time.Minute), lr.LastCopySuccess, "carried over a failed copy")

	none := ok
	none.Start, none.Copy = t0.Add(48*time.Hour), nil
	require.NoError(t, SaveLastRun(dir, none, "run-once"))
	lr, _, err = LoadLastRun(dir)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(time.Minute), lr.LastCopySuccess, "carried over a run without a copy")
}
