package discover

import (
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// Container is what plan building needs to know about one container. Use
// ContainerFromSummary or ContainerFromInspect to make one from the Docker
// API, or fill it by hand.
type Container struct {
	ID     string
	Name   string
	Labels map[string]string
	// State is the engine's state: "running", "exited", "created"…
	State  string
	Mounts []Mount
	// Env is the container's environment (KEY=VALUE). Plan building reads
	// only variable names and the postgres database name from it; values
	// never reach a Plan.
	Env []string
}

// Mount is one mount of a container.
type Mount struct {
	// Type is "volume", "bind", "tmpfs", "npipe", "image" or "cluster".
	Type string
	// Name is the volume name, for volumes.
	Name string
	// Source is the path on the Docker host.
	Source      string
	Destination string
	ReadOnly    bool
}

// ContainerFromSummary converts an entry of the container list. A summary
// carries no environment, and on Engine 20.10 no source for an anonymous
// volume made from Config.Volumes (docker run -v /path, compose v1, an
// image's VOLUME): inspect database containers and such containers
// (ContainerFromInspect) before building a plan.
func ContainerFromSummary(s container.Summary) Container {
	name := ""
	if len(s.Names) > 0 {
		name = strings.TrimPrefix(s.Names[0], "/")
	}
	return Container{ID: s.ID, Name: name, Labels: s.Labels, State: string(s.State), Mounts: convertMounts(s.Mounts)}
}

// ContainerFromInspect converts a container inspect result.
func ContainerFromInspect(c container.InspectResponse) Container {
	out := Container{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), Mounts: convertMounts(c.Mounts)}
	if c.State != nil {
		out.State = string(c.State.Status)
	}
	if c.Config != nil {
		out.Labels = c.Config.Labels
		out.Env = c.Config.Env
	}
	return out
}

func convertMounts(ms []container.MountPoint) []Mount {
	out := make([]Mount, 0, len(ms))
	for _, m := range ms {
		out = append(out, Mount{Type: string(m.Type), Name: m.Name, Source: m.Source, Destination: m.Destination, ReadOnly: !m.RW})
	}
	return out
}

// Ref names the container, with its compose project, service and
// dependencies.
func (c Container) Ref() ContainerRef { return c.ref() }

func (c Container) ref() ContainerRef {
	return ContainerRef{ID: c.ID, Name: c.Name, Project: c.Labels[ComposeProjectLabel], Service: c.service(),
		DependsOn: parseDependsOn(c.Labels[ComposeDependsOnLabel])}
}

// parseDependsOn returns the service names of a ComposeDependsOnLabel value
// ("db:service_healthy:true,redis:service_started:false", or "db,redis"),
// sorted and without duplicates.
func parseDependsOn(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		name, _, _ := strings.Cut(item, ":")
		if name = strings.TrimSpace(name); name != "" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// service is the compose service, or the container name for a container
// compose did not create.
func (c Container) service() string {
	if s := c.Labels[ComposeServiceLabel]; s != "" {
		return s
	}
	return c.Name
}

func (c Container) number() int {
	n, _ := strconv.Atoi(c.Labels[ComposeContainerNumberLabel])
	return n
}

func (c Container) env() map[string]string {
	m := make(map[string]string, len(c.Env))
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
