// Package testbed starts the real components platback's tests run against
// (MinIO, and through sub-packages Vault and Docker resources) on 127.0.0.1,
// and finds the pinned tools that scripts/tools.sh installs.
package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/platback/platback/internal/toolpath"
)

// Label marks every Docker resource a test creates, so a crashed run can be
// swept up by the next one.
const Label = "io.platback.test"

// Root returns the module root: the nearest directory above the working
// directory that holds go.mod (toolpath.Root).
func Root() (string, error) { return toolpath.Root() }

// ToolPath returns the path of a pinned tool (restic, minio, vault, bao):
// $PLATBACK_TOOLS/<name> when that variable is set, else <root>/.tools/bin/<name>
// (toolpath.Pinned).
func ToolPath(name string) (string, error) { return toolpath.Pinned(name) }

// Tool is ToolPath for tests: it fails the test when the tool is missing.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := ToolPath(name)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	port, err := FreeTCPPort()
	if err != nil {
		tb.Fatalf("testbed: free port: %v", err)
	}
	return port
}

// FreeTCPPort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a server started for a test.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *os.File
}

// Launch starts bin with args and extra env, its output going to logPath.
// Unlike StartProcess it needs no test, so TestMain can share one server
// between the tests of a package; the caller must Stop it.
func Launch(bin string, args, env []string, logPath string) (*Process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so Stop reaches any child it forks; killed with
	// the test binary so a crashed run leaves no server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("testbed: start %s: %w", bin, err)
	}
	p := &Process{Cmd: cmd, done: make(chan struct{}), log: logf}
	go func() { p.err = cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

// LogTail returns the last n bytes of the process output.
func (p *Process) LogTail(n int) string {
	out, _ := os.ReadFile(p.log.Name())
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return string(out)
}

// StartProcess starts bin with args and extra env, logging its output to a
// file in a temp dir (shown when the test fails). It is stopped by Stop, which
// t.Cleanup calls too.
func StartProcess(tb testing.TB, bin string, args []string, env []string) *Process {
	tb.Helper()
	p, err := Launch(bin, args, env, filepath.Join(tb.TempDir(), filepath.Base(bin)+".log"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("%s output (tail):\n%s", filepath.Base(bin), p.LogTail(4000))
		}
	})
	return p
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after 10 s.
func (p *Process) Stop() {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// ErrPortTaken is WaitHTTP's answer when the server that answered is not
// the process: another test's server holds the port (a port FreeTCPPort
// gave out can be taken again before the process binds it). Retry with
// another port.
var ErrPortTaken = errors.New("testbed: another process listens on the port")

// ownsPort checks that the process listens on TCP port (a decimal string):
// a listening socket in /proc/net/tcp(6) on that port whose inode is one of
// the process's file descriptors. Without /proc it checks nothing.
func (p *Process) ownsPort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil {
		return nil
	}
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			return nil
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if v, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(v) == n {
				inodes[f[9]] = true
			}
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Cmd.Process.Pid))
	if err != nil {
		return nil
	}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.Cmd.Process.Pid, fd.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok && inodes[strings.TrimSuffix(inode, "]")] {
			return nil
		}
	}
	return fmt.Errorf("%w %s, not %s", ErrPortTaken, port, filepath.Base(p.Cmd.Path))
}

// WaitHTTP polls url until ready(status) is true, the process exits or the
// timeout passes. A ready answer from a server that is not the process is
// ErrPortTaken.
func (p *Process) WaitHTTP(url string, timeout time.Duration, ready func(status int) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if ready(resp.StatusCode) {
				return p.ownsPort(req.URL.Port())
			}
		}
		if p.Exited() {
			return fmt.Errorf("testbed: %s exited before %s was ready: %v", filepath.Base(p.Cmd.Path), url, p.err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testbed: %s not ready after %s", url, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
