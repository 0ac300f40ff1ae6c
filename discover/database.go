package discover

import (
	"path"
	"slices"
	"strings"
)

// engineSpec is what discovery knows about a database image family (the
// official postgres, mysql and mariadb images).
type engineSpec struct {
	// dataDirs are where the engine keeps its files; a mount holding one is
	// not backed up as files when the container is dumped.
	dataDirs []string
	// credEnv are the variables that may hold credentials or the database
	// name, each also with a _FILE variant.
	credEnv []string
	// needsCred: a dump cannot log in without one of these set.
	needsCred []string
}

var engines = map[Kind]engineSpec{
	KindPostgres: {
		// /var/lib/postgresql is the volume of postgres 18+ images.
		dataDirs: []string{"/var/lib/postgresql/data", "/var/lib/postgresql"},
		credEnv:  []string{"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
	},
	KindMySQL: {
		dataDirs:  []string{"/var/lib/mysql"},
		credEnv:   []string{"MYSQL_ROOT_PASSWORD", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD"},
		needsCred: []string{"MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD"},
	},
	KindMariaDB: {
		dataDirs: []string{"/var/lib/mysql"},
		// The mariadb image also accepts the MYSQL_* names.
		credEnv: []string{"MARIADB_ROOT_PASSWORD", "MARIADB_USER", "MARIADB_PASSWORD", "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
			"MYSQL_ROOT_PASSWORD", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD"},
		needsCred: []string{"MARIADB_ROOT_PASSWORD", "MARIADB_PASSWORD", "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
			"MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD"},
	},
}

// credentialEnv returns the credential variables (plain or _FILE) set in env,
// sorted.
func credentialEnv(kind Kind, env map[string]string) []string {
	var out []string
	for _, name := range engines[kind].credEnv {
		for _, n := range []string{name, name + "_FILE"} {
			if _, ok := env[n]; ok {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// hasLogin reports whether env has what a dump needs to log in.
func hasLogin(kind Kind, env map[string]string) bool {
	need := engines[kind].needsCred
	if len(need) == 0 {
		return true
	}
	for _, n := range need {
		if _, ok := env[n]; ok {
			return true
		}
		if _, ok := env[n+"_FILE"]; ok {
			return true
		}
	}
	return false
}

// dataDirs returns the engine's data directories, with PGDATA for postgres.
func dataDirs(kind Kind, env map[string]string) []string {
	dirs := engines[kind].dataDirs
	if kind == KindPostgres && env["PGDATA"] != "" {
		dirs = append([]string{path.Clean(env["PGDATA"])}, dirs...)
	}
	return dirs
}

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

// dumpNote says what a dump of kind holds, for the plan table.
func dumpNote(kind Kind) string {
	if kind == KindPostgres {
		return "pg_dumpall: all databases and roles"
	}
	return "all databases"
}

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
