package discover

import (
	"path"
	"strings"
)

// isDataMount reports whether a mount at dest holds one of dirs (is the
// directory or one of its parents).
func isDataMount(dest string, dirs []string) bool {
	dest = path.Clean(dest)
	if dest == "/" {
		return false
	}
	for _, d := range dirs {
		if d == dest || strings.HasPrefix(d, dest+"/") {
			return true
		}
	}
	return false
}

// dumpFile is the file name of every dump in the snapshot: each holds all
// the server's databases (pg_dumpall, or --all-databases
// for mysql and mariadb).
const dumpFile = "all_databases.sql"

// safeName keeps a name usable as one path element.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, s)
	if s == "." || s == ".." {
		return "_"
	}
	return s
}
