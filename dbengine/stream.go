package dbengine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/ids"
	"github.com/platback/platback/internal/outbuf"
)

// StderrTailSize is how many bytes of a streamed command's stderr are kept
// (the last ones).
const StderrTailSize = 4 << 10

// exitWait bounds how long ExecStream waits, after the output ended, for the
// engine to report the command as exited.
const exitWait = 10 * time.Second

// WaitFunc reports how a command run by ExecStream ended. Call it after
// reading stdout to the end (or closing it): it blocks until the output
// stream is done. exitCode is -1 when unknown. err is nil only when the
// command exited 0 and all its output was delivered; it is an *ExitError
// for a non-zero exit.
type WaitFunc func() (exitCode int, stderrTail string, err error)

// ExitError is a streamed command's non-zero exit.
type ExitError struct {
	Container  string
	Cmd        []string
	Code       int
	StderrTail string
	// StartError is the container runtime's reason when the command could
	// not be started (status 126 or 127, which the engine reports on
	// stdout).
	StartError string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("dbengine: %q in container %s exited with status %d", strings.Join(e.Cmd, " "), ids.Container(e.Container), e.Code)
	if tail := strings.TrimSpace(e.StderrTail); tail != "" {
		msg += ": " + tail
	} else if e.StartError != "" {
		msg += ": " + e.StartError
	}
	return msg
}

// startErrorSize is how much of stdout is kept to explain a command that
// could not start.
const startErrorSize = 512

// ExecStream runs cmd in a running container through the exec API and
// returns its stdout as a stream, demultiplexed from stderr, in constant
// memory whatever the size. The last StderrTailSize bytes of stderr are
// kept for WaitFunc. env adds KEY=VALUE variables to the command's
// environment (as given: the caller decides what is secret).
//
// The stream ends with io.EOF only when the command exited 0; a non-zero
// exit ends it with an *ExitError, so a consumer that stops at the first
// error (restic reading a dump from stdin) never takes a failed or
// truncated dump for a complete one. Cancelling ctx, or closing the stream
// early, closes the connection and ends the stream at once.
//
// The Engine API cannot kill an exec'd process: left alone it runs on in the
// container until it ends by itself, its output discarded (seen on Docker
// 20.10). So when the container has /bin/sh, cmd runs through it
// (`sh -c 'echo pid >&2; exec cmd'`), and a command that still runs when the
// stream is given up is stopped with its children: SIGTERM, then SIGKILL
// after StopGrace. Without /bin/sh the command runs as it is and cannot be
// stopped.
func ExecStream(ctx context.Context, cli Docker, containerID string, cmd, env []string) (io.ReadCloser, WaitFunc, error) {
	stoppable := hasShell(ctx, cli, containerID)
	run := cmd
	if stoppable {
		run = append([]string{"/bin/sh", "-c", `echo "` + pidMarker + `$$" >&2; exec "$0" "$@"`}, cmd...)
	}
	ex, err := startExec(ctx, cli, containerID, run, env, false)
	if err != nil {
		return nil, nil, fmt.Errorf("dbengine: %q: %w", cmd, err)
	}

	pr, pw := io.Pipe()
	tail := outbuf.NewTail(StderrTailSize)
	head := outbuf.NewHead(startErrorSize)
	pid := &pidWriter{next: tail, skip: !stoppable}
	s := &execStream{pr: pr, closeConn: sync.OnceFunc(ex.close), done: make(chan struct{}), code: -1}
	stopOnCancel := context.AfterFunc(ctx, s.closeConn)

	go func() {
		defer close(s.done)
		err := ex.copyOutput(io.MultiWriter(head, pw), pid)
		stopOnCancel()
		s.closeConn()
		if ctx.Err() != nil || s.closed.Load() || err != nil {
			// Given up before the command ended: stop it, or it runs on.
			stopExec(cli, containerID, ex, pid.value())
		}
		switch {
		case ctx.Err() != nil:
			err = fmt.Errorf("dbengine: %q in container %s: %w", cmd, ids.Container(containerID), context.Cause(ctx))
		case s.closed.Load() || errors.Is(err, io.ErrClosedPipe):
			err = fmt.Errorf("dbengine: %q in container %s: output closed by the reader before the end", cmd, ids.Container(containerID))
		case err != nil:
			err = fmt.Errorf("dbengine: read output of %q in container %s: %w", cmd, ids.Container(containerID), err)
		default:
			s.code, err = ex.exitCode(ctx, exitWait)
			if err == nil && s.code != 0 {
				ee := &ExitError{Container: containerID, Cmd: cmd, Code: s.code, StderrTail: tail.String()}
				if (s.code == 126 || s.code == 127) && strings.Contains(head.String(), "exec failed") {
					ee.StartError = strings.TrimSpace(head.String())
				}
				err = ee
			}
			if err != nil && s.code == 0 {
				err = fmt.Errorf("dbengine: %q in container %s: %w", cmd, ids.Container(containerID), err)
			}
		}
		s.err = err
		pw.CloseWithError(err) // nil: the reader gets io.EOF
	}()

	wait := func() (int, string, error) {
		<-s.done
		return s.code, tail.String(), s.err
	}
	return s, wait, nil
}

