package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/platback/platback/internal/runner"
)

// LastRunName is the file in the cache directory that holds the result of
// the last run, whoever started it (the daemon's schedule or `sidecar
// run-once`): the daemon applies a newer one to its metrics and health.
const LastRunName = "platback-last-run.json"

// LastRun is the content of LastRunName. A Result holds no secret: paths,
// counts, snapshot ids and error texts, which every package builds without
// credentials.
type LastRun struct {
	Result runner.Result `json:"result"`
	OK     bool          `json:"ok"`
	// LastSuccess is the start of the last successful run: this one, or
	// one before it (carried over from the previous file).
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastCopySuccess is the end of the last run whose copy to the second
	// repository succeeded: this one, or one before it.
	LastCopySuccess time.Time `json:"last_copy_success,omitzero"`
	// By is who ran it: "daemon" or "run-once".
	By string `json:"by"`
	// Delivery is what the run's notifications and pings sent and failed
	// to send: the daemon counts those of a run-once in its metrics.
	Delivery Delivery `json:"delivery,omitzero"`
}

// SaveLastRun writes res as the last run, atomically (a temporary file
// renamed over the old one) and durably (both synced, then the directory).
// Runs hold the run lock, so two writers never race.
func SaveLastRun(dir string, res runner.Result, by string) error {
	return saveLastRun(dir, res, by, Delivery{})
}

func saveLastRun(dir string, res runner.Result, by string, sent Delivery) error {
	lr := LastRun{Result: res, OK: res.OK(), By: by, Delivery: sent}
	prev, found, _ := LoadLastRun(dir)
	if lr.OK {
		lr.LastSuccess = res.Start
	} else if found {
		lr.LastSuccess = prev.LastSuccess
	}
	if res.Copy != nil && res.Copy.OK() {
		lr.LastCopySuccess = res.Start.Add(res.Duration)
	} else if found {
		lr.LastCopySuccess = prev.LastCopySuccess
	}
	return writeJSON(dir, LastRunName, lr)
}

// readJSON reads the file name in dir written by writeJSON into v; found
// is false, with no error, when there is no such file yet.
func readJSON(dir, name string, v any) (found bool, err error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
}

// writeJSON writes v as the file name in dir, atomically (a temporary file
// renamed over the old one) and durably (both synced, then the directory).
func writeJSON(dir, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename: nothing left to remove
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LoadLastRun reads the last run; ok is false when there is none yet. The
// errors of the result are restored from their texts, so Result.OK works.
func LoadLastRun(dir string) (lr LastRun, ok bool, err error) {
	if found, err := readJSON(dir, LastRunName, &lr); !found || err != nil {
		return lr, false, err
	}
	r := &lr.Result
	if r.Error != "" {
		r.Err = errors.New(r.Error)
	}
	for i := range r.Targets {
		if t := &r.Targets[i]; t.Error != "" {
			t.Err = errors.New(t.Error)
		}
	}
	if r.Start.IsZero() {
		return lr, false, fmt.Errorf("%s: no run start time", filepath.Join(dir, LastRunName))
	}
	return lr, true, nil
}
