package dbimage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/testbed"
)

// workDirPrefix names the temp dirs of builds (recipe files and
// mmdebstrap's TMPDIR, where the root filesystem is assembled).
const workDirPrefix = "platback-dbimage-"

func lockPath() string { return filepath.Join(os.TempDir(), "platback-dbimage.lock") }

// buildBase runs mmdebstrap and streams its tarball into an image import:
// the root filesystem never lands in a file. The image is tagged ref only
// when both sides succeeded.
func buildBase(ctx context.Context, cli *client.Client, ref, hash string, log *slog.Logger) error {
	mm, err := mmdebstrapPath(ctx, log)
	if err != nil {
		return err
	}
	mirrors, err := machineMirrors(suite)
	if err != nil {
		return err
	}
	removeStaleWorkDirs(log)
	work, err := os.MkdirTemp("", workDirPrefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// apt downloads as _apt when it can reach the chroot (else it warns and
	// downloads as root).
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	hooks := filepath.Join(work, "rootfs")
	if err := writeRootfsFiles(hooks); err != nil {
		return err
	}
	tmp := filepath.Join(work, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}

	args := mmdebstrapArgs(hostAptOptions(ctx, log), filepath.Join(hooks, "customize.sh"), mirrors)
	log.Info("dbimage: running mmdebstrap", slog.String("args", strings.Join(args, " ")))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, mm, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	// Its own process group, so cancelling reaches apt and dpkg too;
	// SIGTERM lets mmdebstrap clean up its chroot.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	start := time.Now()
	stderr := newLogTail(60, func(line string) {
		if strings.HasPrefix(line, "I: ") || strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			log.Info("dbimage: mmdebstrap "+line, slog.Duration("at", time.Since(start).Round(time.Second)))
		}
	})
	cmd.Stderr = stderr
	pr, pw := io.Pipe()
	cmd.Stdout = pw

	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mmdebstrap: %w", err)
	}
	// mmErr is set before mmDone closes, and mmDone closes before the pipe
	// does: an import that failed on the pipe finds mmdebstrap finished.
	var mmErr error
	mmDone := make(chan struct{})
	go func() {
		err := cmd.Wait()
		stderr.Flush()
		if err != nil {
			err = fmt.Errorf("mmdebstrap: %w\n%s", err, stderr.Tail())
		}
		mmErr = err
		close(mmDone)
		pw.CloseWithError(err) // a failed build aborts the import's upload
	}()

	id, importErr := importRootfs(ctx, cli, pr, hash)
	mmFirst := false
	if importErr != nil {
		select {
		case <-mmDone:
			mmFirst = true
		default: // the engine failed: stop the build
			cancel()
			pr.CloseWithError(importErr)
		}
	}
	<-mmDone
	if mmErr != nil || importErr != nil {
		if id != "" {
			_, _ = cli.ImageRemove(context.WithoutCancel(ctx), id, client.ImageRemoveOptions{})
		}
		if mmErr != nil && (importErr == nil || mmFirst) {
			return mmErr
		}
		return fmt.Errorf("import: %w", importErr)
	}
	if _, err := cli.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: ref}); err != nil {
		return fmt.Errorf("tag %s: %w", id, err)
	}
	log.Info("dbimage: root filesystem built and imported", slog.String("image", ref),
		slog.Duration("took", time.Since(start).Round(time.Second)))
	return nil
}

// mmdebstrapArgs is the command line (after "mmdebstrap").
//
// --mode=unshare: as root this unshares only the mount, PID, UTS and IPC
// namespaces (not the user namespace), so the chroot gets correct owners and
// its /proc, /sys and /dev mounts live in a namespace that dies with the
// build; with --mode=root (also works here, needs CAP_SYS_ADMIN) a build
// killed by a test timeout would leave those mounts on the host and the temp
// dir undeletable. As a non-root user unshare mode needs /etc/subuid and
// /etc/subgid entries.
func mmdebstrapArgs(aptOpts []string, customizeHook string, mirrors []string) []string {
	args := []string{
		"--mode=unshare",
		"--variant=" + variant,
		"--include=" + strings.Join(packages, ","),
		"--format=tar",
		"--verbose",
	}
	for _, o := range aptOpts {
		args = append(args, "--aptopt="+o)
	}
	for _, o := range dpkgOptions {
		args = append(args, "--dpkgopt="+o)
	}
	args = append(args, "--customize-hook="+customizeHook, "--", suite, "-")
	return append(args, mirrors...)
}

