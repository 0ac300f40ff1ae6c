package discover

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/client"
)

// Plan finds the sidecar (Self), lists the containers of its compose project
// (or of Options.Projects) and builds the plan with BuildPlan. Only
// containers labelled with a database engine are inspected (for their
// environment), so a large project costs one list call.
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
// those with a database label.
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
			if hasEngineLabel(c.Labels, d.opts.LabelPrefix) {
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
