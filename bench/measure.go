package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/worker"
)

// engineWatch follows the engine's events about worker containers (label
// worker.SidecarLabel): it records when the workers of the bench's
// sidecars were created and hands the started ones to the sampler.
type engineWatch struct {
	mu       sync.Mutex
	creates  []time.Time
	projects []string // the bench's compose projects
	cancel   context.CancelFunc
	done     chan struct{}
}

// watchWorkers subscribes to the events; stop ends the watch.
func watchWorkers(ctx context.Context, cli *client.Client, projects []string, sampler *rssSampler) *engineWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &engineWatch{projects: projects, cancel: cancel, done: make(chan struct{})}
	res := cli.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).
		Add("type", "container").Add("event", "create", "start").Add("label", worker.SidecarLabel)})
	go func() {
		defer close(w.done)
		for {
			select {
			case m := <-res.Messages:
				if !w.ours(m.Actor.Attributes[worker.SidecarLabel]) {
					continue
				}
				switch m.Action {
				case "create":
					w.mu.Lock()
					w.creates = append(w.creates, time.Unix(0, m.TimeNano))
					w.mu.Unlock()
				case "start":
					sampler.add(ctx, cli, m.Actor.ID, "worker")
				}
			case <-res.Err:
				return
			}
		}
	}()
	// The subscription is in place once the engine answered a request
	// made after it.
	_, _ = cli.Ping(ctx, client.PingOptions{})
	return w
}

func (w *engineWatch) ours(identity string) bool {
	project, _, _ := strings.Cut(identity, "/")
	for _, p := range w.projects {
		if p == project {
			return true
		}
	}
	return false
}

// createdBetween counts the workers created from start to end.
func (w *engineWatch) createdBetween(start, end time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, t := range w.creates {
		if !t.Before(start) && !t.After(end) {
			n++
		}
	}
	return n
}

func (w *engineWatch) stop() {
	w.cancel()
	<-w.done
}

// rssSampler reads the peak RSS (VmHWM) of every process of the sidecar
// containers and of the workers, ten times a second while a platback run
// is measured, and keeps the highest per kind of process ("sidecar
// run-once", "restic in worker", …). It reads only /proc and the
// containers' cgroup.procs, a few small files per tick.
type rssSampler struct {
	mu     sync.Mutex
	procs  map[string]string  // container id → its cgroup.procs file
	where  map[string]string  // container id → "sidecar" or "worker"
	kinds  map[procKey]string // process → kind, once known
	peaks  map[string]int64   // kind → KB
	active bool
}

// procKey names a process for the sampler: a pid and its name, since a
// process forked by the sidecar is "sidecar run-once" until it execs
// restic.
type procKey struct {
	pid  int
	name string
}

func newRSSSampler() *rssSampler {
	return &rssSampler{procs: map[string]string{}, where: map[string]string{}, kinds: map[procKey]string{}, peaks: map[string]int64{}}
}

// add starts sampling a container's processes (where: "sidecar" or
// "worker").
func (s *rssSampler) add(ctx context.Context, cli *client.Client, id, where string) {
	ins, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || ins.Container.State == nil || ins.Container.State.Pid == 0 {
		return
	}
	file := cgroupProcs(ins.Container.State.Pid)
	if file == "" {
		return
	}
	s.mu.Lock()
	s.procs[id], s.where[id] = file, where
	s.mu.Unlock()
	s.sample() // a short worker may be gone by the next tick
}

// cgroupProcs returns the cgroup.procs file of the process's cgroup (the
// pids controller on cgroup v1, the unified hierarchy on v2).
func cgroupProcs(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	var v1, v2 string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			v2 = filepath.Join("/sys/fs/cgroup", f[2], "cgroup.procs")
		case f[1] == "pids":
			v1 = filepath.Join("/sys/fs/cgroup/pids", f[2], "cgroup.procs")
		}
	}
	for _, p := range []string{v1, v2} {
		if p == "" {
			continue
		}
		if b, err := os.ReadFile(p); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return p
		}
	}
	return ""
}

// run samples every 100 ms while active, until ctx ends.
func (s *rssSampler) run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			active := s.active
			s.mu.Unlock()
			if active {
				s.sample()
			}
		}
	}
}

// measure turns sampling on for the duration of fn.
func (s *rssSampler) measure(fn func() error) error {
	s.mu.Lock()
	s.active = true
	s.mu.Unlock()
	s.sample()
	err := fn()
	s.mu.Lock()
	s.active = false
	s.mu.Unlock()
	return err
}

func (s *rssSampler) sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, file := range s.procs {
		b, err := os.ReadFile(file)
		if err != nil {
			delete(s.procs, id) // the container is gone
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			name, hwm := procStatus(pid)
			if name == "" {
				continue
			}
			key := procKey{pid, name}
			kind, ok := s.kinds[key]
			if !ok {
				kind = processKind(pid, name, s.where[id])
				s.kinds[key] = kind
			}
			s.peaks[kind] = max(s.peaks[kind], hwm)
		}
	}
}

// peak returns the highest VmHWM seen for kind, in KB (0: never seen).
func (s *rssSampler) peak(kind string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peaks[kind]
}

// processKind names a process: "restic in sidecar", "restic in worker",
// "sidecar run-once", "sidecar dump", "sidecar worker", "sidecar run"
// (the daemon).
func processKind(pid int, name, where string) string {
	if name == "restic" {
		return "restic in " + where
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) > 1 {
		return name + " " + args[1]
	}
	return name
}

// procStatus reads a process's name and VmHWM (KB) from /proc.
func procStatus(pid int) (name string, hwmKB int64) {
	return procField(pid, "VmHWM")
}

// procField reads a process's name and one of its KB fields (VmHWM,
// VmRSS) from /proc/<pid>/status.
func procField(pid int, field string) (name string, kb int64) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "", 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "Name":
			name = strings.TrimSpace(v)
		case field:
			kb, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return name, kb
}

// daemonRSS is the VmRSS and VmHWM (KB) of the sidecar container's main
// process, the daemon (`sidecar run`).
func daemonRSS(ctx context.Context, cli *client.Client, id string) (rss, hwm int64, err error) {
	ins, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return 0, 0, err
	}
	if ins.Container.State == nil || ins.Container.State.Pid == 0 {
		return 0, 0, fmt.Errorf("the sidecar %s is not running", id[:12])
	}
	pid := ins.Container.State.Pid
	if _, rss = procField(pid, "VmRSS"); rss == 0 {
		return 0, 0, fmt.Errorf("cannot read /proc/%d/status (the bench must run on the Docker host, in its PID namespace)", pid)
	}
	_, hwm = procField(pid, "VmHWM")
	return rss, hwm, nil
}
