package discover_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/dbengine"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

const lp = discover.DefaultLabelPrefix

// stack is a compose-like project built by a test: compose labels are set by
// hand, as docker compose sets them.
type stack struct {
	t       *testing.T
	cli     *client.Client
	project string
	c       map[string]container.InspectResponse // by service, after up
	pending []string                             // services added, not yet up
	specs   []dockerbed.ContainerSpec
}

func newStack(t *testing.T, cli *client.Client, prefix string) *stack {
	return &stack{t: t, cli: cli, project: dockerbed.UniqueName(prefix), c: map[string]container.InspectResponse{}}
}

// volume creates the named volume <project>_<name>, as compose does.
func (s *stack) volume(name string) string {
	full := s.project + "_" + name
	dockerbed.Volume(s.t, s.cli, full, map[string]string{discover.ComposeProjectLabel: s.project, "com.docker.compose.volume": name})
	return full
}

type svc struct {
	labels   map[string]string
	mounts   []mount.Mount
	env      []string
	hostname string
	network  string
	oneoff   bool
	noStart  bool
}

// add declares a service; up creates the containers.
func (s *stack) add(name string, o svc) {
	l := map[string]string{
		discover.ComposeProjectLabel:         s.project,
		discover.ComposeServiceLabel:         name,
		discover.ComposeOneoffLabel:          "False",
		discover.ComposeContainerNumberLabel: "1",
	}
	if o.oneoff {
		l[discover.ComposeOneoffLabel] = "True"
	}
	for k, v := range o.labels {
		l[k] = v
	}
	s.pending = append(s.pending, name)
	s.specs = append(s.specs, dockerbed.ContainerSpec{
		Name: s.project + "-" + name + "-1", Labels: l, Mounts: o.mounts, Env: o.env,
		Hostname: o.hostname, NetworkMode: o.network, NoStart: o.noStart,
	})
}

// service adds one service and starts it at once.
func (s *stack) service(name string, o svc) container.InspectResponse {
	s.add(name, o)
	up(s)
	return s.c[name]
}

// up starts the added services of all stacks together.
func up(stacks ...*stack) {
	var specs []dockerbed.ContainerSpec
	for _, s := range stacks {
		specs = append(specs, s.specs...)
	}
	cs := dockerbed.RunAll(stacks[0].t, stacks[0].cli, specs...)
	for _, s := range stacks {
		for i, name := range s.pending {
			s.c[name] = cs[i]
		}
		cs = cs[len(s.pending):]
		s.pending, s.specs = nil, nil
	}
}

func vol(source, target string) mount.Mount {
	return mount.Mount{Type: mount.TypeVolume, Source: source, Target: target}
}

func bind(source, target string, ro bool) mount.Mount {
	return mount.Mount{Type: mount.TypeBind, Source: source, Target: target, ReadOnly: ro}
}

// selfOptions reads the real /proc/self/mountinfo and hostname of a running
// container, as the sidecar would see them inside it.
func selfOptions(t *testing.T, cli *client.Client, c container.InspectResponse) discover.SelfOptions {
	mi := dockerbed.Exec(t, cli, c.ID, dockerbed.Helper("cat=/proc/self/mountinfo")...)
	require.Equal(t, 0, mi.ExitCode, mi.Stderr)
	host := dockerbed.Exec(t, cli, c.ID, dockerbed.Helper("hostname")...)
	require.Equal(t, 0, host.ExitCode, host.Stderr)
	path := filepath.Join(t.TempDir(), "mountinfo")
	require.NoError(t, os.WriteFile(path, []byte(mi.Stdout), 0o644))
	return discover.SelfOptions{MountInfoPath: path, Hostname: strings.TrimSpace(host.Stdout)}
}

func planPaths(p discover.Plan) []string {
	var out []string
	for _, t := range p.Targets {
		out = append(out, t.Path)
	}
	return out
}

func skipReason(p discover.Plan, name, mount string) string {
	for _, s := range p.Skipped {
		if s.Container.Name == name && s.Mount == mount {
			return s.Reason
		}
	}
	return ""
}

