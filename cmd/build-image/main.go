// Command build-image builds the platback/sidecar image from this checkout
// and the pinned restic (make image). It pulls nothing. It is a development
// command: run it inside the checkout (go run ./cmd/build-image).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/image"
	"github.com/platback/platback/internal/toolpath"
)

func main() {
	version := flag.String("version", "dev", "version baked into the binary and used as the image tag")
	flag.Parse()
	if err := run(*version); err != nil {
		fmt.Fprintln(os.Stderr, "build-image:", err)
		os.Exit(1)
	}
}

func run(version string) error {
	root, err := toolpath.Root()
	if err != nil {
		return err
	}
	restic, err := toolpath.Pinned("restic")
	if err != nil {
		return err
	}
	cli, err := discover.NewClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	// :latest is what `image: platback/sidecar` in a compose file asks for.
	tag, err := image.Build(context.Background(), cli, image.Options{Version: version, Tags: []string{"latest"}, ModuleRoot: root, Restic: restic})
	if err != nil {
		return err
	}
	ins, err := cli.ImageInspect(context.Background(), tag)
	if err != nil {
		return err
	}
	fmt.Printf("built %s, tagged platback/sidecar:%s and platback/sidecar:latest (%.1f MB)\n", tag, version, float64(ins.Size)/1e6)
	return nil
}
