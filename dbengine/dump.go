package dbengine

import (
	"context"
	"fmt"
	"io"
)

// Commands returns, for an engine and a login, the command that writes a
// dump of the whole server to stdout, the command that reads such a dump
// from stdin and restores it, and the environment both need (the
// password). It fails only for an unknown engine.
//
//   - postgres: pg_dumpall --username U (every database and role), restored
//     by psql into the "postgres" database with ON_ERROR_STOP=1, so the
//     first failed statement stops it with a non-zero exit. Restore does
//     more than run this command: see Restore.
//   - mariadb, mysql: mariadb-dump (mysqldump) --all-databases
//     --single-transaction --routines --events --triggers, restored by
//     mariadb (mysql), which stops at the first error.
func Commands(engine Engine, l Login) (dump, restore, env []string, err error) {
	switch engine {
	case Postgres:
		user := pgUser(l)
		dump = []string{"pg_dumpall", "--username", user}
		restore = []string{"psql", "--username", user, "--dbname", "postgres", "--no-psqlrc", "--no-password",
			"--quiet", "--set", "ON_ERROR_STOP=1", "--file", "-"}
		if l.Password != "" {
			env = []string{"PGPASSWORD=" + l.Password}
		}
	case MariaDB, MySQL:
		user := l.User
		if user == "" {
			user = "root"
		}
		dumpBin, client := "mariadb-dump", "mariadb"
		if engine == MySQL {
			dumpBin, client = "mysqldump", "mysql"
		}
		dump = []string{dumpBin, "--user=" + user, "--all-databases", "--single-transaction", "--routines", "--events", "--triggers"}
		restore = []string{client, "--user=" + user}
		if l.Password != "" {
			env = []string{"MYSQL_PWD=" + l.Password}
		}
	default:
		return nil, nil, nil, fmt.Errorf("dbengine: unknown database engine %q", engine)
	}
	return dump, restore, env, nil
}

// pgUser is the role dump and restore log in as.
func pgUser(l Login) string {
	if l.User == "" {
		return "postgres"
	}
	return l.User
}

// Dump streams a dump of every database of db to w, with the login read
// from its container now (ReadLogin) and the dump command of Commands run
// through ExecStream. It fails, having written possibly part of the dump,
// when the dump command exits non-zero: a caller that keeps the dump only
// on success (restic --stdin-from-command) then keeps nothing.
func Dump(ctx context.Context, cli Docker, db Database, w io.Writer) error {
	l, err := ReadLogin(ctx, cli, db)
	if err != nil {
		return err
	}
	cmd, _, env, err := Commands(db.Engine, l)
	if err != nil {
		return err
	}
	stream, wait, err := ExecStream(ctx, cli, db.ContainerID, cmd, env)
	if err != nil {
		return fmt.Errorf("dump %s in %s: %w", db.Engine, db.name(), err)
	}
	_, copyErr := io.Copy(w, stream)
	stream.Close()
	code, tail, waitErr := wait()
	switch {
	case waitErr != nil:
		return fmt.Errorf("%s in %s: %w", cmd[0], db.name(), waitErr)
	case code != 0:
		return fmt.Errorf("%s in %s exited with status %d: %s", cmd[0], db.name(), code, tail)
	case copyErr != nil:
		return fmt.Errorf("%s in %s: %w", cmd[0], db.name(), copyErr)
	}
	return nil
}
