package dockerbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
)

// ContainerSpec describes a container of the helper image.
type ContainerSpec struct {
	Name        string            // default: a unique "pbtest-…" name
	Labels      map[string]string // the owner label is added
	Env         []string
	Hostname    string
	NetworkMode string // "host", "none"…; default: the engine's default
	Mounts      []mount.Mount
	Tmpfs       map[string]string
	Cmd         []string // default: pbhelper sleep
	NoStart     bool     // create only
}

// Run creates (and unless spec.NoStart, starts) a container of the helper
// image and returns its inspect result. t.Cleanup force-removes it with its
// anonymous volumes.
func Run(tb testing.TB, cli *client.Client, spec ContainerSpec) container.InspectResponse {
	tb.Helper()
	return RunAll(tb, cli, spec)[0]
}

// RunAll is Run for several containers, created and started concurrently
// (a few at a time), which is much faster on slow storage drivers. Results
// are in the order of specs.
func RunAll(tb testing.TB, cli *client.Client, specs ...ContainerSpec) []container.InspectResponse {
	tb.Helper()
	img := HelperImage(tb, cli)
	out := make([]container.InspectResponse, len(specs))
	ids := make([]string, len(specs))
	errs := make([]error, len(specs))
	parallel(len(specs), func(i int) {
		ids[i], out[i], errs[i] = run(cli, img, specs[i])
	})
	tb.Cleanup(func() {
		parallel(len(ids), func(i int) {
			if ids[i] != "" {
				Remove(tb, cli, ids[i])
			}
		})
	})
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("dockerbed: %v", err)
	}
	return out
}

// run creates and starts one container; id is set once it exists.
func run(cli *client.Client, img string, spec ContainerSpec) (id string, _ container.InspectResponse, _ error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if spec.Name == "" {
		spec.Name = UniqueName("pbtest-")
	}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: spec.Name,
		Config: &container.Config{
			Image:    img,
			Cmd:      spec.Cmd,
			Env:      spec.Env,
			Hostname: spec.Hostname,
			Labels:   Labels(spec.Labels),
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode(spec.NetworkMode),
			Mounts:      spec.Mounts,
			Tmpfs:       spec.Tmpfs,
		},
	})
	if err != nil {
		return "", container.InspectResponse{}, fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	if !spec.NoStart {
		if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
			return created.ID, container.InspectResponse{}, fmt.Errorf("start container %s: %w", spec.Name, err)
		}
	}
	res, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		return created.ID, container.InspectResponse{}, fmt.Errorf("inspect container %s: %w", spec.Name, err)
	}
	return created.ID, res.Container, nil
}

// parallel runs f(0..n-1), at most 8 at a time, and waits.
func parallel(n int, f func(i int)) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// Remove force-removes a container and its anonymous volumes, logging (not
// failing on) errors: it runs in cleanups.
func Remove(tb testing.TB, cli *client.Client, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !isNotFound(err) {
		tb.Logf("dockerbed: remove container %s: %v", id, err)
	}
}

// Volume creates a named volume (labels plus the owner label) and removes it
// in t.Cleanup. Register it before the containers that mount it, so the
// containers are removed first.
func Volume(tb testing.TB, cli *client.Client, name string, labels map[string]string) volume.Volume {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: Labels(labels)})
	if err != nil {
		tb.Fatalf("dockerbed: create volume %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := cli.VolumeRemove(ctx, name, client.VolumeRemoveOptions{Force: true})
		if err != nil && !isNotFound(err) {
			tb.Logf("dockerbed: remove volume %s: %v", name, err)
		}
	})
	return res.Volume
}

// ExecResult is what a command run in a container produced.
type ExecResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// Output is stdout followed by stderr.
func (r ExecResult) Output() string { return r.Stdout + r.Stderr }

// ExecOptions adjust TryExec.
type ExecOptions struct {
	Env     []string      // extra KEY=VALUE for the command
	Stdin   string        // fed to the command's stdin, then closed
	Timeout time.Duration // default 1 minute
}

// TryExec runs cmd in a running container through the exec API and
// collects its output. Its error means the command could not be run or
// followed to its end (a killed container, the timeout); a non-zero exit
// is ExecResult.ExitCode, not an error. The one exec loop of the test bed.
func TryExec(ctx context.Context, cli *client.Client, id string, o ExecOptions, cmd ...string) (ExecResult, error) {
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	ex, err := cli.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, Env: o.Env,
		AttachStdin: o.Stdin != "", AttachStdout: true, AttachStderr: true})
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec %q in %s: %w", cmd, id, err)
	}
	att, err := cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return ExecResult{}, fmt.Errorf("attach exec %q in %s: %w", cmd, id, err)
	}
	defer att.Close()
	if o.Stdin != "" {
		if _, err := att.Conn.Write([]byte(o.Stdin)); err != nil {
			return ExecResult{}, fmt.Errorf("write the stdin of %q in %s: %w", cmd, id, err)
		}
		if err := att.CloseWrite(); err != nil {
			return ExecResult{}, fmt.Errorf("close the stdin of %q in %s: %w", cmd, id, err)
		}
	}
	var out, errOut bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errOut, att.Reader); err != nil {
		return ExecResult{Stdout: out.String(), Stderr: errOut.String()}, fmt.Errorf("read exec %q in %s: %w", cmd, id, err)
	}
	// The stream ends as the process exits; the exit code may lag a moment.
	for {
		ins, err := cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			return ExecResult{Stdout: out.String(), Stderr: errOut.String()}, fmt.Errorf("inspect exec %q in %s: %w", cmd, id, err)
		}
		if !ins.Running {
			return ExecResult{Stdout: out.String(), Stderr: errOut.String(), ExitCode: ins.ExitCode}, nil
		}
		select {
		case <-ctx.Done():
			return ExecResult{Stdout: out.String(), Stderr: errOut.String()}, fmt.Errorf("exec %q in %s still running after its output ended", cmd, id)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Exec is TryExec for tests: it fails the test when the command could not
// be run or followed to its end.
func Exec(tb testing.TB, cli *client.Client, id string, cmd ...string) ExecResult {
	tb.Helper()
	return ExecWith(tb, cli, id, ExecOptions{}, cmd...)
}

// ExecWith is Exec with options.
func ExecWith(tb testing.TB, cli *client.Client, id string, o ExecOptions, cmd ...string) ExecResult {
	tb.Helper()
	r, err := TryExec(context.Background(), cli, id, o, cmd...)
	if err != nil {
		tb.Fatalf("dockerbed: %v", err)
	}
	return r
}

// Helper returns the command line running pbhelper with ops ("do" mode).
func Helper(ops ...string) []string {
	return append([]string{HelperPath, "do"}, ops...)
}