// StopGrace is how long a command ExecStream gave up on gets between
// SIGTERM and SIGKILL.
var StopGrace = 5 * time.Second

// pidMarker starts the stderr line in which the /bin/sh wrapper of
// ExecStream reports the command's process id.
const pidMarker = "platback-exec-pid="

// hasShell reports whether the container has /bin/sh.
func hasShell(ctx context.Context, cli Docker, containerID string) bool {
	_, err := cli.ContainerStatPath(ctx, containerID, client.ContainerStatPathOptions{Path: "/bin/sh"})
	return err == nil
}

// stopScript stops process $1 and its descendants in a container, with
// nothing but sh builtins (the image may have no ps, pkill or grep): it
// collects the tree from /proc, sends SIGTERM, waits up to $2 seconds, then
// sends SIGKILL to what is left.
const stopScript = `tree() { echo "$1"; for s in /proc/[0-9]*/stat; do read -r p c st pp rest < "$s" 2>/dev/null || continue; [ "$pp" = "$1" ] && tree "$p"; done; }
all=$(tree "$1"); kill -TERM $all 2>/dev/null
i=0; while [ $i -lt "$2" ] && kill -0 "$1" 2>/dev/null; do sleep 1; i=$((i+1)); done
kill -KILL $all 2>/dev/null; true`

// stopExec stops an exec'd command that still runs, through the container's
// /bin/sh (pid 0: it did not run through the wrapper, nothing to do).
func stopExec(cli Docker, containerID string, ex *execution, pid int) {
	if pid <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), StopGrace+30*time.Second)
	defer cancel()
	if running, err := ex.running(ctx); err != nil || !running {
		return
	}
	grace := strconv.Itoa(int(max(StopGrace/time.Second, 1)))
	_, _ = runToEnd(ctx, cli, containerID, []string{"/bin/sh", "-c", stopScript, "stop", strconv.Itoa(pid), grace})
}

// pidWriter passes stderr on, taking out the wrapper's first line with the
// command's process id.
type pidWriter struct {
	mu   sync.Mutex
	next io.Writer
	skip bool   // no wrapper: pass everything on
	line []byte // the first line, until it is complete
	pid  int
}

func (w *pidWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.skip {
		return w.next.Write(p)
	}
	n := len(p)
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		w.line = append(w.line, p...)
		return n, nil
	}
	w.line = append(w.line, p[:i]...)
	w.skip = true
	if v, ok := strings.CutPrefix(string(w.line), pidMarker); ok {
		w.pid, _ = strconv.Atoi(v)
	} else if _, err := w.next.Write(append(w.line, '\n')); err != nil {
		return n, err
	}
	_, err := w.next.Write(p[i+1:])
	return n, err
}

func (w *pidWriter) value() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pid
}

// execStream is the stdout of an ExecStream command.
type execStream struct {
	closed    atomic.Bool
	pr        *io.PipeReader
	closeConn func()
	done      chan struct{}
	code      int
	err       error
}

func (s *execStream) Read(p []byte) (int, error) { return s.pr.Read(p) }

// Close stops reading: the connection is closed and Wait reports that the
// output was not read to the end (unless it already was).
func (s *execStream) Close() error {
	s.closed.Store(true)
	s.pr.Close()
	s.closeConn()
	return nil
}
