package discover

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/platback/platback/dbengine"
)

// BuildPlan decides what to back up among containers, without asking Docker:
// the pure half of Discoverer.Plan. It covers opts.Projects, or else
// self.Project; containers of other projects are dropped without a trace
// (the plan of one stack never names another's containers). The sidecar
// (self.ContainerID), platback workers and one-off containers are skipped.
//
// Database containers need their Env (ContainerFromInspect); without it a
// dump target still appears, with no credential variables.
func BuildPlan(opts Options, self Identity, containers []Container) Plan {
	opts, err := opts.normalize()
	b := builder{opts: opts, prefix: opts.LabelPrefix, byKey: map[string]int{}, stopByKey: map[string][]ContainerRef{}, numbers: map[string]string{},
		running: map[string][]ContainerRef{}}
	b.plan.Self = self
	b.plan.Targets = []Target{}
	if err != nil {
		b.plan.Warnings = append(b.plan.Warnings, Warning{Message: err.Error()})
		return b.plan
	}
	b.plan.Projects = scopeProjects(opts, self)
	b.projectInPath = opts.ProjectInPath || len(b.plan.Projects) > 1
	inScope := map[string]bool{}
	for _, p := range b.plan.Projects {
		inScope[p] = true
	}

	var cs []Container
	for _, c := range containers {
		if inScope[c.Labels[ComposeProjectLabel]] {
			cs = append(cs, c)
		}
	}
	slices.SortFunc(cs, func(a, b Container) int {
		return cmp.Or(
			cmp.Compare(a.Labels[ComposeProjectLabel], b.Labels[ComposeProjectLabel]),
			cmp.Compare(a.service(), b.service()),
			cmp.Compare(a.number(), b.number()),
			cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.ID, b.ID))
	})
	for _, c := range cs {
		b.add(c, self)
	}
	b.finish(len(cs))
	return b.plan
}

type builder struct {
	opts          Options
	prefix        string
	projectInPath bool
	plan          Plan
	// byKey maps a mount key (volume name or host path) to its target.
	byKey map[string]int
	// stopByKey maps a mount key to the stop-during-backup containers
	// mounting it.
	stopByKey map[string][]ContainerRef
	dbTargets []Target
	// numbers maps container ids to their compose container number.
	numbers map[string]string
	// running maps project/service to its running containers, in compose
	// number order: where a hook's .context runs.
	running map[string][]ContainerRef
}

func (b *builder) skip(c Container, mount, reason string) {
	b.plan.Skipped = append(b.plan.Skipped, Skip{Container: c.ref(), Mount: mount, Reason: reason})
}

func (b *builder) add(c Container, self Identity) {
	switch {
	case self.ContainerID != "" && c.ID == self.ContainerID:
		b.skip(c, "", "the backup sidecar itself")
		if hooks, _ := parseHooks(c.Name, c.Labels, b.prefix); len(hooks) > 0 {
			b.plan.Warnings = append(b.plan.Warnings, Warning{Container: c.Name, Label: hooks[0].Label + ".cmd", Value: hooks[0].Cmd,
				Message: "hooks on the sidecar itself are not run by platback (stack-back runs them in its own container): put them on the service they are for, with .context to run them in another service"})
		}
		return
	case c.Labels[WorkerLabel] != "":
		b.skip(c, "", "a platback worker container ("+WorkerLabel+")")
		return
	case strings.EqualFold(c.Labels[ComposeOneoffLabel], "true"):
		b.skip(c, "", "one-off container (docker compose run)")
		return
	}

	b.numbers[c.ID] = c.Labels[ComposeContainerNumberLabel]
	ls, warns := parseLabels(c.Name, c.Labels, b.prefix)
	b.plan.Warnings = append(b.plan.Warnings, warns...)
	running := c.State == "running"
	if running {
		ref := c.ref()
		b.running[ref.Project+"/"+ref.Service] = append(b.running[ref.Project+"/"+ref.Service], ref)
	}
	b.addHooks(c, ls, running)

	if ls.stop && running {
		ref := c.ref()
		b.plan.StopDuringBackup = append(b.plan.StopDuringBackup, ref)
		for _, m := range c.Mounts {
			if key, ok := mountKey(m); ok {
				b.stopByKey[key] = append(b.stopByKey[key], ref)
			}
		}
	}

	if !ls.anyBackupable {
		if ls.stop && running {
			return // listed in StopDuringBackup: not skipped
		}
		b.skip(c, "", b.noLabelReason(ls))
		return
	}
	if !running && !b.opts.IncludeStopped {
		b.skip(c, "", "not running (state "+quote(c.State)+"): only running containers are backed up")
		return
	}

	env := c.env()
	if ls.engine != "" {
		if running {
			b.addDatabase(c, ls.engine, env)
		} else {
			b.skip(c, "", string(ls.engine)+" dump needs a running container (state "+quote(c.State)+")")
		}
	}
	if ls.volumes {
		if len(c.Mounts) == 0 {
			b.skip(c, "", b.prefix+LabelVolumes+"=true but the container has no volume or bind mount")
		}
		b.addMounts(c, ls, env)
	}
}

