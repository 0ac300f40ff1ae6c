// Package dbdump dumps and restores the database of a container, with the
// engine's own tools run inside that container: pg_dumpall/psql for
// postgres, mariadb-dump/mariadb and mysqldump/mysql. Passwords travel in
// the exec's environment (PGPASSWORD, MYSQL_PWD), never in a command line
// or an error.
package dbdump

import (
	"context"
	"fmt"
	"io"

	"github.com/platback/platback/discover"
)

// Commands returns, for a database target and its credentials, the
// command that writes a dump to stdout, the command that reads one from
// stdin and restores it, and the environment both need (the password).
//
//   - postgres: pg_dumpall --username U (every database and role), restored
//     by psql into the "postgres" database with ON_ERROR_STOP=1, so the
//     first failed statement stops it with a non-zero exit. Restore does
//     more than run this command: see Restore.
//   - mariadb, mysql: mariadb-dump (mysqldump) --all-databases
//     --single-transaction --routines --events --triggers, restored by
//     mariadb (mysql), which stops at the first error.
func Commands(t discover.Target, c discover.Credentials) (dump, restore []string, env []string, err error) {
	if t.Database == nil {
		return nil, nil, nil, fmt.Errorf("target %s is not a database", t.Path)
	}
	switch t.Database.Engine {
	case discover.KindPostgres:
		user := pgUser(c)
		dump = []string{"pg_dumpall", "--username", user}
		restore = []string{"psql", "--username", user, "--dbname", "postgres", "--no-psqlrc", "--no-password",
			"--quiet", "--set", "ON_ERROR_STOP=1", "--file", "-"}
		if c.Password != "" {
			env = []string{"PGPASSWORD=" + c.Password}
		}
	case discover.KindMariaDB, discover.KindMySQL:
		user := c.User
		if user == "" {
			user = "root"
		}
		dumpBin, client := "mariadb-dump", "mariadb"
		if t.Database.Engine == discover.KindMySQL {
			dumpBin, client = "mysqldump", "mysql"
		}
		dump = []string{dumpBin, "--user=" + user, "--all-databases", "--single-transaction", "--routines", "--events", "--triggers"}
		restore = []string{client, "--user=" + user}
		if c.Password != "" {
			env = []string{"MYSQL_PWD=" + c.Password}
		}
	default:
		return nil, nil, nil, fmt.Errorf("target %s: unknown database engine %q", t.Path, t.Database.Engine)
	}
	return dump, restore, env, nil
}

// pgUser is the role dump and restore log in as.
func pgUser(c discover.Credentials) string {
	if c.User == "" {
		return "postgres"
	}
	return c.User
}

// Dump streams a database target's dump to w. It fails, having written
// possibly part of the dump, when the dump command exits non-zero: the
// caller (restic --stdin-from-command via `sidecar dump`) then keeps nothing.
func Dump(ctx context.Context, d *discover.Discoverer, t discover.Target, w io.Writer) error {
	cmd, _, env, err := commandsNow(ctx, d, t)
	if err != nil {
		return err
	}
	stream, wait, err := d.ExecStream(ctx, t.Container.ID, cmd, env)
	if err != nil {
		return fmt.Errorf("dump %s in %s: %w", t.Database.Engine, t.Container.Name, err)
	}
	_, copyErr := io.Copy(w, stream)
	stream.Close()
	code, tail, waitErr := wait()
	switch {
	case waitErr != nil:
		return fmt.Errorf("%s in %s: %w", cmd[0], t.Container.Name, waitErr)
	case code != 0:
		return fmt.Errorf("%s in %s exited with status %d: %s", cmd[0], t.Container.Name, code, tail)
	case copyErr != nil:
		return fmt.Errorf("%s in %s: %w", cmd[0], t.Container.Name, copyErr)
	}
	return nil
}

// commandsNow is Commands with the credentials read from the database
// container as it is now.
func commandsNow(ctx context.Context, d *discover.Discoverer, t discover.Target) (dump, restore, env []string, err error) {
	creds, err := d.Credentials(ctx, t)
	if err != nil {
		return nil, nil, nil, err
	}
	return Commands(t, creds)
}
