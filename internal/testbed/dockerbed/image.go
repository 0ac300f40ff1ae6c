package dockerbed

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/image"
	"github.com/platback/platback/internal/testbed"
)

const (
	// HelperRepo is the repository name of the helper image; its tag is a
	// hash of the image content, so an unchanged helper is built once.
	HelperRepo = "platback-test/pbhelper"
	// HelperPath is where the helper program sits in the image.
	HelperPath = "/bin/pbhelper"
	// imageLabelValue marks the cached helper image (not an owner: Sweep
	// handles images by tag instead).
	imageLabelValue = "dockerbed-image"
)

const dockerfile = `FROM scratch
COPY pbhelper ` + HelperPath + `
LABEL ` + testbed.Label + `=` + imageLabelValue + `
CMD ["` + HelperPath + `", "sleep"]
`

var (
	imageOnce sync.Once
	imageTag  string
	imageErr  error

	// helperBuild compiles pbhelper once per process and names its image.
	helperBuild = sync.OnceValues(func() (helper, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bin, err := compileHelper(ctx)
		if err != nil {
			return helper{}, err
		}
		sum := sha256.New()
		sum.Write([]byte(dockerfile))
		sum.Write(bin)
		return helper{bin: bin, tag: HelperRepo + ":" + hex.EncodeToString(sum.Sum(nil))[:16]}, nil
	})
)

type helper struct {
	bin []byte
	tag string
}

// HelperImage returns the tag of the helper image, building it on first use
// in this process: pbhelper compiled with CGO_ENABLED=0, copied into a FROM
// scratch image through the engine's build API. The image is kept between
// runs (tagged by a hash of its content, labelled testbed.Label); Sweep
// removes older tags.
func HelperImage(tb testing.TB, cli *client.Client) string {
	tb.Helper()
	imageOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		imageTag, imageErr = buildHelperImage(ctx, cli)
	})
	if imageErr != nil {
		tb.Fatalf("dockerbed: helper image: %v", imageErr)
	}
	return imageTag
}

func buildHelperImage(ctx context.Context, cli *client.Client) (string, error) {
	h, err := helperBuild()
	if err != nil {
		return "", err
	}
	bin, tag := h.bin, h.tag

	// Test packages run in parallel: build under a machine-wide lock so
	// only one process builds a given tag.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "platback-dockerbed-image.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		return tag, nil
	}

	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"pbhelper", 0o755, bin}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}

	res, err := cli.ImageBuild(ctx, &ctxTar, client.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	defer res.Body.Close()
	if err := image.BuildError(res.Body); err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	return tag, nil
}

// compileHelper builds ./pbhelper as a static binary and returns its bytes.
// -trimpath and -buildvcs=false keep the bytes, and so the image tag, the
// same from one run and one commit to the next.
func compileHelper(ctx context.Context) ([]byte, error) {
	root, err := testbed.Root()
	if err != nil {
		return nil, err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir, err := os.MkdirTemp("", "pbhelper-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "pbhelper")
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w",
		"-o", out, "./internal/testbed/dockerbed/pbhelper")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("compile pbhelper: %v\n%s", err, msg)
	}
	return os.ReadFile(out)
}

// lockFile takes an exclusive flock on path, waiting for it.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// sweepImages removes helper images whose tag is not the current one and
// dangling images built from the helper Dockerfile. An image still used by
// a container of a running test is kept (the engine refuses to remove it).
func sweepImages(ctx context.Context, cli *client.Client) error {
	res, err := cli.ImageList(ctx, client.ImageListOptions{
		Filters: make(client.Filters).Add("label", testbed.Label+"="+imageLabelValue),
	})
	if err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	h, err := helperBuild()
	if err != nil {
		return err
	}
	var errs []error
	for _, img := range res.Items {
		refs := []string{}
		for _, t := range img.RepoTags {
			if t != h.tag && t != "<none>:<none>" {
				refs = append(refs, t)
			}
		}
		if len(img.RepoTags) == 0 || (len(img.RepoTags) == 1 && img.RepoTags[0] == "<none>:<none>") {
			refs = append(refs, img.ID) // dangling: left by a build that raced another
		}
		for _, ref := range refs {
			_, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
			// A conflict means a container of a running test still uses it.
			if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
				errs = append(errs, fmt.Errorf("remove image %s: %w", ref, err))
			}
		}
	}
	return errors.Join(errs...)
}
