package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// plainRestic runs the pinned restic on the host, as a user without
// platback would: credentials in the environment, its own cache directory,
// a stable --host so the second run finds its parent snapshot, --json as
// the sidecar asks for.
type plainRestic struct {
	bin      string
	cacheDir string
	env      []string // credentials
	host     string
}

// resticSummary is the part of restic backup's summary message the bench
// reads.
type resticSummary struct {
	FilesNew            uint64 `json:"files_new"`
	DataAdded           uint64 `json:"data_added"`
	TotalBytesProcessed uint64 `json:"total_bytes_processed"`
}

// resticRun is one restic process: its wall time and peak RSS.
type resticRun struct {
	took    time.Duration
	maxRSS  int64 // KB
	summary resticSummary
}

func (p plainRestic) command(ctx context.Context, repo string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.bin, append([]string{args[0], "--json", "--cache-dir", p.cacheDir}, args[1:]...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.cacheDir, "RESTIC_REPOSITORY=" + repo,
		"RESTIC_PROGRESS_FPS=0.0333"}, p.env...)
	return cmd
}

// run runs restic with args (the subcommand first) on repo.
func (p plainRestic) run(ctx context.Context, repo string, args ...string) (resticRun, error) {
	cmd := p.command(ctx, repo, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Start()
	if err != nil {
		return resticRun{}, err
	}
	peak := watchHWM(cmd.Process.Pid)
	err = cmd.Wait()
	r := resticRun{took: time.Since(start), maxRSS: peak()}
	if err != nil {
		return r, fmt.Errorf("restic %s: %w\n%s", args[0], err, tail(errOut.String(), 2000))
	}
	r.summary = summaryOf(&out)
	return r, nil
}

// backup runs restic backup of dir.
func (p plainRestic) backup(ctx context.Context, repo, dir string) (resticRun, error) {
	return p.run(ctx, repo, "backup", "--host", p.host, "--", dir)
}

// dumpPipe runs `docker exec DB pg_dumpall … | restic backup --stdin`, as
// a user without platback would, and returns the pipeline's wall time and
// restic's peak RSS.
func (p plainRestic) dumpPipe(ctx context.Context, repo, db string) (resticRun, error) {
	dump := exec.CommandContext(ctx, "docker", "exec", "-e", "PGPASSWORD="+pgPassword, db, "pg_dumpall", "--username", "postgres")
	restic := p.command(ctx, repo, "backup", "--host", p.host, "--stdin", "--stdin-filename", "/databases/db/all_databases.sql")
	pr, pw, err := os.Pipe()
	if err != nil {
		return resticRun{}, err
	}
	var out, dumpErr, resticErr bytes.Buffer
	dump.Stdout, dump.Stderr = pw, &dumpErr
	restic.Stdin, restic.Stdout, restic.Stderr = pr, &out, &resticErr
	start := time.Now()
	if err := restic.Start(); err != nil {
		pr.Close()
		pw.Close()
		return resticRun{}, err
	}
	pr.Close()
	peak := watchHWM(restic.Process.Pid)
	derr := dump.Run()
	pw.Close()
	rerr := restic.Wait()
	r := resticRun{took: time.Since(start), maxRSS: peak()}
	if derr != nil {
		return r, fmt.Errorf("pg_dumpall: %w\n%s", derr, tail(dumpErr.String(), 2000))
	}
	if rerr != nil {
		return r, fmt.Errorf("restic backup --stdin: %w\n%s", rerr, tail(resticErr.String(), 2000))
	}
	r.summary = summaryOf(&out)
	return r, nil
}

// summaryOf finds restic's summary message in its --json output.
func summaryOf(r io.Reader) resticSummary {
	var s resticSummary
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"summary"`)) {
			continue
		}
		var m struct {
			MessageType string `json:"message_type"`
			resticSummary
		}
		if json.Unmarshal(line, &m) == nil && m.MessageType == "summary" {
			s = m.resticSummary
		}
	}
	return s
}

// watchHWM reads a running process's VmHWM ten times a second, as the
// sampler does for platback's processes; the returned function stops and
// returns the highest value read, in KB. (getrusage's ru_maxrss would not
// do: a child started with vfork, as os/exec does, reports its parent's
// peak when that is higher.)
func watchHWM(pid int) (stop func() int64) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peak int64
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			_, kb := procStatus(pid)
			peak = max(peak, kb)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() int64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// resticVersion is the first line of `restic version`.
func resticVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "restic (version unknown)"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}
