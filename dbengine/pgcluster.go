package dbengine

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// pgCluster is what a PostgreSQL server holds, as far as a restore of a
// pg_dumpall cares.
type pgCluster struct {
	roles map[string]bool
	dbs   []*pgDatabase
}

// pgDatabase is a database of the server.
type pgDatabase struct {
	name       string
	template   bool
	canConnect bool
	sessions   []string // other sessions: "application@address"
	checked    bool     // objects were counted
	objects    int      // user objects (not pg_catalog, information_schema, extensions)
	examples   []string // a few of them: "table public.items"
}

// replaceable reports whether a restore may drop db before the dump
// re-creates it: it exists, holds nothing, and pg_dumpall does not expect
// it to exist (it creates every database but postgres and template1).
func (db *pgDatabase) replaceable() bool {
	return db.checked && db.objects == 0 && db.name != "postgres" && db.name != "template1"
}

// pgObjectExamples is how many objects a refusal names per database.
const pgObjectExamples = 5

// Separators of psql's unaligned output in the queries below.
const (
	fieldSep  = "\x1f"
	recordSep = "\x00"
)

// The roles, databases and other sessions of the server, one record each;
// names in hex (psql's client encoding), so any byte in them survives.
// Sessions are client connections (client_port is null for the server's
// own processes, autovacuum included; a query PostgreSQL 9.6 answers too).
const pgClusterQuery = `SELECT 'role', encode(convert_to(rolname, pg_client_encoding()), 'hex'), '', '' FROM pg_roles
UNION ALL
SELECT 'database', encode(convert_to(datname, pg_client_encoding()), 'hex'), datistemplate::text, datallowconn::text FROM pg_database
UNION ALL
SELECT 'session', encode(convert_to(datname, pg_client_encoding()), 'hex'),
       coalesce(nullif(application_name, ''), 'unnamed client'), coalesce(host(client_addr), 'local socket')
FROM pg_stat_activity
WHERE datname IS NOT NULL AND pid <> pg_backend_pid() AND client_port IS NOT NULL`

// The user objects of a database: relations, functions, types, schemas and
// large objects that are not PostgreSQL's own nor an extension's (the
// objects of an extension an image installs in a new database are not
// data). One record: count, then a few of them.
var pgObjectsQuery = `WITH ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
o AS (
  SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                        WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind,
         format('%I.%I', n.nspname, c.relname) AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
    AND c.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_class'::regclass)
  UNION ALL
  SELECT 'function', format('%I.%I', n.nspname, p.proname)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND p.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_proc'::regclass)
  UNION ALL
  SELECT 'type', format('%I.%I', n.nspname, t.typname)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
    AND (t.typtype IN ('d', 'e', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
    AND t.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_type'::regclass)
  UNION ALL
  SELECT 'schema', format('%I', n.nspname)
  FROM pg_namespace n
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND n.nspname !~ '^pg_(toast|temp_)'
    AND n.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_namespace'::regclass)
  UNION ALL
  SELECT 'large object', l.oid::text FROM pg_largeobject_metadata l
)
SELECT count(*) OVER () || '` + fieldSep + `' || kind || ' ' || name FROM o
ORDER BY kind <> 'table', kind, name LIMIT ` + strconv.Itoa(pgObjectExamples)

// inspectPostgres reads the roles and databases of the postgres server
// target, and counts the user objects of every database it can connect to.
func inspectPostgres(ctx context.Context, cli Docker, target Database, user string, env []string) (*pgCluster, error) {
	recs, err := pgQuery(ctx, cli, target, user, env, "postgres", pgClusterQuery)
	if err != nil {
		return nil, err
	}
	cl, err := parseCluster(recs)
	if err != nil {
		return nil, fmt.Errorf("inspect the postgres server in %s: %w", target.name(), err)
	}
	for _, db := range cl.dbs {
		if !db.canConnect || db.name == "template1" {
			continue // template0; template1 is never dropped nor re-created
		}
		recs, err := pgQuery(ctx, cli, target, user, env, db.name, pgObjectsQuery)
		if err != nil {
			return nil, err
		}
		if db.objects, db.examples, err = parseObjects(recs); err != nil {
			return nil, fmt.Errorf("inspect database %s in %s: %w", quoteIdent(db.name), target.name(), err)
		}
		db.checked = true
	}
	return cl, nil
}

