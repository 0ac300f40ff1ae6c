// Package toolpath finds this checkout's module root and the pinned tools
// (restic, minio, vault, bao) that scripts/tools.sh installs into
// .tools/bin. It imports nothing but the standard library and no part of
// package testing, so commands (make image) can use it as well as tests.
package toolpath

import (
	"fmt"
	"os"
	"path/filepath"
)

// Root returns the module root: the nearest directory above the working
// directory that holds go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("toolpath: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Pinned returns the path of a pinned tool: $PLATBACK_TOOLS/<name> when that
// variable is set, else <root>/.tools/bin/<name>. It fails when the file is
// not there, saying how to install it.
func Pinned(name string) (string, error) {
	dir := os.Getenv("PLATBACK_TOOLS")
	if dir == "" {
		root, err := Root()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".tools", "bin")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("toolpath: pinned tool %q not found at %s: run scripts/tools.sh (make test does it for you)", name, p)
	}
	return p, nil
}
