package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/image"
)

// buildSidecarImage builds platback/sidecar from this checkout
// (internal/image, as make image does) under the bench's own repository
// name and labels, so the bench measures the current code and removes the
// image at the end.
func (b *bench) buildSidecarImage(ctx context.Context, root, restic string) (string, error) {
	tag, err := image.Build(ctx, b.cli, image.Options{Repository: "platback-bench/sidecar", Version: b.runID,
		ModuleRoot: root, Restic: restic, Labels: labels()})
	if err != nil {
		return "", err
	}
	b.images = append(b.images, "platback-bench/sidecar:"+b.runID, tag)
	return tag, nil
}

// buildCountingImage is the sidecar image with bench/resticshim in front of
// restic: every restic process it starts, in the sidecar or a worker, is
// logged to /cache/restic-calls.log. Only the untimed counting pass uses it.
func (b *bench) buildCountingImage(ctx context.Context, root, base, restic string) (string, error) {
	shim := filepath.Join(b.tmp, "resticshim")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", shim, "./bench/resticshim")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build bench/resticshim: %v\n%s", err, out)
	}
	files := []struct {
		name string
		src  string
		data []byte
	}{
		{name: "Dockerfile", data: []byte("FROM " + base + "\nCOPY restic restic.real /usr/local/bin/\n")},
		{name: "restic", src: shim},
		{name: "restic.real", src: restic},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if f.src != "" {
			var err error
			if f.data, err = os.ReadFile(f.src); err != nil {
				return "", err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.data))}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	tag := "platback-bench/sidecar-counted:" + b.runID
	res, err := b.cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Labels: labels(),
		Remove: true, ForceRemove: true, Version: build.BuilderV1})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	defer res.Body.Close()
	b.images = append([]string{tag}, b.images...) // removed before its base
	dec := json.NewDecoder(res.Body)
	for {
		var m struct{ Error string }
		if err := dec.Decode(&m); err != nil {
			break
		}
		if m.Error != "" {
			return "", fmt.Errorf("build %s: %s", tag, m.Error)
		}
	}
	return tag, nil
}

// resticCalls reads the counting image's call log in a cache volume.
type resticCalls struct{ path string }

func (b *bench) callLog(ctx context.Context, s *stack) (resticCalls, error) {
	v, err := b.cli.VolumeInspect(ctx, s.Project+"_cache", client.VolumeInspectOptions{})
	if err != nil {
		return resticCalls{}, err
	}
	return resticCalls{path: filepath.Join(v.Volume.Mountpoint, "restic-calls.log")}, nil
}

// lines returns the calls logged so far, as "<where> <command>" (a
// forget's --dry-run kept).
func (c resticCalls) lines() []string {
	b, _ := os.ReadFile(c.path)
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		where := "sidecar"
		if f[1] == "worker" {
			where = "worker"
		}
		call := where + ": " + f[2]
		if f[2] == "cat" && len(f) > 3 {
			call += " " + f[len(f)-1] // cat's object: config, …
		}
		if slices.Contains(f[3:], "--dry-run") {
			call += " --dry-run"
		}
		out = append(out, call)
	}
	return out
}

// summarizeCalls is e.g. "4: sidecar: cat config, forget ×2; worker: backup".
func summarizeCalls(calls []string) string {
	if len(calls) == 0 {
		return "0"
	}
	counts := map[string]int{}
	var order []string
	for _, c := range calls {
		if counts[c] == 0 {
			order = append(order, c)
		}
		counts[c]++
	}
	slices.SortStableFunc(order, func(a, b string) int {
		// The sidecar's calls first, then the workers'.
		return strings.Compare(strings.SplitN(a, ":", 2)[0], strings.SplitN(b, ":", 2)[0])
	})
	var parts []string
	last := ""
	for _, c := range order {
		where, cmd, _ := strings.Cut(c, ": ")
		if counts[c] > 1 {
			cmd += fmt.Sprintf(" ×%d", counts[c])
		}
		if where != last {
			parts = append(parts, where+": "+cmd)
			last = where
		} else {
			parts[len(parts)-1] += ", " + cmd
		}
	}
	return fmt.Sprintf("%d (%s)", len(calls), strings.Join(parts, "; "))
}
