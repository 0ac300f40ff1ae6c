package dbengine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/platback/platback/internal/outbuf"
	"github.com/platback/platback/internal/redact"
)

// Restore feeds a dump made by Dump, read from r, to the database client
// in db's container (the restore command of Commands, logged in with
// ReadLogin), and fails with the client's own error text as soon as one
// statement fails (psql with ON_ERROR_STOP=1; mariadb and mysql stop at the
// first error).
//
// postgres: the dump is a pg_dumpall of the whole cluster, which
// restores into a server whose databases are empty, as on a new data
// volume where the image created POSTGRES_DB. Before reading r, Restore
// lists the server's roles and databases and refuses, changing nothing,
// when a database (postgres included) holds objects (ErrNotEmpty) or when
// an empty database it would replace has open sessions (ErrInUse). Then,
// as the dump streams by, roles that exist are not created again (their
// ALTER ROLE applies, password included) and each empty database is
// dropped just before the dump creates it.
//
// mariadb, mysql: the dump drops and re-creates each table it holds (DROP
// TABLE IF EXISTS, routines and events likewise), so restoring over a
// server that has the data replaces it; tables and databases the dump
// does not hold are left alone.
//
// A dump that ends early (cut short, or r fails) fails with
// ErrIncompleteDump and a client error: the client is made to stop on it,
// so the table whose data was cut keeps none of it, but what came before
// in the dump was restored. After any failure part of the dump may be
// restored: the error says so.
func Restore(ctx context.Context, cli Docker, db Database, r io.Reader) error {
	l, err := ReadLogin(ctx, cli, db)
	if err != nil {
		return err
	}
	_, cmd, env, err := Commands(db.Engine, l)
	if err != nil {
		return err
	}
	name := db.name()
	if db.Engine != Postgres {
		s := newMySQLStream(r, cmd[0])
		res := runClient(ctx, cli, db.ContainerID, cmd, env, s)
		return res.err(ctx, name, cmd[0], l.Password, mysqlAdvice)
	}

	cl, err := inspectPostgres(ctx, cli, db, pgUser(l), env)
	if err != nil {
		return err
	}
	roles, replace, err := cl.check(name)
	if err != nil {
		return err
	}
	s := newPGStream(r, roles, replace)
	res := runClient(ctx, cli, db.ContainerID, cmd, env, s)
	if err := res.err(ctx, name, "psql", l.Password, pgAdvice); err != nil {
		return err
	}
	slog.InfoContext(ctx, "dbengine: pg_dumpall restored", slog.String("container", name),
		slog.Int("lines", s.lines), slog.Any("existing_roles_kept", s.skippedRoles),
		slog.Any("empty_databases_replaced", s.droppedDBs))
	return nil
}

// What a failed restore left behind, after the client's error.
const (
	pgAdvice = "The statements before it were applied: before running restore again, drop the databases it created " +
		"(or start from a new, empty database volume)."
	mysqlAdvice = "The statements before it were applied: the tables the dump holds up to there were replaced, and the one " +
		"it stopped at may be missing; restore a good dump (another snapshot) to repair them."
)

// clientResult is how a client fed by runClient ended.
type clientResult struct {
	code    int    // exit status; -1 when unknown
	stderr  string // the end of its error output
	readErr error  // reading the dump: ErrIncompleteDump, r's error
	sendErr error  // the client stopped reading, or the engine failed
}

// stderrKeep is how much of a client's error output is kept (the end).
const stderrKeep = 8 << 10

// errClientGone stops the copy when the client has exited.
var errClientGone = errors.New("the client exited before reading the whole dump")

// clientExitWait bounds how long runClient waits, after the client's output
// ended, for the engine to report it as exited.
const clientExitWait = 30 * time.Second

