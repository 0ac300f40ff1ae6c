package stopstate

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFileRemembersStoppedContainers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache", "platback-stopped.json")
	f := Open(path)
	list, err := f.List()
	require.NoError(t, err)
	assert.Empty(t, list, "a missing file lists nothing")

	require.NoError(t, f.Add(Container{ID: "aaa", Name: "app", StoppedAt: time.Now()}))
	require.NoError(t, f.Add(Container{ID: "bbb", Name: "worker"}))
	require.NoError(t, f.Add(Container{ID: "aaa", Name: "app"}), "adding twice keeps one entry")
	list, err = Open(path).List() // as a restarted sidecar reads it
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, "app", list[0].Name)

	require.NoError(t, f.Remove("aaa"))
	require.NoError(t, f.Remove("bbb"))
	_, err = os.Stat(path)
	assert.True(t, os.IsNotExist(err), "the file goes away when nothing is stopped")
}

func TestDamagedFileSaysWhatToDo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, os.WriteFile(path, []byte("{not json"), 0o600))
	_, err := Open(path).List()
	require.ErrorContains(t, err, "restart the containers it lists by hand")
}

// An empty file is what a crash between creating and filling it leaves: it
// must not block every later stop-during-backup target.
func TestEmptyFileListsNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	f := Open(path)
	list, err := f.List()
	require.NoError(t, err)
	assert.Empty(t, list)
	require.NoError(t, f.Add(Container{ID: "aaa", Name: "app"}))
	list, err = Open(path).List()
	require.NoError(t, err)
	assert.Len(t, list, 1)
}