// addHooks adds the container's hooks to the plan. As in stack-back, only
// the hooks of containers that are backed up run; the others are a warning.
func (b *builder) addHooks(c Container, ls labelSet, running bool) {
	hooks, warns := parseHooks(c.Name, c.Labels, b.prefix)
	b.plan.Warnings = append(b.plan.Warnings, warns...)
	if len(hooks) == 0 {
		return
	}
	if !ls.anyBackupable || (!running && !b.opts.IncludeStopped) {
		why := "the container is not running"
		if !ls.anyBackupable {
			why = "the container has no backup label (" + b.prefix + LabelVolumes + " or a database label)"
		}
		b.plan.Warnings = append(b.plan.Warnings, Warning{Container: c.Name, Label: hooks[0].Label + ".cmd", Value: hooks[0].Cmd,
			Message: "its hooks are ignored: " + why + "; as in stack-back, only the hooks of backed-up services run (or put them on a backed-up service with .context)"})
		return
	}
	ref := c.ref()
	for _, h := range hooks {
		h.Source = ref
		if h.Context == "" {
			h.Container = ref
		}
		b.plan.Hooks = append(b.plan.Hooks, h)
	}
}

// resolveHookContexts finds the container each .context names: the first
// running container of that service in the hook's project.
func (b *builder) resolveHookContexts() {
	for i := range b.plan.Hooks {
		h := &b.plan.Hooks[i]
		if h.Context == "" {
			continue
		}
		if refs := b.running[h.Source.Project+"/"+h.Context]; len(refs) > 0 {
			h.Container = refs[0]
			continue
		}
		b.plan.Warnings = append(b.plan.Warnings, Warning{Container: h.Source.Name, Label: h.Label + ".context", Value: h.Context,
			Message: "no running container of service " + quote(h.Context) + " in project " + quote(h.Source.Project) +
				" (the sidecar's own service does not count): the hook will fail; name a running service of the stack"})
	}
}

func (b *builder) noLabelReason(ls labelSet) string {
	var off []string
	if ls.volumesFalse {
		off = append(off, b.prefix+LabelVolumes)
	}
	off = append(off, ls.engineFalse...)
	if len(off) > 0 {
		return "backup turned off: " + strings.Join(off, ", ") + " set to false"
	}
	return "no backup label: none of " + b.prefix + LabelVolumes + ", " + b.prefix + LabelPostgres + ", " +
		b.prefix + LabelMySQL + ", " + b.prefix + LabelMariaDB + " is true"
}

func (b *builder) addDatabase(c Container, kind Kind, env map[string]string) {
	ref := c.ref()
	t := Target{
		Kind:      kind,
		Project:   ref.Project,
		Service:   ref.Service,
		Container: ref,
		Source:    string(kind) + " in " + c.Name,
		Path:      b.snapshotPath("/databases", ref, dumpFile),
		Database:  &DatabaseTarget{Engine: kind, CredentialEnv: dbengine.Engine(kind).CredentialEnv(env)},
	}
	t.Tags = tags(t)
	if engine := dbengine.Engine(kind); !engine.HasLogin(env) {
		b.plan.Warnings = append(b.plan.Warnings, Warning{Container: c.Name, Label: b.prefix + string(kind), Value: "true",
			Message: "no credentials in the container's environment: set one of " + strings.Join(engine.LoginEnv(), ", ") + " (or its _FILE variant), or the dump cannot log in"})
	}
	b.dbTargets = append(b.dbTargets, t)
}

func (b *builder) addMounts(c Container, ls labelSet, env map[string]string) {
	ref := c.ref()
	var dbDirs []string
	if ls.engine != "" {
		dbDirs = dbengine.Engine(ls.engine).DataDirs(env)
	}
	for _, m := range c.Mounts {
		switch {
		case m.Type != "volume" && m.Type != "bind":
			b.skip(c, m.Destination, m.Type+" mount: only volumes and bind mounts are backed up")
			continue
		case m.Type == "bind" && b.opts.ExcludeBinds:
			b.skip(c, m.Destination, "bind mount, and bind mounts are excluded")
			continue
		case isDockerSocket(m):
			b.skip(c, m.Destination, "the Docker socket")
			continue
		case isDataMount(m.Destination, dbDirs):
			b.skip(c, m.Destination, "data directory of a "+string(ls.engine)+" container, backed up as a dump instead")
			continue
		}
		if keep, reason := ls.filterMount(m.Source, b.prefix); !keep {
			b.skip(c, m.Destination, reason)
			continue
		}
		key, _ := mountKey(m)
		if i, ok := b.byKey[key]; ok {
			owner := &b.plan.Targets[i]
			owner.Volume.SharedWith = append(owner.Volume.SharedWith, MountUser{Container: ref, Destination: m.Destination})
			b.skip(c, m.Destination, "shared with "+owner.Container.Name+" ("+owner.Volume.Destination+"): backed up once as "+owner.Path)
			continue
		}
		source := m.Source
		if m.Type == "volume" && m.Name != "" {
			source = m.Name
		}
		t := Target{
			Kind:      KindVolume,
			Project:   ref.Project,
			Service:   ref.Service,
			Container: ref,
			Source:    source,
			Path:      b.snapshotPath("/volumes", ref, m.Destination),
			Volume: &VolumeTarget{Type: m.Type, Name: m.Name, Source: m.Source,
				Destination: m.Destination, ReadOnly: m.ReadOnly},
		}
		t.Tags = tags(t)
		b.byKey[key] = len(b.plan.Targets)
		b.plan.Targets = append(b.plan.Targets, t)
	}
}

