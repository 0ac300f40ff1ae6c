package worker

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/platback/platback/backup"
)

// VerifySummary is what a verify found: the snapshot's files under the
// restored path and those that were missing or had another size after
// the restore.
type VerifySummary struct {
	Files uint64 `json:"files"`
	Dirs  uint64 `json:"dirs"`
	Bytes uint64 `json:"bytes"`
	// Missing and WrongSize count the problems; Problems names the first few.
	Missing   uint64   `json:"missing,omitempty"`
	WrongSize uint64   `json:"wrong_size,omitempty"`
	Problems  []string `json:"problems,omitempty"`
	// FreeBytes is the scratch space free before the restore.
	FreeBytes uint64 `json:"free_bytes,omitempty"`
}

// OK reports whether every file of the snapshot was restored with its size.
func (v VerifySummary) OK() bool { return v.Missing == 0 && v.WrongSize == 0 }

// maxProblems bounds VerifySummary.Problems; the counts stay exact.
const maxProblems = 10

// ScratchMargin is the free space a verify leaves on the scratch volume
// beyond the snapshot's size: 5% of it plus 16 MiB.
func ScratchMargin(size uint64) uint64 { return size/20 + 16<<20 }

// verify lists the snapshot, refuses when it does not fit the scratch
// volume mounted at req.Path (or req.MaxBytes), restores it there and
// compares the restored tree with the list.
func verify(ctx context.Context, repo *backup.Repo, req Request) (VerifySummary, error) {
	var v VerifySummary
	nodes, err := repo.List(ctx, req.Snapshot)
	if err != nil {
		return v, err
	}
	nodes = Under(nodes, req.Path)
	for _, n := range nodes {
		if n.Type == "file" {
			v.Bytes += n.Size
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(req.Path, &st); err != nil {
		return v, fmt.Errorf("free space of the scratch volume at %s: %w", req.Path, err)
	}
	v.FreeBytes = st.Bavail * uint64(st.Bsize)
	if err := CheckScratch(v.Bytes, v.FreeBytes, req.MaxBytes); err != nil {
		return v, err
	}
	if _, err := repo.Restore(ctx, req.Snapshot, "/", backup.RestoreOptions{Include: []string{req.Path}}); err != nil {
		return v, err
	}
	sum := Compare(nodes, os.Lstat)
	sum.FreeBytes = v.FreeBytes
	return sum, nil
}

// CheckScratch refuses a restore of size bytes into scratch space with
// free bytes free (it must leave ScratchMargin), or above maxBytes when
// that is not 0.
func CheckScratch(size, free, maxBytes uint64) error {
	if maxBytes > 0 && size > maxBytes {
		return fmt.Errorf("refused: the snapshot holds %d bytes, more than VERIFY_MAX_BYTES=%d allows; raise it to verify this target", size, maxBytes)
	}
	if need := size + ScratchMargin(size); need > free {
		return fmt.Errorf("refused: scratch space too small: the snapshot holds %d bytes and needs %d free with the margin, the scratch volume has %d free; free space on the Docker data root", size, need, free)
	}
	return nil
}

// Under keeps the nodes at or below dir.
func Under(nodes []backup.Node, dir string) []backup.Node {
	dir = path.Clean(dir)
	var out []backup.Node
	for _, n := range nodes {
		if n.Path == dir || strings.HasPrefix(n.Path, dir+"/") {
			out = append(out, n)
		}
	}
	return out
}

// Compare checks each node against the restored file at its path (stat
// is os.Lstat on the restored tree): it must exist with the node's type,
// and a file with its size.
func Compare(nodes []backup.Node, stat func(string) (fs.FileInfo, error)) VerifySummary {
	var v VerifySummary
	problem := func(s string) {
		if len(v.Problems) < maxProblems {
			v.Problems = append(v.Problems, s)
		}
	}
	for _, n := range nodes {
		fi, err := stat(n.Path)
		switch {
		case err != nil:
			v.Missing++
			problem("missing: " + n.Path)
			continue
		case n.Type == "file" && !fi.Mode().IsRegular(), n.Type == "dir" && !fi.IsDir(), n.Type == "symlink" && fi.Mode()&fs.ModeSymlink == 0:
			v.WrongSize++
			problem(fmt.Sprintf("not a %s: %s", n.Type, n.Path))
			continue
		}
		switch n.Type {
		case "file":
			v.Files++
			v.Bytes += n.Size
			if uint64(fi.Size()) != n.Size {
				v.WrongSize++
				problem(fmt.Sprintf("size %d, want %d: %s", fi.Size(), n.Size, n.Path))
			}
		case "dir":
			v.Dirs++
		}
	}
	return v
}