// importRootfs imports a root filesystem tarball and returns the image ID.
func importRootfs(ctx context.Context, cli *client.Client, tarball io.Reader, hash string) (string, error) {
	res, err := cli.ImageImport(ctx, client.ImageImportSource{Source: tarball, SourceName: "-"}, "",
		client.ImageImportOptions{Changes: baseChanges(hash), Message: "platback dbimage " + hash})
	if err != nil {
		return "", err
	}
	defer res.Close()
	id := ""
	dec := json.NewDecoder(res)
	for {
		var msg jsonMessage
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return id, fmt.Errorf("read import output: %w", err)
		}
		if err := msg.err(); err != nil {
			return id, err
		}
		if strings.HasPrefix(msg.Status, "sha256:") {
			id = strings.TrimSpace(msg.Status)
		}
	}
	if id == "" {
		return "", errors.New("the engine named no image")
	}
	return id, nil
}

// buildEngine makes an engine image from the base by committing a container
// that is created (never started) with the engine's settings: an empty
// layer and a few seconds, where the build API would create and commit a
// container per Dockerfile instruction.
func buildEngine(ctx context.Context, cli *client.Client, e Engine, base, ref, hash string) error {
	changes, stopSignal := engineConfig(e, hash)
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image: base,
			// Swept by the test bed after an hour should this process die
			// before removing it; the image gets the value 1 back below.
			Labels:     map[string]string{testbed.Label: "dbimage-build"},
			StopSignal: stopSignal,
		},
	})
	if err != nil {
		return fmt.Errorf("create a container of %s: %w", base, err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_, _ = cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	}()
	_, err = cli.ContainerCommit(ctx, created.ID, client.ContainerCommitOptions{
		Reference: ref,
		Changes:   changes,
		Comment:   "platback dbimage " + string(e),
		NoPause:   true,
	})
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// jsonMessage is a line of the engine's import output.
type jsonMessage struct {
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

func (m jsonMessage) err() error {
	switch {
	case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
		return errors.New(m.ErrorDetail.Message)
	case m.Error != "":
		return errors.New(m.Error)
	}
	return nil
}

// writeRootfsFiles copies the embedded recipe files into dir.
func writeRootfsFiles(dir string) error {
	return fs.WalkDir(rootfsFiles, "rootfs", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, strings.TrimPrefix(p, "rootfs"))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := rootfsFiles.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if path.Ext(p) == ".sh" {
			mode = 0o755
		}
		return os.WriteFile(dst, b, mode)
	})
}

// removeStaleWorkDirs deletes the temp dirs of builds that were killed
// (each holds a half-built root filesystem of up to 1 GB). Only called with
// the build lock held, so no build is using them.
func removeStaleWorkDirs(log *slog.Logger) {
	stale, _ := filepath.Glob(filepath.Join(os.TempDir(), workDirPrefix+"*"))
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			log.Warn("dbimage: remove the temp dir of an interrupted build", slog.String("dir", d), slog.Any("error", err))
		}
	}
}

// mmdebstrapPath finds mmdebstrap, installing it with apt-get (as root)
// when it is missing.
func mmdebstrapPath(ctx context.Context, log *slog.Logger) (string, error) {
	if p, err := exec.LookPath("mmdebstrap"); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("mmdebstrap is not installed and this process is not root: install it (apt-get install mmdebstrap) and run again")
	}
	log.Info("dbimage: installing mmdebstrap with apt-get")
	for _, args := range [][]string{
		{"-o", "DPkg::Lock::Timeout=600", "update"},
		{"-o", "DPkg::Lock::Timeout=600", "install", "-y", "mmdebstrap"},
	} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tailString(string(out), 4000))
		}
	}
	return exec.LookPath("mmdebstrap")
}

// hostAptOptions reads the settings of aptOptionPrefixes from the machine's
// apt configuration.
func hostAptOptions(ctx context.Context, log *slog.Logger) []string {
	out, err := exec.CommandContext(ctx, "apt-config", "dump", "--format", "%f=%v%n").Output()
	if err != nil {
		log.Warn("dbimage: read the apt configuration (apt-config dump)", slog.Any("error", err))
		return nil
	}
	return aptOptions(string(out))
}

// lockFile takes an exclusive flock on path, waiting for it (or ctx).
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("dbimage: lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("dbimage: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("dbimage: waiting for another build (lock %s): %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// logTail is an io.Writer that hands each complete line to onLine and keeps
// the last n lines.
type logTail struct {
	mu      sync.Mutex
	n       int
	lines   []string
	partial []byte
	onLine  func(string)
}

func newLogTail(n int, onLine func(string)) *logTail { return &logTail{n: n, onLine: onLine} }

func (t *logTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.add(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
	}
	return len(p), nil
}

func (t *logTail) add(line string) {
	line = strings.TrimRight(line, "\r")
	t.lines = append(t.lines, line)
	if len(t.lines) > t.n {
		t.lines = t.lines[len(t.lines)-t.n:]
	}
	if t.onLine != nil {
		t.onLine(line)
	}
}

// Flush passes on a last line without a newline.
func (t *logTail) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 {
		t.add(string(t.partial))
		t.partial = nil
	}
}

// Tail returns the kept lines.
func (t *logTail) Tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
