package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/dbengine"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/ids"
	"github.com/platback/platback/internal/worker"
)

// VerifyLabel marks the scratch volumes and throwaway database containers
// of a verify, with the identity of the sidecar that made them as value,
// so the sidecar's cleanup finds its own leftovers (CleanVerifyLeftovers).
const VerifyLabel = "io.platback.verify"

// VerifyOptions say what Verify verifies.
type VerifyOptions struct {
	// Paths are the targets' snapshot paths to verify; all targets of the
	// plan when empty.
	Paths []string
	// MaxBytes refuses a volume snapshot or a dump larger than this (0: a
	// volume's is bounded by the scratch volume's free space only).
	MaxBytes uint64
}

// VerifyResult is one target's restore drill.
type VerifyResult struct {
	Target   string    `json:"target"`
	Kind     string    `json:"kind"`
	Snapshot string    `json:"snapshot,omitempty"`
	Time     time.Time `json:"snapshot_time,omitzero"`
	// Age is the snapshot's age when the drill started.
	Age      time.Duration `json:"snapshot_age_ns,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	// Volumes: what the snapshot holds and was found restored.
	Files uint64 `json:"files,omitempty"`
	Dirs  uint64 `json:"dirs,omitempty"`
	Bytes uint64 `json:"bytes,omitempty"`
	// Databases: what the dump loaded into a throwaway server holds.
	Databases int    `json:"databases,omitempty"`
	Tables    int    `json:"tables,omitempty"`
	Rows      int64  `json:"rows,omitempty"`
	Error     string `json:"error,omitempty"`
	Err       error  `json:"-"`
}

// OK reports whether the drill passed.
func (r VerifyResult) OK() bool { return r.Err == nil }

// Detail says what the drill found, for a table or a message.
func (r VerifyResult) Detail() string {
	if r.Kind == string(discover.KindVolume) {
		return fmt.Sprintf("%d files, %d dirs, %d bytes", r.Files, r.Dirs, r.Bytes)
	}
	return fmt.Sprintf("%d databases, %d tables, %d rows", r.Databases, r.Tables, r.Rows)
}

// ErrUnknownTarget marks a --path that is no target of the plan.
var ErrUnknownTarget = errors.New("no such target")

// Verify restores the latest snapshot of each target into scratch space
// and checks it, one target after the other, then removes the scratch:
//
//   - a volume into a new scratch volume, through a worker container that
//     first refuses when the snapshot's size (plus a margin) exceeds the
//     scratch volume's free space or o.MaxBytes, then compares the
//     restored tree with the snapshot's file list (every file present
//     with its size);
//   - a database dump into a throwaway container of the image the
//     database container runs (a random password of its own, no network),
//     then counts its databases, tables and rows (refused when the dump
//     is larger than o.MaxBytes).
//
// A failing target never stops the others. err is an error of the whole
// drill (an unknown path).
func (rn *Runner) Verify(ctx context.Context, s *Session, o VerifyOptions) ([]VerifyResult, error) {
	targets := s.Plan.Targets
	if len(o.Paths) > 0 {
		targets = nil
		for _, p := range o.Paths {
			t, ok := s.Plan.FindTarget(p)
			if !ok {
				var paths []string
				for _, t := range s.Plan.Targets {
					paths = append(paths, t.Path)
				}
				return nil, fmt.Errorf("--path %s: %w (targets: %s)", p, ErrUnknownTarget, strings.Join(paths, ", "))
			}
			targets = append(targets, t)
		}
	}
	identity := sidecarIdentity(s.self)
	var results []VerifyResult
	for _, t := range targets {
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
		start := time.Now()
		res := VerifyResult{Target: t.Path, Kind: string(t.Kind)}
		sn, err := rn.SnapshotOf(ctx, s, t.Path, "latest")
		if err == nil {
			res.Snapshot, res.Time, res.Age = sn.ShortID, sn.Time, start.Sub(sn.Time)
			if t.Volume != nil {
				err = rn.verifyVolume(ctx, s, t, sn, identity, o.MaxBytes, &res)
			} else {
				err = rn.verifyDatabase(ctx, t, sn, s, identity, o.MaxBytes, &res)
			}
		}
		res.Duration = time.Since(start)
		if res.Err = err; err != nil {
			res.Error = err.Error()
			rn.Log.Error("restore drill failed", "target", t.Path, "snapshot", res.Snapshot, "err", err)
		} else {
			rn.Log.Info("restore drill passed", "target", t.Path, "snapshot", res.Snapshot, "detail", res.Detail(),
				"took", res.Duration.Round(time.Millisecond))
		}
		results = append(results, res)
	}
	return results, nil
}

// verifyVolume restores sn into a new scratch volume through a worker and
// removes the volume (and the worker) afterwards.
func (rn *Runner) verifyVolume(ctx context.Context, s *Session, t discover.Target, sn backup.Snapshot, identity string, maxBytes uint64, res *VerifyResult) error {
	cli := rn.client()
	if cli == nil {
		return errors.New("verify needs the Docker client")
	}
	vol, err := cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "platback-verify-" + randomHex(6),
		Labels: map[string]string{VerifyLabel: identity, discover.WorkerLabel: strings.Join(s.Plan.Projects, ",")}})
	if err != nil {
		return fmt.Errorf("create a scratch volume: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := cli.VolumeRemove(rctx, vol.Volume.Name, client.VolumeRemoveOptions{Force: true}); err != nil {
			rn.Log.Warn("could not remove the verify's scratch volume; the next verify retries", "volume", vol.Volume.Name, "err", err)
		}
	}()
	spec, _, err := rn.WorkerSpec(ctx, s, nil, false)
	if err != nil {
		return err
	}
	spec.Mounts = append(spec.Mounts, mount.Mount{Type: mount.TypeVolume, Source: vol.Volume.Name, Target: t.Path})
	owner := s.workerOwner()
	req := worker.Request{Op: worker.OpVerify, Repository: s.URL, Env: s.Env, Host: s.Host, Snapshot: sn.ID,
		Path: t.Path, Owner: owner, MaxBytes: maxBytes, Timeout: rn.Config.BackupTimeout, LogLevel: rn.Config.LogLevel}
	rn.workerRestic(&req, spec, s)
	resps, err := worker.Run(ctx, rn.Docker, spec, req, nil)
	if err != nil {
		rn.removeWorkerLocks(ctx, s, owner, err)
		return err
	}
	v := resps[0].Verify
	res.Files, res.Dirs, res.Bytes = v.Files, v.Dirs, v.Bytes
	if err := resps[0].Err(); err != nil {
		return workerError(err, s)
	}
	if !v.OK() {
		return fmt.Errorf("the restored snapshot %s differs from its file list: %d missing, %d with another size or type (%s)",
			sn.ShortID, v.Missing, v.WrongSize, strings.Join(v.Problems, "; "))
	}
	return nil
}

// verifyDatabase loads the dump of sn into a throwaway container of the
// database container's image, counts what it holds, and removes it with
// its volumes. A dump larger than maxBytes (when not 0) is refused.
func (rn *Runner) verifyDatabase(ctx context.Context, t discover.Target, sn backup.Snapshot, s *Session, identity string, maxBytes uint64, res *VerifyResult) error {
	cli := rn.client()
	if cli == nil {
		return errors.New("verify needs the Docker client")
	}
	engine := dbengine.Engine(t.Database.Engine)
	if sn.Summary != nil {
		res.Bytes = sn.Summary.TotalBytes
		if maxBytes > 0 && sn.Summary.TotalBytes > maxBytes {
			return fmt.Errorf("refused: the dump holds %d bytes, more than VERIFY_MAX_BYTES=%d allows; raise it to verify this target", sn.Summary.TotalBytes, maxBytes)
		}
	}
	ins, err := cli.ContainerInspect(ctx, t.Container.ID, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect %s for its image: %w", t.Container.Name, err)
	}
	env, login, err := ScratchDatabaseEnv(engine, randomHex(16))
	if err != nil {
		return err
	}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       "platback-verify-" + randomHex(6),
		Config:     &container.Config{Image: ins.Container.Image, Env: env, Labels: map[string]string{VerifyLabel: identity}},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return fmt.Errorf("create a throwaway %s container from the image of %s: %w", engine, t.Container.Name, err)
	}
	id := created.ID
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := cli.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			rn.Log.Warn("could not remove the verify's throwaway database container; the next verify retries", "container", ids.Container(id), "err", err)
		}
	}()
	if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start the throwaway %s container: %w", engine, err)
	}
	if err := waitDatabase(ctx, cli, id, engine, rn.Config.BackupTimeout); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	dumped := make(chan error, 1)
	go func() {
		err := s.Repo.Dump(ctx, sn.ID, t.Path, backup.Filter{}, pw)
		pw.CloseWithError(err)
		dumped <- err
	}()
	db := dbengine.Database{Engine: engine, ContainerID: id, ContainerName: "the throwaway " + string(engine) + " container"}
	rerr := dbengine.Restore(ctx, cli, db, pr)
	pr.CloseWithError(errors.New("restore ended"))
	derr := <-dumped
	if rerr != nil {
		return fmt.Errorf("load the dump of snapshot %s: %w", sn.ShortID, rerr)
	}
	if derr != nil {
		return fmt.Errorf("read the dump of snapshot %s: %w", sn.ShortID, derr)
	}
	c, err := countDatabase(ctx, cli, id, engine, login)
	if err != nil {
		return err
	}
	res.Databases, res.Tables, res.Rows = c.databases, c.tables, c.rows
	return nil
}

// ScratchDatabaseEnv is the environment of a throwaway database container
// of engine: a superuser with password (random, its own; never the
// app's), and the login to query it.
func ScratchDatabaseEnv(engine dbengine.Engine, password string) (env []string, login dbengine.Login, err error) {
	switch engine {
	case dbengine.Postgres:
		return []string{"POSTGRES_PASSWORD=" + password}, dbengine.Login{User: "postgres", Password: password}, nil
	case dbengine.MariaDB:
		return []string{"MARIADB_ROOT_PASSWORD=" + password}, dbengine.Login{User: "root", Password: password}, nil
	case dbengine.MySQL:
		return []string{"MYSQL_ROOT_PASSWORD=" + password}, dbengine.Login{User: "root", Password: password}, nil
	}
	return nil, dbengine.Login{}, fmt.Errorf("verify: unknown database engine %q", engine)
}

// readyCommand succeeds once the server of engine accepts TCP connections
// on 127.0.0.1 (the images' first-start server listens on the socket only).
func readyCommand(engine dbengine.Engine) []string {
	switch engine {
	case dbengine.Postgres:
		return []string{"pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432", "-t", "2"}
	case dbengine.MySQL:
		return []string{"mysqladmin", "ping", "--protocol=tcp", "-h", "127.0.0.1", "-P", "3306", "--connect-timeout=2", "--silent"}
	}
	return []string{"mariadb-admin", "ping", "--protocol=tcp", "-h", "127.0.0.1", "-P", "3306", "--connect-timeout=2", "--silent"}
}

// waitDatabase polls readyCommand until the server is ready, the
// container stops, or timeout.
func waitDatabase(ctx context.Context, cli *client.Client, id string, engine dbengine.Engine, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ins, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("inspect the throwaway %s container: %w", engine, err)
		}
		if st := ins.Container.State; st == nil || !st.Running {
			return fmt.Errorf("the throwaway %s container stopped before it was ready (see `docker logs %s`)", engine, ids.Container(id))
		}
		if _, _, err := execOutput(ctx, cli, id, readyCommand(engine), nil); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the throwaway %s container was not ready within %s: %w", engine, timeout, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// execOutput runs cmd in container id and returns its stdout; a non-zero
// exit is an error with stderr's tail.
func execOutput(ctx context.Context, cli *client.Client, id string, cmd, env []string) (string, int, error) {
	stream, wait, err := dbengine.ExecStream(ctx, cli, id, cmd, env)
	if err != nil {
		return "", -1, err
	}
	out, readErr := io.ReadAll(io.LimitReader(stream, 1<<20))
	stream.Close()
	code, tail, waitErr := wait()
	switch {
	case code != 0:
		return string(out), code, fmt.Errorf("%s exited with status %d: %s", cmd[0], code, strings.TrimSpace(tail))
	case waitErr != nil:
		return string(out), code, waitErr
	}
	return string(out), code, readErr
}

type dbCount struct {
	databases, tables int
	rows              int64
}

// pgCountQuery counts, in one database, its tables and their rows exactly.
const pgCountQuery = `SELECT count(*), coalesce(sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text::bigint), 0) FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`

// mysqlUserTables selects a mariadb or mysql server's own tables, system
// schemas left out.
const mysqlUserTables = `FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')`

