package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/image"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/toolpath"
)

// demoLabel marks everything the demo creates, so a crashed demo can be
// cleaned up: docker ps -a / volume ls / network ls / image ls --filter
// label=io.platback.demo=1.
const demoLabel = "io.platback.demo"

// Images the demo runs. The platback/sidecar image is the product (make
// image builds the same) and stays; the others are removed at the end.
const (
	minioImage    = "platback-demo/minio:latest"
	vaultImage    = "platback-demo/vault:latest"
	postgresImage = "platback-demo/postgres:15"
	standinImage  = "platback-demo/mattermost-standin:latest"
)

// buildImages builds the sidecar image from this checkout, MinIO and Vault
// images from the pinned static binaries in .tools/bin (FROM scratch, as the
// sidecar is), and tags the local PostgreSQL image (Debian packages, built
// once and kept, as the tests do) for the example's database and app.
func buildImages(ctx context.Context, cli *client.Client, root string) ([]string, error) {
	restic, err := toolpath.Pinned("restic")
	if err != nil {
		return nil, err
	}
	sidecar, err := image.Build(ctx, cli, image.Options{ModuleRoot: root, Restic: restic, Tags: []string{"latest"}})
	if err != nil {
		return nil, fmt.Errorf("build platback/sidecar: %w", err)
	}
	lines := []string{"platback/sidecar:latest (" + sidecar + ")"}

	for _, s := range []struct{ tag, tool, env string }{
		{minioImage, "minio", "ENV HOME=/tmp MINIO_BROWSER=off\n"},
		{vaultImage, "vault", "ENV HOME=/tmp SKIP_SETCAP=1\n"},
	} {
		bin, err := toolpath.Pinned(s.tool)
		if err != nil {
			return nil, err
		}
		if err := buildScratchImage(ctx, cli, s.tag, s.tool, bin, s.env); err != nil {
			return nil, err
		}
		lines = append(lines, s.tag+" (FROM scratch + .tools/bin/"+s.tool+")")
	}

	imgs, err := dbimage.Ensure(ctx, cli, dbimage.Options{})
	if err != nil {
		return nil, fmt.Errorf("build the PostgreSQL image: %w", err)
	}
	for _, t := range []struct{ src, dst string }{{imgs.Postgres, postgresImage}, {imgs.Base, standinImage}} {
		if _, err := cli.ImageTag(ctx, client.ImageTagOptions{Source: t.src, Target: t.dst}); err != nil {
			return nil, fmt.Errorf("tag %s as %s: %w", t.src, t.dst, err)
		}
	}
	lines = append(lines, postgresImage+" (PostgreSQL 15 from Debian packages, "+imgs.Postgres+")",
		standinImage+" (a shell that holds Mattermost's volumes: no Mattermost image can be pulled here)")
	return lines, nil
}

// buildScratchImage builds an image holding one static binary as its
// entrypoint, with an empty /tmp.
func buildScratchImage(ctx context.Context, cli *client.Client, tag, name, bin, env string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	dockerfile := "FROM scratch\nCOPY rootfs/ /\n" + env +
		"LABEL " + demoLabel + "=1\nENTRYPOINT [\"/usr/local/bin/" + name + "\"]\n"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		hdr  tar.Header
		data []byte
	}{
		{tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))}, []byte(dockerfile)},
		{tar.Header{Name: "rootfs/tmp/", Mode: 0o1777, Typeflag: tar.TypeDir}, nil},
		{tar.Header{Name: "rootfs/data/", Mode: 0o755, Typeflag: tar.TypeDir}, nil},
		{tar.Header{Name: "rootfs/usr/local/bin/" + name, Mode: 0o755, Size: int64(len(data))}, data},
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("build %s: %w", tag, err)
	}
	defer res.Body.Close()
	if err := image.BuildError(res.Body); err != nil {
		return fmt.Errorf("build %s: %w", tag, err)
	}
	return nil
}

// removeImages removes the demo's own images and tags (the PostgreSQL image
// under its platback-test name and the sidecar image stay).
func removeImages(ctx context.Context, cli *client.Client) error {
	var errs []error
	for _, ref := range []string{minioImage, vaultImage, postgresImage, standinImage} {
		// A conflict: another demo running on this engine still uses it.
		if _, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
			errs = append(errs, fmt.Errorf("remove image %s: %w", ref, err))
		}
	}
	return errors.Join(errs...)
}