// pgQuery runs one query with psql in target's container and returns its
// records, split into fields.
func pgQuery(ctx context.Context, cli Docker, target Database, user string, env []string, db, query string) ([][]string, error) {
	cmd := []string{"psql", "--username", user, "--dbname", "dbname=" + quoteConnValue(db),
		"--no-psqlrc", "--no-password", "--quiet", "--tuples-only", "--no-align",
		"--field-separator=" + fieldSep, "--record-separator-zero", "--set", "ON_ERROR_STOP=1", "--command", query}
	stream, wait, err := ExecStream(ctx, cli, target.ContainerID, cmd, env)
	if err != nil {
		return nil, fmt.Errorf("inspect the postgres server in %s: %w", target.name(), err)
	}
	out, readErr := io.ReadAll(io.LimitReader(stream, 1<<20))
	stream.Close()
	code, tail, waitErr := wait()
	switch {
	case code > 0:
		return nil, fmt.Errorf("inspect the postgres server in %s: psql in database %s exited with status %d: %s",
			target.name(), quoteIdent(db), code, clientErrorText(tail))
	case waitErr != nil:
		return nil, fmt.Errorf("inspect the postgres server in %s: %w", target.name(), waitErr)
	case readErr != nil:
		return nil, fmt.Errorf("inspect the postgres server in %s: %w", target.name(), readErr)
	}
	var recs [][]string
	for _, rec := range strings.Split(string(out), recordSep) {
		if rec = strings.TrimSuffix(rec, "\n"); rec != "" {
			recs = append(recs, strings.Split(rec, fieldSep))
		}
	}
	return recs, nil
}

func parseCluster(recs [][]string) (*pgCluster, error) {
	cl := &pgCluster{roles: map[string]bool{}}
	byName := map[string]*pgDatabase{}
	for _, f := range recs {
		if len(f) != 4 {
			return nil, fmt.Errorf("unexpected psql output %q", strings.Join(f, "|"))
		}
		name, err := hex.DecodeString(f[1])
		if err != nil {
			return nil, fmt.Errorf("unexpected psql output %q: %w", strings.Join(f, "|"), err)
		}
		switch f[0] {
		case "role":
			cl.roles[string(name)] = true
		case "database":
			db := &pgDatabase{name: string(name), template: f[2] == "true", canConnect: f[3] == "true"}
			cl.dbs = append(cl.dbs, db)
			byName[db.name] = db
		case "session":
			if db := byName[string(name)]; db != nil {
				db.sessions = append(db.sessions, f[2]+"@"+f[3])
			}
		default:
			return nil, fmt.Errorf("unexpected psql output %q", strings.Join(f, "|"))
		}
	}
	slices.SortFunc(cl.dbs, func(a, b *pgDatabase) int { return strings.Compare(a.name, b.name) })
	if len(cl.roles) == 0 || len(cl.dbs) == 0 {
		return nil, fmt.Errorf("psql listed no roles or no databases")
	}
	return cl, nil
}

func parseObjects(recs [][]string) (count int, examples []string, err error) {
	for _, f := range recs {
		if len(f) < 2 {
			return 0, nil, fmt.Errorf("unexpected psql output %q", strings.Join(f, "|"))
		}
		if count, err = strconv.Atoi(f[0]); err != nil {
			return 0, nil, fmt.Errorf("unexpected psql output %q", strings.Join(f, "|"))
		}
		examples = append(examples, strings.Join(f[1:], fieldSep))
	}
	return count, examples, nil
}

// check refuses a restore into a server whose databases hold objects, or
// whose empty databases (which the restore drops before re-creating them)
// have open sessions. It returns what the restore may change: the roles
// that exist, and the databases it may drop (true: a template).
func (cl *pgCluster) check(container string) (roles, replace map[string]bool, err error) {
	var full, busy []string
	replace = map[string]bool{}
	for _, db := range cl.dbs {
		switch {
		case db.checked && db.objects > 0:
			s := "s"
			if db.objects == 1 {
				s = ""
			}
			more := ""
			if db.objects > len(db.examples) {
				more = ", …"
			}
			full = append(full, fmt.Sprintf("database %s holds %d object%s (%s%s)",
				quoteIdent(db.name), db.objects, s, strings.Join(db.examples, ", "), more))
		case db.replaceable():
			replace[db.name] = db.template
			if len(db.sessions) > 0 {
				busy = append(busy, fmt.Sprintf("database %s has %d open session(s) (%s)",
					quoteIdent(db.name), len(db.sessions), strings.Join(firstN(db.sessions, 3), ", ")))
			}
		}
	}
	if len(full) > 0 {
		return nil, nil, fmt.Errorf("%w: %s. Restore into %s refused, nothing was changed: a pg_dumpall restores a whole cluster "+
			"and cannot be merged into existing data; drop those databases once you are sure they hold nothing you need "+
			"(for \"postgres\", drop its objects), or restore into a new, empty database volume, then run restore again",
			ErrNotEmpty, strings.Join(full, "; "), container)
	}
	if len(busy) > 0 {
		return nil, nil, fmt.Errorf("%w: %s. Restore into %s refused, nothing was changed: the restore drops the empty databases "+
			"the dump re-creates, and PostgreSQL cannot drop a database in use; stop the services that use it "+
			"(keep the database container running), then run restore again",
			ErrInUse, strings.Join(busy, "; "), container)
	}
	return cl.roles, replace, nil
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "…")
	}
	return s
}

// quoteIdent writes name as an SQL identifier, always quoted.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// quoteConnValue quotes a libpq connection string value.
func quoteConnValue(v string) string {
	var b bytes.Buffer
	b.WriteByte('\'')
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('\'')
	return b.String()
}
