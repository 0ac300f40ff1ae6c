// Package stopstate remembers which containers the sidecar stopped for a
// backup, in a small file on the cache volume, so that they are restarted
// even when the sidecar is killed in the middle of a backup: the next start
// restarts whatever the file still lists.
package stopstate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Container is a stopped container.
type Container struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	StoppedAt time.Time `json:"stopped_at"`
}

// File is the state file.
type File struct {
	path string
	mu   sync.Mutex
}

// Open returns the state file at path (it need not exist yet).
func Open(path string) *File { return &File{path: path} }

// List returns the containers the file lists.
func (f *File) List() ([]Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.read()
}

func (f *File) read() ([]Container, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		// Only a crash between creating and filling the file leaves it
		// empty (write syncs before it renames): nothing was stopped yet.
		return nil, nil
	}
	var cs []Container
	if err := json.Unmarshal(data, &cs); err != nil {
		return nil, fmt.Errorf("state file %s is damaged (%v): restart the containers it lists by hand, then delete it", f.path, err)
	}
	return cs, nil
}

// write replaces the file atomically and durably: it writes and syncs a
// temp file, renames it over the old one and syncs the directory, so after
// a power loss the file holds the old list or the new one, never nothing.
func (f *File) write(cs []Container) error {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return err
	}
	if len(cs) == 0 {
		err := os.Remove(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	data, _ := json.MarshalIndent(cs, "", "  ")
	tmp := f.path + ".tmp"
	if err := writeSynced(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(f.path))
}

func writeSynced(path string, data []byte) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = file.Write(data)
	if err == nil {
		err = file.Sync()
	}
	return errors.Join(err, file.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Add records a container before it is stopped.
func (f *File) Add(c Container) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs, err := f.read()
	if err != nil {
		return err
	}
	for _, old := range cs {
		if old.ID == c.ID {
			return nil
		}
	}
	return f.write(append(cs, c))
}

// Remove forgets a container once it runs again.
func (f *File) Remove(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs, err := f.read()
	if err != nil {
		return err
	}
	kept := cs[:0]
	for _, c := range cs {
		if c.ID != id {
			kept = append(kept, c)
		}
	}
	return f.write(kept)
}

// Starter starts containers; *client.Client implements it.
type Starter interface {
	ContainerStart(ctx context.Context, containerID string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
}

// RestartAll starts every container the file lists and forgets those that
// started (or no longer exist). It returns the ones it restarted and an
// error naming every container it could not start.
func (f *File) RestartAll(ctx context.Context, cli Starter) ([]Container, error) {
	cs, err := f.List()
	if err != nil {
		return nil, err
	}
	var restarted []Container
	var errs []error
	for _, c := range cs {
		_, err := cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{})
		switch {
		case err == nil:
			restarted = append(restarted, c)
		case isNotFound(err):
			// Removed meanwhile (e.g. compose down): nothing to restart.
		default:
			errs = append(errs, fmt.Errorf("restart %s (%s): %w", c.Name, c.ID[:min(12, len(c.ID))], err))
			continue
		}
		if err := f.Remove(c.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return restarted, errors.Join(errs...)
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }
