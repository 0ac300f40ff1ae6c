package dbengine

import (
	"path"
	"slices"
)

// Engine is a database engine, named as the official image family and as
// the stack-back label that selects it.
type Engine string

// The engines dbengine knows.
const (
	Postgres Engine = "postgres"
	MySQL    Engine = "mysql"
	MariaDB  Engine = "mariadb"
)

// spec is what dbengine knows about an engine's official image.
type spec struct {
	// dataDirs are where the engine keeps its files.
	dataDirs []string
	// credEnv are the variables that may hold credentials or the database
	// name, each also with a _FILE variant.
	credEnv []string
	// loginEnv: a dump cannot log in without one of these set.
	loginEnv []string
}

var specs = map[Engine]spec{
	Postgres: {
		// /var/lib/postgresql is the volume of postgres 18+ images.
		dataDirs: []string{"/var/lib/postgresql/data", "/var/lib/postgresql"},
		credEnv:  []string{"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
	},
	MySQL: {
		dataDirs: []string{"/var/lib/mysql"},
		credEnv:  []string{"MYSQL_ROOT_PASSWORD", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD"},
		loginEnv: []string{"MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD"},
	},
	MariaDB: {
		dataDirs: []string{"/var/lib/mysql"},
		// The mariadb image also accepts the MYSQL_* names.
		credEnv: []string{"MARIADB_ROOT_PASSWORD", "MARIADB_USER", "MARIADB_PASSWORD", "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
			"MYSQL_ROOT_PASSWORD", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD"},
		loginEnv: []string{"MARIADB_ROOT_PASSWORD", "MARIADB_PASSWORD", "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
			"MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD"},
	},
}

// DataDirs returns where the engine keeps its files in a container with
// environment env (PGDATA first for postgres). A volume holding one of them
// is backed up as a dump, not as files.
func (e Engine) DataDirs(env map[string]string) []string {
	dirs := slices.Clone(specs[e].dataDirs)
	if e == Postgres && env["PGDATA"] != "" {
		dirs = append([]string{path.Clean(env["PGDATA"])}, dirs...)
	}
	return dirs
}

// CredentialEnv returns the variables of env, sorted, that the engine's
// image reads credentials or the database name from (plain or _FILE).
func (e Engine) CredentialEnv(env map[string]string) []string {
	var out []string
	for _, name := range specs[e].credEnv {
		for _, n := range []string{name, name + "_FILE"} {
			if _, ok := env[n]; ok {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// LoginEnv returns the variables one of which (or its _FILE variant) must
// be set for a dump to log in; none for postgres, whose image defaults
// log in.
func (e Engine) LoginEnv() []string { return slices.Clone(specs[e].loginEnv) }

// HasLogin reports whether env has what a dump needs to log in (see
// LoginEnv).
func (e Engine) HasLogin(env map[string]string) bool {
	need := specs[e].loginEnv
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

// DumpContents says what a dump of the engine holds, for a plan table.
func (e Engine) DumpContents() string {
	if e == Postgres {
		return "pg_dumpall: all databases and roles"
	}
	return "all databases"
}