// mysqlCountQuery counts the databases and tables of a mariadb or mysql
// server (first line), then their rows exactly (second line): a
// COUNT(*) of every table, summed in one prepared statement, since
// information_schema's table_rows is only InnoDB's estimate (0 for a
// table just loaded).
const mysqlCountQuery = `SET SESSION group_concat_max_len = 1073741824;
SELECT COUNT(DISTINCT table_schema), COUNT(*) ` + mysqlUserTables + `;
SELECT COALESCE(GROUP_CONCAT(CONCAT('SELECT COUNT(*) AS c FROM ` + "`" + `', REPLACE(table_schema, '` + "`" + `', '` + "``" + `'), '` + "`.`" + `', REPLACE(table_name, '` + "`" + `', '` + "``" + `'), '` + "`" + `') SEPARATOR ' UNION ALL '), 'SELECT 0 AS c') INTO @platback_count ` + mysqlUserTables + `;
SET @platback_count = CONCAT('SELECT COALESCE(SUM(c), 0) FROM (', @platback_count, ') AS t');
PREPARE platback_count FROM @platback_count;
EXECUTE platback_count;`

// countDatabase counts what the throwaway server holds: databases other
// than the image's own (postgres, templates), their tables and rows.
func countDatabase(ctx context.Context, cli *client.Client, id string, engine dbengine.Engine, l dbengine.Login) (dbCount, error) {
	var c dbCount
	_, _, env, err := dbengine.Commands(engine, l)
	if err != nil {
		return c, err
	}
	if engine != dbengine.Postgres {
		cmd := []string{string(engine), "--user=" + l.User, "--batch", "--skip-column-names", "--execute", mysqlCountQuery}
		if engine == dbengine.MySQL {
			cmd[0] = "mysql"
		}
		out, _, err := execOutput(ctx, cli, id, cmd, env)
		if err != nil {
			return c, fmt.Errorf("count what the dump restored: %w", err)
		}
		f := strings.Fields(out)
		if len(f) != 3 {
			return c, fmt.Errorf("count what the dump restored: unexpected output %q", out)
		}
		c.databases, _ = strconv.Atoi(f[0])
		c.tables, _ = strconv.Atoi(f[1])
		c.rows, _ = strconv.ParseInt(f[2], 10, 64)
		return c, nil
	}
	psql := func(db, query string) (string, error) {
		out, _, err := execOutput(ctx, cli, id, []string{"psql", "--username", l.User, "--dbname", db, "--no-psqlrc", "--no-password",
			"--quiet", "--tuples-only", "--no-align", "--field-separator= ", "--set", "ON_ERROR_STOP=1", "--command", query}, env)
		if err != nil {
			return "", fmt.Errorf("count what the dump restored (database %s): %w", db, err)
		}
		return out, nil
	}
	out, err := psql("postgres", "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1")
	if err != nil {
		return c, err
	}
	for _, db := range strings.Split(strings.TrimSpace(out), "\n") {
		if db == "" || db == "template1" {
			continue
		}
		out, err := psql(db, pgCountQuery)
		if err != nil {
			return c, err
		}
		tables, rows, err := parseCount(out)
		if err != nil {
			return c, fmt.Errorf("count what the dump restored (database %s): %w", db, err)
		}
		if db != "postgres" || tables > 0 {
			c.databases++
		}
		c.tables += tables
		c.rows += rows
	}
	return c, nil
}

// parseCount reads "tables rows" as psql prints pgCountQuery's result.
func parseCount(out string) (tables int, rows int64, err error) {
	f := strings.Fields(out)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("unexpected output %q", out)
	}
	if tables, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, fmt.Errorf("unexpected output %q", out)
	}
	if rows, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("unexpected output %q", out)
	}
	return tables, rows, nil
}

// CleanVerifyLeftovers removes the scratch volumes and throwaway database
// containers a killed verify of this sidecar left behind. Call it holding
// the run lock.
func (rn *Runner) CleanVerifyLeftovers(ctx context.Context, identity string) {
	cli := rn.client()
	if cli == nil {
		return
	}
	f := make(client.Filters).Add("label", VerifyLabel+"="+identity)
	if list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, c := range list.Items {
			if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err == nil {
				rn.Log.Warn("removed a throwaway database container a previous verify left behind", "container", ids.Container(c.ID))
			}
		}
	}
	if list, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f}); err == nil {
		for _, v := range list.Items {
			if _, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err == nil {
				rn.Log.Warn("removed a scratch volume a previous verify left behind", "volume", v.Name)
			}
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
