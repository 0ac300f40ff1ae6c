package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/image"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// The sidecar image is built once per test process and removed when the
// tests end.
var sidecarImage struct {
	once sync.Once
	tag  string
	err  error
}

const sidecarTestRepo = "platback-test/sidecar"

// buildSidecarImage builds platback/sidecar from this checkout, once for
// all the tests of this package, tagged platback-test/sidecar:<hash> and
// :latest (as make image tags platback/sidecar).
func buildSidecarImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	sidecarImage.once.Do(func() {
		root, err := testbed.Root()
		if err != nil {
			sidecarImage.err = err
			return
		}
		sidecarImage.tag, sidecarImage.err = image.Build(context.Background(), cli, image.Options{Repository: sidecarTestRepo,
			Version: "e2e", Tags: []string{"latest"}, ModuleRoot: root, Restic: testbed.Tool(t, "restic"), Labels: dockerbed.Labels(nil)})
	})
	require.NoError(t, sidecarImage.err)
	return sidecarImage.tag
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sidecarImage.tag != "" {
		if cli, err := client.New(client.FromEnv); err == nil {
			for _, ref := range []string{sidecarImage.tag, sidecarTestRepo + ":e2e", sidecarTestRepo + ":latest"} {
				// Force removes every tag of the image: the later refs are then gone.
				if _, err := cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
					fmt.Fprintln(os.Stderr, "remove test image:", err)
				}
			}
			cli.Close()
		}
	}
	os.Exit(code)
}
