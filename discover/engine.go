package discover

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/client"
)

// Plan finds the sidecar (Self), lists the containers of its compose project
// (or of Options.Projects) and builds the plan with BuildPlan. Only
// containers labelled with a database engine (for their environment), and
// labelled containers with a volume the list gives no source for, are
// inspected, so a large project usually costs one list call.
//
// Outside a container, Options.Projects or SelfOptions.Project must name the
// project; otherwise the error wraps ErrNoProject.
func (d *Discoverer) Plan(ctx context.Context) (Plan, error) {
	self, err := d.Self(ctx)
	if err != nil {
		if !errors.Is(err, ErrNoProject) || len(d.opts.Projects) == 0 {
			return Plan{}, err
		}
		// Projects named explicitly: no container of our own to skip,
		// unless one was found without a project label.
	}
	cs, err := d.containers(ctx, scopeProjects(d.opts, self))
	if err != nil {
		return Plan{}, err
	}
	return BuildPlan(d.opts, self, cs), nil
}

// containers lists the containers of projects, running or not, and inspects
// those with a database label, and those with a backup label and a volume
// whose source the list left empty: Engine 20.10 lists no source for an
// anonymous volume made from Config.Volumes (docker run -v /path, compose
// v1, an image's VOLUME), so include/exclude could not match it.
func (d *Discoverer) containers(ctx context.Context, projects []string) ([]Container, error) {
	var out []Container
	for _, p := range projects {
		// One exact label filter per project: the engine never returns
		// another project's containers.
		res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
			All:     true,
			Filters: make(client.Filters).Add("label", ComposeProjectLabel+"="+p),
		})
		if err != nil {
			return nil, fmt.Errorf("discover: list containers of project %q: %w", p, err)
		}
		for _, s := range res.Items {
			c := ContainerFromSummary(s)
			if hasEngineLabel(c.Labels, d.opts.LabelPrefix) || hasBackupLabel(c.Labels, d.opts.LabelPrefix) && hasVolumeWithoutSource(c.Mounts) {
				ins, err := d.inspect(ctx, c.ID)
				if err != nil {
					return nil, err
				}
				if ins == nil {
					continue // removed since the list
				}
				c = ContainerFromInspect(*ins)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// hasVolumeWithoutSource reports whether a volume mount has no source path.
func hasVolumeWithoutSource(ms []Mount) bool {
	for _, m := range ms {
		if m.Type == "volume" && m.Source == "" {
			return true
		}
	}
	return false
}
