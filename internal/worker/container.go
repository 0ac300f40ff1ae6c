package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/ids"
	"github.com/platback/platback/internal/lines"
)

// Spec is the container a job runs in.
type Spec struct {
	Image      string        // the sidecar's own image
	Entrypoint []string      // default /usr/local/bin/sidecar worker
	Network    string        // e.g. "container:<sidecar id>" or "host"
	Mounts     []mount.Mount // the targets' volumes, the restic cache
	Labels     map[string]string
	StopGrace  time.Duration // after cancellation, before SIGKILL; default 30s
	Logger     *slog.Logger
}

// Docker is the part of the Docker Engine API a worker needs;
// *client.Client implements it.
type Docker interface {
	ContainerCreate(ctx context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerAttach(ctx context.Context, containerID string, options client.ContainerAttachOptions) (client.ContainerAttachResult, error)
	ContainerStart(ctx context.Context, containerID string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerWait(ctx context.Context, containerID string, options client.ContainerWaitOptions) client.ContainerWaitResult
	ContainerStop(ctx context.Context, containerID string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerRemove(ctx context.Context, containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
}

// DefaultEntrypoint runs the worker in the platback/sidecar image.
var DefaultEntrypoint = []string{"/usr/local/bin/sidecar", "worker"}

// maxResponse bounds what is read from a worker's stdout, per Response.
const maxResponse = 4 << 20

// Run starts a worker container, hands it req over stdin, reads its
// Responses and removes the container, also when ctx is cancelled (the
// worker is stopped with SIGTERM, which interrupts restic cleanly). The
// worker prints a Response per job as soon as it is done (for a backup one
// per Request.Backups entry, in order; for a restore one): Run hands each
// to report (which may be nil) as it arrives, and returns them all. When
// the worker ends before it printed them all, Run returns those it printed
// and an error: it wraps ErrNoResult when the worker exited or was killed
// (restic locks it held may be left), ctx's error when ctx ended.
func Run(ctx context.Context, cli Docker, spec Spec, req Request, report func(Response)) ([]Response, error) {
	if spec.Logger == nil {
		spec.Logger = slog.Default()
	}
	if len(spec.Entrypoint) == 0 {
		spec.Entrypoint = DefaultEntrypoint
	}
	if spec.StopGrace <= 0 {
		spec.StopGrace = 30 * time.Second
	}
	labels := maps.Clone(spec.Labels)
	if req.Owner != "" {
		if labels == nil {
			labels = map[string]string{}
		}
		labels[OwnerLabel] = req.Owner
	}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image: spec.Image, Entrypoint: spec.Entrypoint, Labels: labels,
			OpenStdin: true, StdinOnce: true, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		},
		HostConfig: &container.HostConfig{Mounts: spec.Mounts, NetworkMode: container.NetworkMode(spec.Network)},
	})
	if err != nil {
		return nil, fmt.Errorf("create worker container from image %s: %w", spec.Image, err)
	}
	id := created.ID
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cli.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			spec.Logger.Warn("could not remove worker container", "container", ids.Container(id), "err", err)
		}
	}()

	att, err := cli.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, fmt.Errorf("attach to worker %s: %w", ids.Container(id), err)
	}
	defer att.Close()
	wait := cli.ContainerWait(context.WithoutCancel(ctx), id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", ids.Container(id), err)
	}

	// The job, credentials included, goes over stdin only. Stdin stays open
	// until the worker is done: if this process dies, the engine closes it
	// and the worker stops restic cleanly.
	if err := json.NewEncoder(att.Conn).Encode(req); err != nil {
		return nil, fmt.Errorf("send the job to worker %s: %w", ids.Container(id), err)
	}

	want := req.responses()
	out := readOutput(att.Reader, spec.Logger.With("worker", ids.Container(id)), max(want, 1)*maxResponse, report)

	var code int64
	select {
	case res := <-wait.Result:
		code = res.StatusCode
	case err := <-wait.Error:
		resps, _ := out.finish(outputGrace, att.Close)
		return resps, fmt.Errorf("wait for worker %s: %w", ids.Container(id), err)
	case <-ctx.Done():
		grace := int(spec.StopGrace / time.Second)
		sctx, cancel := context.WithTimeout(context.Background(), spec.StopGrace+30*time.Second)
		_, _ = cli.ContainerStop(sctx, id, client.ContainerStopOptions{Timeout: &grace})
		cancel()
		resps, _ := out.finish(outputGrace, att.Close)
		return resps, fmt.Errorf("worker %s stopped: %w", ids.Container(id), ctx.Err())
	}
	resps, tail := out.finish(outputGrace, att.Close)
	if len(resps) >= want {
		return resps, nil
	}
	how := fmt.Sprintf("exited with status %d", code)
	if code == 137 {
		how = "was killed with SIGKILL (status 137)"
	}
	if tail == "" {
		tail = "it printed nothing"
	}
	return resps, fmt.Errorf("%w: worker %s %s before it reported a result; its last log lines: %s", ErrNoResult, ids.Container(id), how, tail)
}