// TestPlanTwoStacksOnRealEngine starts two compose-like projects side by side
// and checks each sidecar sees exactly its own project.
func TestPlanTwoStacksOnRealEngine(t *testing.T) {
	cli := dockerbed.Client(t)
	ctx := t.Context()

	a := newStack(t, cli, "pbta")
	data, shared, media, keep, scratch := a.volume("data"), a.volume("shared"), a.volume("media"), a.volume("keep"), a.volume("scratch")
	pgdata, pgconf, once, stopv := a.volume("pgdata"), a.volume("pgconf"), a.volume("once"), a.volume("stopv")
	tmp := t.TempDir()
	appFiles, webFiles := filepath.Join(tmp, "app-srv"), filepath.Join(tmp, "web", "files")
	require.NoError(t, os.MkdirAll(appFiles, 0o755))
	require.NoError(t, os.MkdirAll(webFiles, 0o755))

	var sock []mount.Mount
	if _, err := os.Stat("/var/run/docker.sock"); err == nil {
		sock = []mount.Mount{bind("/var/run/docker.sock", "/var/run/docker.sock", true)}
	}
	a.add("backup", svc{hostname: "custom-backup", mounts: sock,
		labels: map[string]string{lp + "volumes": "true"}}) // labels on the sidecar itself must not matter
	a.add("app", svc{
		labels: map[string]string{lp + "volumes": "TRUE"},
		mounts: append([]mount.Mount{vol(data, "/data"), vol(shared, "/shared"), bind(appFiles, "/srv/app", true)}, sock...),
	})
	a.add("web", svc{
		labels: map[string]string{lp + "volumes": "1", lp + "volumes.exclude": "files"},
		mounts: []mount.Mount{vol(shared, "/var/www/shared"), bind(webFiles, "/files", false), vol(media, "/media")},
	})
	a.add("cache", svc{
		labels: map[string]string{lp + "volumes": "true", lp + "volumes.include": "keep"},
		mounts: []mount.Mount{vol(keep, "/keep"), vol(scratch, "/scratch")},
	})
	a.add("db", svc{
		labels: map[string]string{lp + "postgres": "true", lp + "volumes": "true"},
		env:    []string{"POSTGRES_USER=app", "POSTGRES_PASSWORD=s3cret-A", "POSTGRES_DB=appdb"},
		mounts: []mount.Mount{vol(pgdata, "/var/lib/postgresql/data"), vol(pgconf, "/etc/pgconf")},
	})
	a.add("bad", svc{labels: map[string]string{lp + "volumes": "yes", lp + "mysql": "maybe"}})
	a.add("run", svc{oneoff: true, labels: map[string]string{lp + "volumes": "true"}, mounts: []mount.Mount{vol(once, "/once")}})
	a.add("stopped", svc{noStart: true, labels: map[string]string{lp + "volumes": "true"}, mounts: []mount.Mount{vol(once, "/once")}})
	a.add("worker", svc{labels: map[string]string{lp + "volumes": "true", discover.WorkerLabel: "backup"}, mounts: []mount.Mount{vol(once, "/once")}})
	a.add("stopme", svc{labels: map[string]string{lp + "volumes": "true", lp + "volumes.stop-during-backup": "true",
		discover.ComposeDependsOnLabel: "db:service_healthy:true,app:service_started:false"},
		mounts: []mount.Mount{vol(stopv, "/state")}})

	b := newStack(t, cli, "pbtb")
	bdata := b.volume("data")
	b.add("backup", svc{network: "host"})
	b.add("app", svc{labels: map[string]string{lp + "volumes": "true"}, mounts: []mount.Mount{vol(bdata, "/data")}})
	b.add("db", svc{labels: map[string]string{lp + "postgres": "true"}, env: []string{"POSTGRES_PASSWORD=s3cret-B"}})

	up(a, b)
	sidecarA, sidecarB, db, stopme := a.c["backup"], b.c["backup"], a.c["db"], a.c["stopme"]

	t.Run("sidecar A with a custom hostname sees exactly A", func(t *testing.T) {
		so := selfOptions(t, cli, sidecarA)
		require.Equal(t, "custom-backup", so.Hostname)
		d, err := discover.New(cli, discover.Options{Self: so})
		require.NoError(t, err)
		p, err := d.Plan(ctx)
		require.NoError(t, err)

		assert.Equal(t, discover.Identity{ContainerID: sidecarA.ID, ContainerName: a.project + "-backup-1", Project: a.project,
			FoundBy: discover.FoundByMountInfo, ProjectFrom: "label"}, p.Self)
		assert.Equal(t, []string{a.project}, p.Projects)
		assert.Equal(t, []string{
			"/volumes/app/data", "/volumes/app/shared", "/volumes/app/srv/app",
			"/volumes/cache/keep", "/volumes/db/etc/pgconf", "/volumes/stopme/state", "/volumes/web/media",
			"/databases/db/all_databases.sql",
		}, planPaths(p))

		js, err := json.Marshal(p)
		require.NoError(t, err)
		assert.NotContains(t, string(js), b.project, "nothing of project B may appear in A's plan")
		assert.NotContains(t, string(js), "s3cret", "no credential value in the plan")

		app := p.Targets[0]
		assert.Equal(t, data, app.Volume.Name)
		assert.Equal(t, []string{"project=" + a.project, "service=app", "kind=volume"}, app.Tags)
		srv := p.Targets[2]
		assert.Equal(t, "bind", srv.Volume.Type)
		assert.Equal(t, appFiles, srv.Volume.Source)
		assert.True(t, srv.Volume.ReadOnly)
		sharedT := p.Targets[1]
		require.Len(t, sharedT.Volume.SharedWith, 1, "the volume shared with web is backed up once")
		assert.Equal(t, "/var/www/shared", sharedT.Volume.SharedWith[0].Destination)
		assert.Contains(t, skipReason(p, a.project+"-web-1", "/var/www/shared"), "backed up once as /volumes/app/shared")

		assert.Contains(t, skipReason(p, a.project+"-web-1", "/files"), `source contains "files"`)
		assert.Contains(t, skipReason(p, a.project+"-cache-1", "/scratch"), "matches none of")
		assert.Contains(t, skipReason(p, a.project+"-db-1", "/var/lib/postgresql/data"), "data directory")
		assert.Contains(t, skipReason(p, a.project+"-run-1", ""), "one-off")
		assert.Contains(t, skipReason(p, a.project+"-stopped-1", ""), "not running")
		assert.Contains(t, skipReason(p, a.project+"-worker-1", ""), "worker")
		assert.Contains(t, skipReason(p, a.project+"-backup-1", ""), "sidecar itself")
		if sock != nil {
			assert.Equal(t, "the Docker socket", skipReason(p, a.project+"-app-1", "/var/run/docker.sock"))
		}

		dbT := p.Targets[7]
		assert.Equal(t, db.ID, dbT.Container.ID)
		assert.Equal(t, &discover.DatabaseTarget{Engine: discover.KindPostgres,
			CredentialEnv: []string{"POSTGRES_DB", "POSTGRES_PASSWORD", "POSTGRES_USER"}}, dbT.Database)
		assert.Equal(t, []discover.ContainerRef{{ID: stopme.ID, Name: a.project + "-stopme-1", Project: a.project, Service: "stopme",
			DependsOn: []string{"app", "db"}}}, p.StopDuringBackup)

		var bad []string
		for _, w := range p.Warnings {
			if w.Container == a.project+"-bad-1" {
				bad = append(bad, w.Label+"="+w.Value)
			}
		}
		assert.Equal(t, []string{lp + "volumes=yes", lp + "mysql=maybe"}, bad)
	})

	t.Run("sidecar B with network_mode host sees exactly B", func(t *testing.T) {
		so := selfOptions(t, cli, sidecarB)
		host, _ := os.Hostname()
		assert.Equal(t, host, so.Hostname, "with network_mode: host the hostname is the host's")
		d, err := discover.New(cli, discover.Options{Self: so})
		require.NoError(t, err)
		p, err := d.Plan(ctx)
		require.NoError(t, err)
		assert.Equal(t, sidecarB.ID, p.Self.ContainerID)
		assert.Equal(t, discover.FoundByMountInfo, p.Self.FoundBy)
		assert.Equal(t, []string{"/volumes/app/data", "/databases/db/all_databases.sql"}, planPaths(p))
		js, _ := json.Marshal(p)
		assert.NotContains(t, string(js), a.project)
	})

	t.Run("hostname fallback", func(t *testing.T) {
		// A container with Docker's default hostname (its short id), and no
		// container path in mountinfo.
		so := selfOptions(t, cli, a.c["app"])
		so.MountInfoPath = filepath.Join(t.TempDir(), "empty")
		require.NoError(t, os.WriteFile(so.MountInfoPath, nil, 0o644))
		require.Equal(t, a.c["app"].ID[:12], so.Hostname)
		d, err := discover.New(cli, discover.Options{Self: so})
		require.NoError(t, err)
		id, err := d.Self(ctx)
		require.NoError(t, err)
		assert.Equal(t, discover.Identity{ContainerID: a.c["app"].ID, ContainerName: a.project + "-app-1", Project: a.project,
			FoundBy: discover.FoundByHostname, ProjectFrom: "label"}, id)
	})

	t.Run("overrides", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty")
		require.NoError(t, os.WriteFile(empty, nil, 0o644))
		outside := discover.SelfOptions{MountInfoPath: empty, Hostname: "laptop"}

		d, _ := discover.New(cli, discover.Options{Self: outside})
		_, err := d.Self(ctx)
		assert.ErrorIs(t, err, discover.ErrNoProject)
		assert.ErrorContains(t, err, `hostname "laptop" is not a container id prefix`)
		assert.ErrorContains(t, err, "set PLATBACK_PROJECT")
		_, err = d.Plan(ctx)
		assert.ErrorIs(t, err, discover.ErrNoProject)

		byName := outside
		byName.Container = a.project + "-backup-1"
		d, _ = discover.New(cli, discover.Options{Self: byName})
		id, err := d.Self(ctx)
		require.NoError(t, err)
		assert.Equal(t, sidecarA.ID, id.ContainerID)
		assert.Equal(t, discover.EnvContainer, id.FoundBy)

		missing := outside
		missing.Container = "pbtest-no-such-container"
		d, _ = discover.New(cli, discover.Options{Self: missing})
		_, err = d.Self(ctx)
		assert.ErrorIs(t, err, discover.ErrSelfNotFound)
		assert.ErrorContains(t, err, `PLATBACK_CONTAINER="pbtest-no-such-container"`)

		project := outside
		project.Project = b.project
		d, _ = discover.New(cli, discover.Options{Self: project})
		p, err := d.Plan(ctx)
		require.NoError(t, err)
		assert.Equal(t, discover.Identity{Project: b.project, ProjectFrom: discover.EnvProject}, p.Self)
		// Outside a container nothing is "self": B's sidecar is listed as
		// skipped for having no backup label.
		assert.Equal(t, []string{"/volumes/app/data", "/databases/db/all_databases.sql"}, planPaths(p))

		d, _ = discover.New(cli, discover.Options{Self: outside, Projects: []string{a.project, b.project}})
		p, err = d.Plan(ctx)
		require.NoError(t, err)
		assert.Contains(t, planPaths(p), "/volumes/"+a.project+"/app/data")
		assert.Contains(t, planPaths(p), "/volumes/"+b.project+"/app/data")
	})

	t.Run("a container without compose labels has no project", func(t *testing.T) {
		plain := dockerbed.Run(t, cli, dockerbed.ContainerSpec{})
		d, _ := discover.New(cli, discover.Options{Self: selfOptions(t, cli, plain)})
		_, err := d.Self(ctx)
		assert.ErrorIs(t, err, discover.ErrNoProject)
		assert.ErrorContains(t, err, "has no com.docker.compose.project label")
	})

	t.Run("credentials are read at dump time, _FILE from inside the container", func(t *testing.T) {
		c := a.service("pgfile", svc{
			labels: map[string]string{lp + "postgres": "true"},
			env:    []string{"POSTGRES_USER=app", "POSTGRES_PASSWORD_FILE=/run/secrets/pg"},
		})
		w := dockerbed.Exec(t, cli, c.ID, dockerbed.Helper("write=/run/secrets/pg:file-secret\n")...)
		require.Equal(t, 0, w.ExitCode, w.Stderr)
		d, _ := discover.New(cli, discover.Options{Self: discover.SelfOptions{Project: a.project, MountInfoPath: "/nonexistent", Hostname: "laptop"}})
		p, err := d.Plan(ctx)
		require.NoError(t, err)
		var target *discover.Target
		for i := range p.Targets {
			if p.Targets[i].Container.ID == c.ID {
				target = &p.Targets[i]
			}
		}
		require.NotNil(t, target)
		assert.Equal(t, []string{"POSTGRES_PASSWORD_FILE", "POSTGRES_USER"}, target.Database.CredentialEnv)
		db := dbengine.Database{Engine: dbengine.Engine(target.Database.Engine), ContainerID: target.Container.ID, ContainerName: target.Container.Name}
		login, err := dbengine.ReadLogin(ctx, cli, db)
		require.NoError(t, err)
		assert.Equal(t, dbengine.Login{User: "app", Password: "file-secret", Database: "app"}, login)
	})
}

// TestPlanOnEngineIsScopedByLabelFilter checks the list call itself never
// returns a container of another project (not just that BuildPlan drops it).
func TestPlanOnEngineIsScopedByLabelFilter(t *testing.T) {
	cli := dockerbed.Client(t)
	a := newStack(t, cli, "pbta")
	// B's project name has A's as a prefix: a prefix or substring match
	// would leak it.
	b := &stack{t: t, cli: cli, project: a.project + "x", c: map[string]container.InspectResponse{}}
	a.add("app", svc{labels: map[string]string{lp + "volumes": "true"}, mounts: []mount.Mount{vol(a.volume("data"), "/data")}})
	b.add("app", svc{labels: map[string]string{lp + "volumes": "true"}, mounts: []mount.Mount{vol(b.volume("data"), "/data")}})
	up(a, b)
	d, err := discover.New(cli, discover.Options{Self: discover.SelfOptions{Project: a.project, MountInfoPath: "/nonexistent", Hostname: "laptop"}})
	require.NoError(t, err)
	p, err := d.Plan(context.Background())
	require.NoError(t, err)
	js, _ := json.Marshal(p)
	assert.NotContains(t, string(js), b.project)
	assert.Contains(t, string(js), a.project+"-app-1")
}
