package testbed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// WriteTree writes a tree with the awkward cases a backup must keep: empty
// files and directories, symlinks (one dangling), unicode names, a deep
// path and one large pseudo-random file of bigSize bytes (fixed seed).
func WriteTree(dir string, bigSize int) error {
	write := func(rel string, data []byte) error {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, data, 0o640)
	}
	big := make([]byte, bigSize)
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	_, _ = rng.Read(big)
	for _, f := range []struct {
		rel  string
		data []byte
	}{
		{"empty", nil},
		{"docs/readme.txt", []byte("hello platback\n")},
		{"über/naïve – 文件 😀.txt", []byte("unicode names\n")},
		{"deep/a/b/c/d/e.conf", bytes.Repeat([]byte("line\n"), 1000)},
		{"data/big.bin", big},
	} {
		if err := write(f.rel, f.data); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty-dir"), 0o755); err != nil {
		return err
	}
	if err := os.Symlink("docs/readme.txt", filepath.Join(dir, "link-to-readme")); err != nil {
		return err
	}
	return os.Symlink("/nonexistent/target", filepath.Join(dir, "dangling"))
}

// Digest describes every entry of a tree: type, mode, and content hash or
// link target, by path relative to dir.
func Digest(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link " + target
		case d.IsDir():
			out[rel] = fmt.Sprintf("dir %v", info.Mode().Perm())
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			out[rel] = fmt.Sprintf("file %v %s", info.Mode().Perm(), hex.EncodeToString(sum[:]))
		}
		return nil
	})
	return out, err
}

// SameTree returns an error naming the first difference between two trees
// (entries, types, modes, contents, link targets), or nil.
func SameTree(want, got string) error {
	a, err := Digest(want)
	if err != nil {
		return err
	}
	b, err := Digest(got)
	if err != nil {
		return err
	}
	for _, rel := range slices.Sorted(maps.Keys(a)) {
		if b[rel] != a[rel] {
			return fmt.Errorf("%s differs: %q, want %q", rel, b[rel], a[rel])
		}
	}
	for rel := range b {
		if _, ok := a[rel]; !ok {
			return fmt.Errorf("%s is extra", rel)
		}
	}
	return nil
}

// MakeTree is WriteTree for tests.
func MakeTree(tb testing.TB, dir string, bigSize int) {
	tb.Helper()
	if err := WriteTree(dir, bigSize); err != nil {
		tb.Fatal(err)
	}
}

// TreeDigest is Digest for tests.
func TreeDigest(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	d, err := Digest(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}