// mountKey identifies what a mount exposes: a volume by name, a bind mount
// by host path.
func mountKey(m Mount) (string, bool) {
	switch m.Type {
	case "volume":
		if m.Name != "" {
			return "volume:" + m.Name, true
		}
		return "path:" + path.Clean(m.Source), true
	case "bind":
		return "path:" + path.Clean(m.Source), true
	}
	return "", false
}

func isDockerSocket(m Mount) bool {
	return path.Base(m.Source) == "docker.sock" || path.Base(m.Destination) == "docker.sock"
}

func (b *builder) snapshotPath(root string, ref ContainerRef, rest string) string {
	parts := []string{root}
	if b.projectInPath {
		parts = append(parts, safeName(ref.Project))
	}
	parts = append(parts, safeName(ref.Service), strings.TrimPrefix(rest, "/"))
	return path.Join(parts...)
}

func tags(t Target) []string {
	return []string{"project=" + t.Project, "service=" + t.Service, "kind=" + string(t.Kind)}
}

// finish orders targets, fills stop lists, separates colliding snapshot
// paths and explains an empty plan.
func (b *builder) finish(seen int) {
	p := &b.plan
	for i := range p.Targets {
		t := &p.Targets[i]
		key, _ := mountKey(Mount{Type: t.Volume.Type, Name: t.Volume.Name, Source: t.Volume.Source})
		t.Volume.Stop = b.stopByKey[key]
	}
	p.Targets = append(p.Targets, b.dbTargets...)
	b.resolveHookContexts()
	b.separateCollisions()
	slices.SortStableFunc(p.Targets, func(x, y Target) int {
		return cmp.Or(cmp.Compare(kindOrder(x.Kind), kindOrder(y.Kind)), cmp.Compare(x.Path, y.Path))
	})
	if len(p.Targets) > 0 {
		return
	}
	projects := strings.Join(quoteAll(p.Projects), ", ")
	if len(p.Projects) == 0 {
		p.Warnings = append(p.Warnings, Warning{Message: "nothing to back up: no compose project in scope (set " + EnvProject + ")"})
		return
	}
	if seen == 0 {
		p.Warnings = append(p.Warnings, Warning{Message: fmt.Sprintf(
			"nothing to back up: no container of compose project %s was found; check the project name (the %s label of its containers)",
			projects, ComposeProjectLabel)})
		return
	}
	var why []string
	for _, s := range p.Skipped {
		if s.Mount == "" {
			why = append(why, s.Container.Name+": "+s.Reason)
		} else {
			why = append(why, s.Container.Name+" "+s.Mount+": "+s.Reason)
		}
	}
	p.Warnings = append(p.Warnings, Warning{Message: fmt.Sprintf(
		"nothing to back up in compose project %s: saw %d container(s), skipped all of them (%s); label a service with %s=true or %s=true",
		projects, seen, strings.Join(why, "; "), b.prefix+LabelVolumes, b.prefix+LabelPostgres)})
}

func kindOrder(k Kind) int {
	if k == KindVolume {
		return 0
	}
	return 1
}

// separateCollisions gives targets that would share a snapshot path (replicas
// of one service with their own volumes) distinct paths, with the container
// number (or name) after the service, and warns.
func (b *builder) separateCollisions() {
	byPath := map[string][]int{}
	for i, t := range b.plan.Targets {
		byPath[t.Path] = append(byPath[t.Path], i)
	}
	var shared []string
	for p, idx := range byPath {
		if len(idx) > 1 {
			shared = append(shared, p)
		}
	}
	slices.Sort(shared)
	for _, p := range shared {
		idx := byPath[p]
		var names []string
		for _, i := range idx {
			t := &b.plan.Targets[i]
			suffix := t.Container.Name
			if n := b.numbers[t.Container.ID]; n != "" {
				suffix = n
			}
			ref := t.Container
			ref.Service = t.Service + "-" + suffix
			root, rest := "/databases", path.Base(t.Path)
			if t.Kind == KindVolume {
				root, rest = "/volumes", t.Volume.Destination
			}
			t.Path = b.snapshotPath(root, ref, rest)
			names = append(names, t.Container.Name+" → "+t.Path)
		}
		slices.Sort(names)
		b.plan.Warnings = append(b.plan.Warnings, Warning{Message: "snapshot path " + p +
			" would be shared by several containers (replicas of one service?); they get separate paths: " + strings.Join(names, ", ")})
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}
