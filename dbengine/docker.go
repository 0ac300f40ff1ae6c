package dbengine

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/ids"
)

// Docker is the part of the Docker Engine API client dbengine uses;
// *client.Client (github.com/moby/moby/client) implements it.
type Docker interface {
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerStatPath(ctx context.Context, containerID string, options client.ContainerStatPathOptions) (client.ContainerStatPathResult, error)
	CopyFromContainer(ctx context.Context, containerID string, options client.CopyFromContainerOptions) (client.CopyFromContainerResult, error)
	ExecCreate(ctx context.Context, containerID string, options client.ExecCreateOptions) (client.ExecCreateResult, error)
	ExecAttach(ctx context.Context, execID string, options client.ExecAttachOptions) (client.ExecAttachResult, error)
	ExecInspect(ctx context.Context, execID string, options client.ExecInspectOptions) (client.ExecInspectResult, error)
}

var _ Docker = (*client.Client)(nil)

// Database is a database server running in a container.
type Database struct {
	Engine      Engine
	ContainerID string
	// ContainerName names the container in messages; default the short id.
	ContainerName string
}

func (db Database) name() string {
	if db.ContainerName != "" {
		return db.ContainerName
	}
	return ids.Container(db.ContainerID)
}

// execution is one command run in a container through the exec API, the
// one way dbengine runs anything: created, attached to (stdout and stderr,
// stdin when asked), its output demultiplexed, its exit status read from
// the engine.
type execution struct {
	cli Docker
	id  string
	// conn is the attached connection: the multiplexed output to read, the
	// standard input to write.
	conn client.HijackedResponse
}

// startExec creates cmd in the container and attaches to it. env adds
// KEY=VALUE variables to the command's environment.
func startExec(ctx context.Context, cli Docker, containerID string, cmd, env []string, stdin bool) (*execution, error) {
	ex, err := cli.ExecCreate(ctx, containerID, client.ExecCreateOptions{
		Cmd: cmd, Env: env, AttachStdin: stdin, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create exec in container %s: %w", ids.Container(containerID), err)
	}
	att, err := cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("start exec in container %s: %w", ids.Container(containerID), err)
	}
	return &execution{cli: cli, id: ex.ID, conn: att.HijackedResponse}, nil
}

// copyOutput demultiplexes the command's output into stdout and stderr
// until it ends (the command closed it, or the connection was closed).
func (e *execution) copyOutput(stdout, stderr io.Writer) error {
	_, err := stdcopy.StdCopy(stdout, stderr, e.conn.Reader)
	return err
}

// close closes the connection.
func (e *execution) close() { e.conn.Close() }

// running asks the engine once whether the command still runs.
func (e *execution) running(ctx context.Context) (bool, error) {
	ins, err := e.cli.ExecInspect(ctx, e.id, client.ExecInspectOptions{})
	return err == nil && ins.Running, err
}

// exitCode waits, up to within, for the engine to report the command as
// exited, and returns its exit status (-1 when unknown). The output stream
// ends when the process closes it, which is a moment before the engine
// records the exit status; a command that still runs after within, once
// its output ended, means the connection was cut.
func (e *execution) exitCode(ctx context.Context, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	delay := 5 * time.Millisecond
	for {
		ins, err := e.cli.ExecInspect(ctx, e.id, client.ExecInspectOptions{})
		if err != nil {
			return -1, fmt.Errorf("inspect exec: %w", err)
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("output ended but the command still runs after %s: the connection to the engine was cut", within)
		}
		select {
		case <-ctx.Done():
			return -1, context.Cause(ctx)
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// runToEnd runs cmd in the container, discards its output and returns its
// exit status once it exited (or ctx ended).
func runToEnd(ctx context.Context, cli Docker, containerID string, cmd []string) (int, error) {
	e, err := startExec(ctx, cli, containerID, cmd, nil, false)
	if err != nil {
		return -1, err
	}
	defer e.close()
	stop := context.AfterFunc(ctx, e.close)
	defer stop()
	if err := e.copyOutput(io.Discard, io.Discard); err != nil && ctx.Err() == nil {
		return -1, err
	}
	if ctx.Err() != nil {
		return -1, context.Cause(ctx)
	}
	return e.exitCode(ctx, exitWait)
}
