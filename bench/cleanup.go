package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// Labels. Everything the bench creates carries benchLabel=1, so
//
//	docker ps -a --filter label=io.platback.bench=1   (and volume ls, network ls, image ls)
//
// shows it. Everything but the cached data volumes also carries the test
// bed's owner label (testbed.Label=<pid>/<start time>): the next bench (or
// test) sweeps what a dead process left (dockerbed.Sweep) and leaves a
// running bench's resources alone. The cached data volumes carry
// cacheLabel=<recipe> instead and stay for the next run; volumes of another
// recipe are removed.
const (
	benchLabel = "io.platback.bench"
	cacheLabel = "io.platback.bench.cache"
)

// projectPrefix starts the bench's compose project names; workers of a
// sidecar that died with its bench are found by it.
const projectPrefix = "pbbench"

// tmpPrefix starts the bench's temporary directories (MinIO's data, the
// compose files, restic's cache); each holds a lock file its bench keeps
// locked while it runs.
const tmpPrefix = "platback-bench-"

// labels are the labels of what the bench creates (not the data caches).
func labels() map[string]string {
	return map[string]string{benchLabel: "1", testbed.Label: dockerbed.Owner()}
}

// sweep removes what benches (and tests) that are no longer running left
// behind, cached data volumes of other recipes, and temporary directories
// no bench holds.
func sweep(ctx context.Context, cli *client.Client, keepRecipes ...string) error {
	errs := []error{dockerbed.Sweep(ctx, cli), sweepWorkers(ctx, cli)}
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", cacheLabel)})
	if err != nil {
		errs = append(errs, err)
	} else {
		for _, v := range vs.Items {
			keep := false
			for _, r := range keepRecipes {
				keep = keep || v.Labels[cacheLabel] == r
			}
			if keep {
				continue
			}
			// In use by a running bench: the engine refuses.
			if _, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
				errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			}
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tmpPrefix+"*"))
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() || time.Since(st.ModTime()) < time.Minute {
			continue // not a directory, or a bench about to lock it
		}
		if unlock, err := tryLock(filepath.Join(d, "lock")); err == nil {
			errs = append(errs, os.RemoveAll(d))
			unlock()
		}
	}
	return errors.Join(errs...)
}

// sweepWorkers removes worker containers of bench sidecars whose compose
// project has no container left (its bench died with a run in progress).
func sweepWorkers(ctx context.Context, cli *client.Client) error {
	ws, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", discover.WorkerLabel)})
	if err != nil {
		return err
	}
	var errs []error
	for _, w := range ws.Items {
		project := w.Labels[discover.WorkerLabel]
		if !strings.HasPrefix(project, projectPrefix) {
			continue
		}
		left, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", discover.ComposeProjectLabel+"="+project)})
		if err != nil || len(left.Items) > 0 {
			continue
		}
		if _, err := cli.ContainerRemove(ctx, w.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove worker %s: %w", w.ID[:12], err))
		}
	}
	return errors.Join(errs...)
}

// cleanAll is -clean: the sweep, then every cached data volume.
func cleanAll(ctx context.Context, progress io.Writer) error {
	cli, err := discover.NewClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	if err := sweep(ctx, cli); err != nil {
		return err
	}
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", cacheLabel)})
	if err != nil {
		return err
	}
	for _, v := range vs.Items {
		fmt.Fprintf(progress, "bench: %s of a running bench, kept\n", v.Name)
	}
	fmt.Fprintln(progress, "bench: clean")
	return nil
}

// lock takes an exclusive lock on path, waiting for it (logging once).
func lock(ctx context.Context, path string, waiting func()) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for logged := false; ; {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if !logged {
			waiting()
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// tryLock takes an exclusive lock on an existing file without waiting.
func tryLock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if os.IsNotExist(err) {
			return func() {}, nil // a directory without a lock: nobody's
		}
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