// ErrNoResult: the worker ended without a result (it was killed, or crashed);
// restic locks it held may be left behind.
var ErrNoResult = errors.New("worker ended without a result")

// outputGrace is how long the worker's output may go on after it exited.
var outputGrace = 10 * time.Second

// output demultiplexes a worker's attached stream: stdout, a Response per
// line, handed to report as each arrives; stderr (its JSON logs) through
// the sidecar's logger.
type output struct {
	mu     sync.Mutex
	resps  []Response
	report func(Response)
	stdout *lines.Writer
	logs   *logRelay
	lines  *lines.Writer
	done   chan struct{}
}

// readOutput reads r until it ends, at most limit bytes of stdout.
func readOutput(r io.Reader, log *slog.Logger, limit int, report func(Response)) *output {
	o := &output{logs: &logRelay{log: log}, report: report, done: make(chan struct{})}
	o.lines = o.logs.writer()
	o.stdout = &lines.Writer{Fn: o.response}
	go func() {
		defer close(o.done)
		_, _ = stdcopy.StdCopy(&limitWriter{w: o.stdout, n: limit}, o.lines, r)
	}()
	return o
}

// response takes one stdout line.
func (o *output) response(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		o.logs.line("worker printed a line that is not a result: " + string(line[:min(len(line), 200)]))
		return
	}
	o.mu.Lock()
	o.resps = append(o.resps, resp)
	o.mu.Unlock()
	if o.report != nil {
		o.report(resp)
	}
}

// finish waits up to grace for the stream to end; past it, it closes the
// stream and waits for the reader to stop, so nothing writes the buffers
// while they are read. It returns the Responses and the last log lines.
func (o *output) finish(grace time.Duration, closeStream func()) ([]Response, string) {
	select {
	case <-o.done:
	case <-time.After(grace):
		closeStream()
		<-o.done
	}
	o.stdout.Flush()
	o.lines.Flush()
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.resps), o.logs.tail()
}

// logRelay re-logs the worker's JSON log lines through the sidecar's logger.
type logRelay struct {
	log   *slog.Logger
	lines []string
}

func (l *logRelay) writer() *lines.Writer {
	return &lines.Writer{Fn: func(b []byte) { l.line(string(b)) }}
}

func (l *logRelay) line(s string) {
	if strings.TrimSpace(s) == "" {
		return
	}
	l.lines = append(l.lines, s)
	if len(l.lines) > 20 {
		l.lines = l.lines[1:]
	}
	var m map[string]any
	if json.Unmarshal([]byte(s), &m) != nil {
		l.log.Info(s)
		return
	}
	var level slog.Level
	if lv, ok := m["level"].(string); ok {
		_ = level.UnmarshalText([]byte(lv))
	}
	msg, _ := m["msg"].(string)
	attrs := make([]any, 0, 2*len(m))
	for k, v := range m {
		if k != "level" && k != "msg" && k != "time" {
			attrs = append(attrs, k, v)
		}
	}
	l.log.Log(context.Background(), level, msg, attrs...)
}

func (l *logRelay) tail() string { return strings.Join(l.lines, "\n") }

// limitWriter keeps at most n bytes.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	q := p
	if len(q) > l.n {
		q = q[:l.n]
	}
	l.n -= len(q)
	_, err := l.w.Write(q)
	return len(p), err
}
