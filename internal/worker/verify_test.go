package worker

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
)

// Compare on a real tree: a file missing, one with another size and a
// directory where a file should be are each found and counted; what is
// right counts as files, dirs and bytes. A Compare that looked at names
// only (not sizes or types) fails.
func TestCompare(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "d", "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "d", "a.txt"), []byte("four"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "d", "short"), []byte("x"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "d", "notfile"), 0o755))

	p := func(s string) string { return filepath.Join(root, s) }
	good := []backup.Node{{Path: p("d"), Type: "dir"}, {Path: p("d/sub"), Type: "dir"}, {Path: p("d/a.txt"), Type: "file", Size: 4}}
	v := Compare(good, os.Lstat)
	assert.True(t, v.OK(), v.Problems)
	assert.Equal(t, VerifySummary{Files: 1, Dirs: 2, Bytes: 4}, v)

	bad := append(good,
		backup.Node{Path: p("d/gone"), Type: "file", Size: 1},
		backup.Node{Path: p("d/short"), Type: "file", Size: 2},
		backup.Node{Path: p("d/notfile"), Type: "file", Size: 0})
	v = Compare(bad, os.Lstat)
	assert.False(t, v.OK())
	assert.Equal(t, uint64(1), v.Missing)
	assert.Equal(t, uint64(2), v.WrongSize)
	assert.Equal(t, []string{"missing: " + p("d/gone"), "size 1, want 2: " + p("d/short"), "not a file: " + p("d/notfile")}, v.Problems)
}

// Under keeps a target's own nodes, not its parents' or a sibling's whose
// name starts alike.
func TestUnder(t *testing.T) {
	nodes := []backup.Node{{Path: "/volumes"}, {Path: "/volumes/app"}, {Path: "/volumes/app/data"}, {Path: "/volumes/app/data/x"}, {Path: "/volumes/app/data2/y"}}
	assert.Equal(t, []backup.Node{{Path: "/volumes/app/data"}, {Path: "/volumes/app/data/x"}}, Under(nodes, "/volumes/app/data/"))
}

// CheckScratch: VERIFY_MAX_BYTES first, then the free space with its
// margin; both errors name the sizes.
func TestCheckScratch(t *testing.T) {
	assert.NoError(t, CheckScratch(100<<20, 200<<20, 0))
	assert.NoError(t, CheckScratch(100<<20, 200<<20, 100<<20))

	err := CheckScratch(100<<20, 200<<20, 50<<20)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "104857600 bytes, more than VERIFY_MAX_BYTES=52428800")

	// 100 MiB needs 100 + 5 + 16 MiB free.
	err = CheckScratch(100<<20, 120<<20, 0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "scratch space too small: the snapshot holds 104857600 bytes and needs 126877696 free with the margin, the scratch volume has 125829120 free")
	assert.NoError(t, CheckScratch(100<<20, 121<<20+1<<19, 0))
}
