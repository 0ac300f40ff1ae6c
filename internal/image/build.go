// Package image builds the platback/sidecar image without pulling anything:
// FROM scratch plus the statically linked sidecar and the pinned restic,
// CA certificates and zoneinfo from the build machine. It is used by make
// image (cmd/build-image) and the sidecar's tests; it is not public API.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"
)

//go:embed Dockerfile
var dockerfile []byte

// Options say where the pieces come from.
type Options struct {
	Repository string            // image name; default "platback/sidecar"
	Version    string            // sidecar version; default "dev"
	ModuleRoot string            // the platback module, to build cmd/sidecar
	Restic     string            // the pinned restic binary
	CACerts    string            // default /etc/ssl/certs/ca-certificates.crt
	Zoneinfo   string            // default /usr/share/zoneinfo
	Labels     map[string]string // extra image labels (tests mark theirs)
	// Tags are more tags of the same repository, e.g. "latest" (what
	// `image: platback/sidecar` in a compose file means).
	Tags []string
}

// Build compiles the sidecar, assembles the context and builds the image,
// tagged <repository>:<content hash>, <repository>:<version> and
// <repository>:<tag> for each of Options.Tags. It returns the hash tag; an
// image with that tag already present is not rebuilt, only tagged.
func Build(ctx context.Context, cli *client.Client, o Options) (string, error) {
	if o.Repository == "" {
		o.Repository = "platback/sidecar"
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.CACerts == "" {
		o.CACerts = "/etc/ssl/certs/ca-certificates.crt"
	}
	if o.Zoneinfo == "" {
		o.Zoneinfo = "/usr/share/zoneinfo"
	}
	tmp, err := os.MkdirTemp("", "platback-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	sidecar := filepath.Join(tmp, "sidecar")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+o.Version, "-o", sidecar, "./cmd/sidecar")
	build.Dir = o.ModuleRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the sidecar binary: %v\n%s", err, out)
	}

	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	h := sha256.New()
	add := func(name string, mode int64, data []byte) error {
		fmt.Fprintf(h, "%s %o %x\n", name, mode, sha256.Sum256(data))
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	addFile := func(name, src string, mode int64) error {
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
		return add(name, mode, data)
	}
	steps := []func() error{
		func() error { return add("Dockerfile", 0o644, dockerfile) },
		func() error { return addFile("rootfs/usr/local/bin/sidecar", sidecar, 0o755) },
		func() error { return addFile("rootfs/usr/local/bin/restic", o.Restic, 0o755) },
		func() error { return addFile("rootfs/etc/ssl/certs/ca-certificates.crt", o.CACerts, 0o644) },
		func() error {
			return tw.WriteHeader(&tar.Header{Name: "rootfs/tmp/", Typeflag: tar.TypeDir, Mode: 0o1777})
		},
		func() error {
			return tw.WriteHeader(&tar.Header{Name: "rootfs/cache/", Typeflag: tar.TypeDir, Mode: 0o700})
		},
		func() error { return addTree(add, o.Zoneinfo, "rootfs/usr/share/zoneinfo") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	labelJSON, _ := json.Marshal(o.Labels)
	h.Write(labelJSON)
	hashTag := o.Repository + ":" + hex.EncodeToString(h.Sum(nil))[:16]
	if _, err := cli.ImageInspect(ctx, hashTag); err != nil {
		resp, err := cli.ImageBuild(ctx, &ctxTar, client.ImageBuildOptions{
			Tags: []string{hashTag}, Labels: o.Labels, Remove: true, ForceRemove: true,
		})
		if err != nil {
			return "", fmt.Errorf("build image: %w", err)
		}
		defer resp.Body.Close()
		if err := BuildError(resp.Body); err != nil {
			return "", err
		}
	}
	for _, tag := range append([]string{o.Version}, o.Tags...) {
		if _, err := cli.ImageTag(ctx, client.ImageTagOptions{Source: hashTag, Target: o.Repository + ":" + tag}); err != nil {
			return "", fmt.Errorf("tag %s as %s:%s: %w", hashTag, o.Repository, tag, err)
		}
	}
	return hashTag, nil
}

// addTree adds the regular files under dir (symlinks resolved) as prefix/….
func addTree(add func(string, int64, []byte) error, dir, prefix string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasSuffix(rel, ".tab") || strings.HasPrefix(rel, "right/") || strings.HasPrefix(rel, "posix/") {
			// Not needed by Go's time package; keeps the image small.
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return add(prefix+"/"+filepath.ToSlash(rel), 0o644, data)
	})
}

// BuildError drains the JSON message stream of an image build (the body of
// the Engine's ImageBuild answer) and returns the error it carries, with the
// last lines of the build's log; nil when the build succeeded.
func BuildError(r io.Reader) error {
	dec := json.NewDecoder(r)
	var tail []string
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read build output: %w", err)
		}
		if m.Stream != "" {
			tail = append(tail, strings.TrimSpace(m.Stream))
			if len(tail) > 10 {
				tail = tail[1:]
			}
		}
		if m.Error != "" {
			return fmt.Errorf("image build failed: %s\n%s", m.Error, strings.Join(tail, "\n"))
		}
	}
}
