package dockerbed

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/testbed"
)

// Sweep removes the containers, volumes and networks labelled testbed.Label
// whose owner process is gone (or, when the label holds no owner, that are
// older than StaleAfter), and helper images other than the current one.
// Resources of test processes still running are left alone, so packages
// tested in parallel do not remove each other's containers.
func Sweep(ctx context.Context, cli *client.Client) error {
	var errs []error
	filter := make(client.Filters).Add("label", testbed.Label)

	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs.Items {
		if !stale(c.Labels[testbed.Label], time.Unix(c.Created, 0)) {
			continue
		}
		_, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
		}
	}

	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: filter})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list volumes: %w", err))...)
	}
	for _, v := range vs.Items {
		created, _ := time.Parse(time.RFC3339, v.CreatedAt)
		if !stale(v.Labels[testbed.Label], created) {
			continue
		}
		_, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
		}
	}

	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: filter})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	for _, n := range ns.Items {
		if !stale(n.Labels[testbed.Label], n.Created) {
			continue
		}
		_, err := cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}

	errs = append(errs, sweepImages(ctx, cli), sweepOwnedImages(ctx, cli))
	return errors.Join(errs...)
}

// sweepOwnedImages removes images a test process built and labelled with
// its owner (the sidecar image of the cmd/sidecar tests) once that process
// is gone. Images whose label holds no owner (the database images, kept on
// purpose) are left alone.
func sweepOwnedImages(ctx context.Context, cli *client.Client) error {
	res, err := cli.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", testbed.Label)})
	if err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	var errs []error
	for _, img := range res.Items {
		alive, parsed := ownerAlive(img.Labels[testbed.Label])
		if !parsed || alive {
			continue
		}
		refs := img.RepoTags
		if len(refs) == 0 {
			refs = []string{img.ID}
		}
		for _, ref := range refs {
			_, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
			if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
				errs = append(errs, fmt.Errorf("remove image %s: %w", ref, err))
			}
		}
	}
	return errors.Join(errs...)
}

// stale decides whether a labelled resource may be removed.
func stale(owner string, created time.Time) bool {
	alive, parsed := ownerAlive(owner)
	if parsed {
		return !alive
	}
	return !created.IsZero() && time.Since(created) > StaleAfter
}
