package discover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/ids"
)

// Ways Self finds the sidecar's container (Identity.FoundBy).
const (
	FoundByMountInfo = "mountinfo"
	FoundByHostname  = "hostname"
)

// hostnameID matches a hostname that may be a container id prefix (Docker's
// default hostname is the first 12 hex digits of the id).
var hostnameID = regexp.MustCompile(`^[0-9a-f]{12,64}$`)

// Self finds the sidecar's own container and compose project:
//
//  1. SelfOptions.Container (PLATBACK_CONTAINER), when set, must name an
//     existing container, else the error wraps ErrSelfNotFound;
//  2. else the container ids in /proc/self/mountinfo, the first one the
//     engine knows (works with a custom hostname and network_mode: host);
//  3. else the hostname, when it is the prefix of a container's id.
//
// The project is the container's com.docker.compose.project label unless
// SelfOptions.Project (PLATBACK_PROJECT) overrides it. Outside a container,
// SelfOptions.Project alone gives an Identity without a container. With no
// container and no project the error wraps ErrNoProject and says what was
// tried and what to set.
func (d *Discoverer) Self(ctx context.Context) (Identity, error) {
	o := d.opts.Self
	var found *container.InspectResponse
	var foundBy string
	var tried []string

	if o.Container != "" {
		c, err := d.inspect(ctx, o.Container)
		if err != nil {
			return Identity{}, err
		}
		if c == nil {
			return Identity{}, fmt.Errorf("%w: %s=%q names no container on this Docker engine (%s); set it to the sidecar's container id or name, or unset it to detect the container",
				ErrSelfNotFound, EnvContainer, o.Container, d.cli.DaemonHost())
		}
		found, foundBy = c, EnvContainer
	}

	if found == nil {
		path := o.MountInfoPath
		if path == "" {
			path = "/proc/self/mountinfo"
		}
		mounted, err := readMountInfo(path)
		switch {
		case err != nil:
			tried = append(tried, fmt.Sprintf("could not read %s (%v)", path, err))
		case len(mounted) == 0:
			tried = append(tried, "no /containers/<id>/ path in "+path)
		}
		for _, id := range mounted {
			c, err := d.inspect(ctx, id)
			if err != nil {
				return Identity{}, err
			}
			if c != nil {
				found, foundBy = c, FoundByMountInfo
				break
			}
			tried = append(tried, "container "+ids.Container(id)+" from "+path+" is unknown to this engine")
		}
	}

	if found == nil {
		h := o.Hostname
		if h == "" {
			h, _ = os.Hostname()
		}
		if hostnameID.MatchString(h) {
			c, err := d.inspect(ctx, h)
			if err != nil {
				return Identity{}, err
			}
			// Inspect also resolves names: only an id prefix counts.
			if c != nil && strings.HasPrefix(c.ID, h) {
				found, foundBy = c, FoundByHostname
			}
		}
		if found == nil {
			tried = append(tried, fmt.Sprintf("hostname %q is not a container id prefix", h))
		}
	}

	id := Identity{}
	if found != nil {
		id = Identity{ContainerID: found.ID, ContainerName: strings.TrimPrefix(found.Name, "/"), FoundBy: foundBy}
		if found.Config != nil && found.Config.Labels[ComposeProjectLabel] != "" {
			id.Project, id.ProjectFrom = found.Config.Labels[ComposeProjectLabel], "label"
		}
	}
	if o.Project != "" {
		id.Project, id.ProjectFrom = o.Project, EnvProject
	}
	if id.Project != "" {
		return id, nil
	}
	if found != nil {
		return id, fmt.Errorf("%w: the sidecar's container %s (found by %s) has no %s label, so it was not started by docker compose; set %s to the project to back up",
			ErrNoProject, id.ContainerName, foundBy, ComposeProjectLabel, EnvProject)
	}
	return id, fmt.Errorf("%w: not running in a container this Docker engine knows (%s); outside a container set %s to the compose project to back up (or %s to the sidecar's container)",
		ErrNoProject, strings.Join(tried, "; "), EnvProject, EnvContainer)
}

// inspect returns nil, nil when the container does not exist.
func (d *Discoverer) inspect(ctx context.Context, ref string) (*container.InspectResponse, error) {
	res, err := d.cli.ContainerInspect(ctx, ref, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("discover: inspect container %s: %w", ref, err)
	}
	return &res.Container, nil
}

func readMountInfo(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return containerIDsFromMountInfo(f)
}
