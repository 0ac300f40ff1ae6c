package backup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/platback/platback/internal/lines"
	"github.com/platback/platback/internal/outbuf"
)

// invocation is one restic run.
type invocation struct {
	command string        // subcommand
	args    []string      // after the subcommand
	timeout time.Duration // deadline for the whole run
	locking bool          // takes a repository lock: add --retry-lock
	json    bool          // add --json
	stdout  io.Writer     // raw stdout (dump); when nil, lines go to onLine
	onLine  func([]byte)  // each stdout line
	dir     string        // working directory
	env     []string      // extra NAME=value for this run
	redact  *redactor     // when not nil, redacts restic's messages instead of the Repo's own
}

// inheritedEnv is what restic may see of the sidecar's own environment:
// nothing that could change its behaviour behind the caller's back.
var inheritedEnv = []string{"PATH", "HOME", "TMPDIR", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}

// run runs restic and returns nil or a *ResticError.
func (r *Repo) run(ctx context.Context, inv invocation) error {
	ctx, cancel := context.WithTimeout(ctx, inv.timeout)
	defer cancel()

	args := r.globalArgs(inv)
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Dir = inv.dir
	cmd.Env = append(r.environ(), inv.env...)
	// Its own process group: SIGINT reaches restic and a --stdin-from-command
	// producer alike, the way Ctrl-C in a terminal would.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = r.opts.KillAfter

	stderr := outbuf.NewTail(16 << 10)
	cmd.Stderr = stderr
	var out *lines.Writer
	if inv.stdout != nil {
		cmd.Stdout = inv.stdout
	} else {
		out = &lines.Writer{Fn: inv.onLine}
		cmd.Stdout = out
	}

	start := time.Now()
	r.log.Debug("restic start", "command", inv.command, "timeout", inv.timeout)
	err := cmd.Run()
	if out != nil {
		out.Flush()
	}
	r.log.Debug("restic done", "command", inv.command, "duration", time.Since(start).Round(time.Millisecond), "err", err)
	if err == nil {
		return nil
	}

	red := r.redact
	if inv.redact != nil {
		red = *inv.redact
	}
	rerr := &ResticError{Command: inv.command, ExitCode: -1, Message: red.String(errorMessage(stderr))}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		why := "cancelled"
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			why = fmt.Sprintf("deadline of %s passed", inv.timeout)
		}
		rerr.cause = fmt.Errorf("%w (%s)", ErrInterrupted, why)
		if errors.As(err, &exitErr) {
			rerr.ExitCode = exitErr.ExitCode()
		}
	case errors.As(err, &exitErr):
		rerr.ExitCode = exitErr.ExitCode()
		rerr.cause = causeOf(rerr.ExitCode)
	default:
		rerr.cause = fmt.Errorf("could not run %s: %w", r.bin, err)
	}
	return rerr
}

func (r *Repo) globalArgs(inv invocation) []string {
	args := []string{inv.command}
	if inv.json {
		args = append(args, "--json")
	}
	if r.opts.CacheDir != "" {
		args = append(args, "--cache-dir", r.opts.CacheDir)
	}
	if r.opts.CACertFile != "" {
		args = append(args, "--cacert", r.opts.CACertFile)
	}
	if r.opts.InsecureTLS {
		args = append(args, "--insecure-tls")
	}
	if inv.locking && r.opts.RetryLock > 0 {
		args = append(args, "--retry-lock", r.opts.RetryLock.String())
	}
	return append(args, inv.args...)
}

// environ builds restic's environment: a few inherited names, the
// credentials and the repository. Credentials travel in the environment,
// never in arguments (which every user of the machine can read).
func (r *Repo) environ() []string {
	var env []string
	for _, name := range append(inheritedEnv, r.opts.PassEnv...) {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	for name, v := range r.opts.Env {
		env = append(env, name+"="+v)
	}
	if r.opts.Owner != "" {
		env = append(env, "USER="+r.opts.Owner)
	}
	// Ask restic for status lines as often as they are logged, no more.
	fps := min(max(1/r.opts.ProgressEvery.Seconds(), 1.0/60), 10)
	return append(env, "RESTIC_REPOSITORY="+r.url, "RESTIC_PROGRESS_FPS="+strconv.FormatFloat(fps, 'f', 4, 64))
}

// errorMessage is restic's own error message: the exit_error JSON when it printed
// one, else the last lines of stderr.
func errorMessage(stderr *outbuf.Tail) string {
	text := string(stderr.Bytes())
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var m struct {
			Type    string `json:"message_type"`
			Message string `json:"message"`
			Error   struct {
				Message string `json:"message"`
			} `json:"error"`
			Item string `json:"item"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Type != "" {
			switch {
			case m.Type == "exit_error":
				line = m.Message
			case m.Error.Message != "" && m.Item != "":
				line = m.Item + ": " + m.Error.Message
			case m.Error.Message != "":
				line = m.Error.Message
			}
		}
		lines = append(lines, line)
	}
	const keep = 12
	if len(lines) > keep {
		lines = lines[len(lines)-keep:]
	}
	return strings.Join(lines, "; ")
}
