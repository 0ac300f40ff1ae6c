package dbimage

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/ids"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// DefaultReadyTimeout bounds WaitReady when ctx has no deadline. A first
// start initialises the data directory, which takes a few seconds (more on
// a busy machine).
const DefaultReadyTimeout = 2 * time.Minute

// ReadyCommand is the check WaitReady runs in a container of engine: it
// succeeds once the server accepts TCP connections on 127.0.0.1, which the
// temporary server of the first initialisation never does (it listens on
// the unix socket only).
func ReadyCommand(e Engine) []string {
	switch e {
	case Postgres:
		return []string{"pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432", "-t", "2"}
	case MariaDB:
		// Exit status 0 as soon as the server answers, even "access denied".
		return []string{"mariadb-admin", "ping", "--protocol=tcp", "-h", "127.0.0.1", "-P", "3306", "--connect-timeout=2", "--silent"}
	}
	return nil
}

// WaitReady polls the container with ReadyCommand through exec until the
// server is ready, the container stops, or ctx (by default
// DefaultReadyTimeout) ends. Its errors carry the tail of the container's
// log.
func WaitReady(ctx context.Context, cli *client.Client, containerID string, engine Engine) error {
	check := ReadyCommand(engine)
	if check == nil {
		return fmt.Errorf("dbimage: unknown engine %q", engine)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultReadyTimeout)
		defer cancel()
	}
	start := time.Now()
	last := ""
	for {
		ins, err := cli.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("dbimage: inspect %s: %w", ids.Container(containerID), err)
		}
		if st := ins.Container.State; st == nil || !st.Running {
			code := -1
			if st != nil {
				code = st.ExitCode
			}
			return fmt.Errorf("dbimage: %s container %s is not running (exit code %d)\nlog tail:\n%s",
				engine, ids.Container(containerID), code, LogTail(cli, containerID, 40))
		}
		res, err := dockerbed.TryExec(ctx, cli, containerID, dockerbed.ExecOptions{Timeout: time.Minute}, check...)
		switch {
		case err == nil && res.ExitCode == 0:
			return nil
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("%s: exit code %d %s", strings.Join(check, " "), res.ExitCode, strings.TrimSpace(res.Stdout+" "+res.Stderr))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dbimage: %s container %s not ready after %s (last check: %s)\nlog tail:\n%s",
				engine, ids.Container(containerID), time.Since(start).Round(time.Second), last, LogTail(cli, containerID, 40))
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// LogTail returns the last lines of a container's log (stdout and stderr
// interleaved as the engine stored them), or a note saying why it could not.
func LogTail(cli *client.Client, containerID string, lines int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := cli.ContainerLogs(ctx, containerID, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(lines),
	})
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		fmt.Fprintf(&buf, "(log cut: %v)", err)
	}
	return buf.String()
}