// runClient runs cmd in the container with src on its standard input and
// waits for it to exit. Its standard output is discarded. Streaming stops
// as soon as the client has exited (its output ended, or the engine says
// so): on Docker 20.10 the rest of the input would otherwise either be
// taken and thrown away (a minute for 300 MB after psql stopped at line 1)
// or block a write for tens of seconds.
func runClient(ctx context.Context, cli Docker, containerID string, cmd, env []string, src io.Reader) clientResult {
	res := clientResult{code: -1}
	ex, err := startExec(ctx, cli, containerID, cmd, env, true)
	if err != nil {
		res.sendErr = err
		return res
	}
	defer ex.close()
	stop := context.AfterFunc(ctx, ex.close)
	defer stop()

	stderr := outbuf.NewTail(stderrKeep)
	outputDone := make(chan struct{})
	go func() {
		defer close(outputDone)
		_ = ex.copyOutput(io.Discard, stderr)
	}()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	exited := make(chan struct{})
	go func() {
		defer func() {
			close(exited)
			// The Engine stops reading the input of an exited exec: a
			// write in progress would wait (16 to 34 s seen) for nothing.
			_ = ex.conn.Conn.SetWriteDeadline(time.Now())
		}()
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-outputDone:
				return
			case <-time.After(exitPoll):
			}
			if running, err := ex.running(watchCtx); err == nil && !running {
				return
			}
		}
	}()

	// pgStream hands out a line per Read: write in big blocks, not a
	// system call per line (3.5 times slower for a dump of short rows).
	w := bufio.NewWriterSize(ex.conn.Conn, 256<<10)
	buf := make([]byte, 64<<10)
	for res.sendErr == nil {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-exited:
				res.sendErr = errClientGone
			default:
				if _, werr := w.Write(buf[:n]); werr != nil {
					res.sendErr = werr
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			res.readErr = err
			break
		}
	}
	if res.sendErr == nil {
		res.sendErr = w.Flush()
	}
	_ = ex.conn.CloseWrite()
	<-outputDone
	stopWatch()
	res.stderr = stderr.String()

	code, err := ex.exitCode(ctx, clientExitWait)
	res.code = code
	if err != nil && ctx.Err() == nil {
		res.sendErr = errors.Join(res.sendErr, err)
	}
	return res
}

// exitPoll is how often runClient asks whether the client still runs.
const exitPoll = 250 * time.Millisecond

// err turns a result into Restore's error, nil when the client exited 0
// after reading the whole dump. advice follows a client error.
func (res clientResult) err(ctx context.Context, container, client, password, advice string) error {
	secrets := redact.NewSecrets(password)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("restore into %s: %w (part of the dump may be restored)", container, context.Cause(ctx))
	case res.code > 0:
		msg := secrets.String(clientErrorText(res.stderr))
		if strings.Contains(msg, "is being accessed by other users") {
			msg += "\nStop the services that use this database (keep the database container running)."
		}
		if advice != "" {
			msg += "\n" + advice
		}
		if res.readErr != nil {
			return fmt.Errorf("restore into %s: %w; %s stopped on it (exit status %d): %s", container, res.readErr, client, res.code, msg)
		}
		return fmt.Errorf("restore into %s: %s stopped at an error (exit status %d): %s", container, client, res.code, msg)
	case res.readErr != nil:
		return fmt.Errorf("restore into %s: %w (part of the dump may be restored)", container, res.readErr)
	case res.sendErr != nil:
		return fmt.Errorf("restore into %s: %s: %w (part of the dump may be restored)", container, client, res.sendErr)
	case res.code != 0:
		return fmt.Errorf("restore into %s: %s ended with unknown status", container, client)
	}
	return nil
}

// clientErrorText picks the error out of a client's error output: from
// the line that reports it to the end, which holds its DETAIL, HINT,
// CONTEXT and LINE lines (and a message may quote data over several
// lines). Both clients stop at the first error, so it is the first such
// line after the statement mariadb echoes between two "--------------"
// lines. psql's errors begin "psql:<stdin>:12: ERROR:" (or "psql: error:",
// "ERROR:", "FATAL:"), mariadb's "ERROR 1064 (42000) at line 12:".
func clientErrorText(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if lines[i] == "--------------" {
			lines = lines[i+1:]
			break
		}
	}
	for i := range lines {
		l := lines[i]
		psql := strings.HasPrefix(l, "psql:") &&
			(strings.Contains(l, "ERROR:") || strings.Contains(l, "FATAL:") || strings.Contains(l, "error:"))
		if psql || strings.HasPrefix(l, "ERROR") || strings.HasPrefix(l, "FATAL:") {
			lines = lines[i:]
			break
		}
	}
	s := strings.Join(lines, "\n")
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return strings.ToValidUTF8(s, "")
}
