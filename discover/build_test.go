package discover

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const lp = DefaultLabelPrefix

// ctr makes a running compose container of project/service.
func ctr(project, service string, labels map[string]string, mounts ...Mount) Container {
	l := map[string]string{
		ComposeProjectLabel: project, ComposeServiceLabel: service,
		ComposeOneoffLabel: "False", ComposeContainerNumberLabel: "1",
	}
	for k, v := range labels {
		l[k] = v
	}
	name := project + "-" + service + "-1"
	return Container{ID: "id-" + name, Name: name, Labels: l, State: "running", Mounts: mounts}
}

func vol(name, dest string) Mount {
	return Mount{Type: "volume", Name: name, Source: "/var/lib/docker/volumes/" + name + "/_data", Destination: dest}
}

func bind(src, dest string) Mount { return Mount{Type: "bind", Source: src, Destination: dest} }

func paths(p Plan) []string {
	var out []string
	for _, t := range p.Targets {
		out = append(out, t.Path)
	}
	return out
}

func skipFor(p Plan, container, mount string) string {
	for _, s := range p.Skipped {
		if s.Container.Name == container && s.Mount == mount {
			return s.Reason
		}
	}
	return ""
}

func selfA() Identity {
	return Identity{ContainerID: "id-a-backup-1", ContainerName: "a-backup-1", Project: "a", FoundBy: FoundByMountInfo, ProjectFrom: "label"}
}

func TestBuildPlanScopeIsOwnProject(t *testing.T) {
	cs := []Container{
		ctr("a", "app", map[string]string{lp + "volumes": "true"}, vol("a_data", "/data")),
		ctr("b", "app", map[string]string{lp + "volumes": "true"}, vol("b_data", "/data")),
		ctr("b", "db", map[string]string{lp + "postgres": "true"}),
		ctr("", "loose", map[string]string{lp + "volumes": "true"}, vol("loose", "/x")),
	}
	p := BuildPlan(Options{}, selfA(), cs)
	assert.Equal(t, []string{"a"}, p.Projects)
	assert.Equal(t, []string{"/volumes/app/data"}, paths(p))
	out := fmt.Sprintf("%+v", p)
	assert.NotContains(t, out, "b_data", "another project's volume must not appear anywhere in the plan")
	assert.NotContains(t, out, "b-app-1")
	assert.NotContains(t, out, "loose")
}

func TestBuildPlanSkipsContainers(t *testing.T) {
	on := map[string]string{lp + "volumes": "true"}
	with := func(c Container, k, v string) Container { c.Labels[k] = v; return c }
	stopped := ctr("a", "stopped", on, vol("a_s", "/s"))
	stopped.State = "exited"
	self := ctr("a", "backup", on, vol("a_cache", "/cache"))
	cs := []Container{
		self,
		with(ctr("a", "worker", on, vol("a_w", "/w")), WorkerLabel, self.ID),
		with(ctr("a", "run", on, vol("a_r", "/r")), ComposeOneoffLabel, "True"),
		stopped,
		ctr("a", "plain", nil, vol("a_p", "/p")),
		ctr("a", "off", map[string]string{lp + "volumes": "false", lp + "mysql": "0"}),
		ctr("a", "bad", map[string]string{lp + "volumes": "yes"}, vol("a_b", "/b")),
		ctr("a", "nomount", on),
	}
	p := BuildPlan(Options{}, Identity{ContainerID: self.ID, Project: "a"}, cs)
	assert.Empty(t, p.Targets)
	for _, tc := range []struct{ container, reason string }{
		{"a-backup-1", "the backup sidecar itself"},
		{"a-worker-1", "platback worker"},
		{"a-run-1", "one-off"},
		{"a-stopped-1", `not running (state "exited")`},
		{"a-plain-1", "no backup label"},
		{"a-off-1", "backup turned off: stack-back.volumes, stack-back.mysql set to false"},
		{"a-bad-1", "no backup label"},
		{"a-nomount-1", "stack-back.volumes=true but the container has no volume or bind mount"},
	} {
		assert.Contains(t, skipFor(p, tc.container, ""), tc.reason, tc.container)
	}
	require.NotEmpty(t, p.Warnings)
	assert.Equal(t, Warning{Container: "a-bad-1", Label: lp + "volumes", Value: "yes",
		Message: "not a boolean: use true or false (1/0 and any case work too); the label is ignored"}, p.Warnings[0])
	last := p.Warnings[len(p.Warnings)-1].Message
	assert.Contains(t, last, `nothing to back up in compose project "a": saw 8 container(s)`)
	assert.Contains(t, last, "a-run-1: one-off container")

	p = BuildPlan(Options{IncludeStopped: true}, Identity{ContainerID: self.ID, Project: "a"}, cs)
	assert.Equal(t, []string{"/volumes/stopped/s"}, paths(p))
}

func TestBuildPlanMounts(t *testing.T) {
	app := ctr("a", "app", map[string]string{lp + "volumes": "1"},
		vol("a_data", "/data"),
		bind("/srv/files", "/srv/files"),
		bind("/var/run/docker.sock", "/var/run/docker.sock"),
		Mount{Type: "tmpfs", Destination: "/tmp"},
		Mount{Type: "volume", Name: "0123abcd", Source: "/var/lib/docker/volumes/0123abcd/_data", Destination: "/anon", ReadOnly: true},
	)
	web := ctr("a", "web", map[string]string{lp + "volumes": "true", lp + "volumes.exclude": "files"},
		vol("a_data", "/usr/share/data"), bind("/home/u/files", "/files"), vol("a_media", "/media"))
	cache := ctr("a", "cache", map[string]string{lp + "volumes": "true", lp + "volumes.include": "keep"},
		vol("a_keep", "/keep"), vol("a_scratch", "/scratch"))

	t.Run("filters, socket, tmpfs, dedupe", func(t *testing.T) {
		p := BuildPlan(Options{}, selfA(), []Container{web, app, cache})
		assert.Equal(t, []string{"/volumes/app/anon", "/volumes/app/data", "/volumes/app/srv/files", "/volumes/cache/keep", "/volumes/web/media"}, paths(p))
		assert.Equal(t, "the Docker socket", skipFor(p, "a-app-1", "/var/run/docker.sock"))
		assert.Contains(t, skipFor(p, "a-app-1", "/tmp"), "tmpfs mount")
		assert.Contains(t, skipFor(p, "a-web-1", "/files"), `source contains "files"`)
		assert.Contains(t, skipFor(p, "a-cache-1", "/scratch"), `matches none of stack-back.volumes.include="keep"`)
		assert.Equal(t, "shared with a-app-1 (/data): backed up once as /volumes/app/data", skipFor(p, "a-web-1", "/usr/share/data"))

		data := p.Targets[1]
		assert.Equal(t, KindVolume, data.Kind)
		assert.Equal(t, "a_data", data.Source)
		assert.Equal(t, []string{"project=a", "service=app", "kind=volume"}, data.Tags)
		assert.Equal(t, &VolumeTarget{Type: "volume", Name: "a_data", Source: "/var/lib/docker/volumes/a_data/_data", Destination: "/data",
			SharedWith: []MountUser{{Container: web.ref(), Destination: "/usr/share/data"}}}, data.Volume)
		assert.True(t, p.Targets[0].Volume.ReadOnly)
	})

	t.Run("exclude binds", func(t *testing.T) {
		p := BuildPlan(Options{ExcludeBinds: true}, selfA(), []Container{app})
		assert.Equal(t, []string{"/volumes/app/anon", "/volumes/app/data"}, paths(p))
		assert.Contains(t, skipFor(p, "a-app-1", "/srv/files"), "bind mounts are excluded")
	})

	t.Run("project in path", func(t *testing.T) {
		p := BuildPlan(Options{ProjectInPath: true}, selfA(), []Container{cache})
		assert.Equal(t, []string{"/volumes/a/cache/keep"}, paths(p))
	})
}

func TestBuildPlanDatabases(t *testing.T) {
	pg := ctr("a", "db", map[string]string{lp + "postgres": "true", lp + "volumes": "true"},
		vol("a_pgdata", "/var/lib/postgresql/data"), vol("a_conf", "/etc/pgconf"))
	pg.Env = []string{"POSTGRES_USER=app", "POSTGRES_PASSWORD=hunter2", "POSTGRES_DB=appdb", "PATH=/usr/bin"}
	pgCustom := ctr("a", "pg2", map[string]string{lp + "postgres": "true", lp + "volumes": "true"}, vol("a_pg2", "/srv/pg"))
	pgCustom.Env = []string{"PGDATA=/srv/pg/data", "POSTGRES_PASSWORD_FILE=/run/secrets/pw"}
	my := ctr("a", "mysql", map[string]string{lp + "mysql": "true"}, vol("a_mysql", "/var/lib/mysql"))
	my.Env = []string{"MYSQL_ROOT_PASSWORD=rootpw"}
	maria := ctr("a", "maria", map[string]string{lp + "mariadb": "TRUE"})
	maria.Env = []string{"MARIADB_DATABASE=x"}
	stoppedDB := ctr("a", "olddb", map[string]string{lp + "postgres": "true"})
	stoppedDB.State = "exited"

	p := BuildPlan(Options{}, selfA(), []Container{pg, pgCustom, my, maria, stoppedDB})
	assert.Equal(t, []string{"/volumes/db/etc/pgconf", "/databases/db/all_databases.sql", "/databases/maria/all_databases.sql",
		"/databases/mysql/all_databases.sql", "/databases/pg2/all_databases.sql"}, paths(p),
		"a postgres dump is pg_dumpall of every database: not named after POSTGRES_DB")
	assert.Contains(t, skipFor(p, "a-db-1", "/var/lib/postgresql/data"), "data directory of a postgres container")
	assert.Contains(t, skipFor(p, "a-pg2-1", "/srv/pg"), "data directory", "PGDATA below the mount")
	assert.Contains(t, skipFor(p, "a-olddb-1", ""), "not running")
	withStopped := BuildPlan(Options{IncludeStopped: true}, selfA(), []Container{stoppedDB})
	assert.Contains(t, skipFor(withStopped, "a-olddb-1", ""), "postgres dump needs a running container")

	db := p.Targets[1]
	assert.Equal(t, KindPostgres, db.Kind)
	assert.Equal(t, &DatabaseTarget{Engine: KindPostgres,
		CredentialEnv: []string{"POSTGRES_DB", "POSTGRES_PASSWORD", "POSTGRES_USER"}}, db.Database)
	assert.Equal(t, []string{"project=a", "service=db", "kind=postgres"}, db.Tags)
	assert.Equal(t, []string{"POSTGRES_PASSWORD_FILE"}, p.Targets[4].Database.CredentialEnv)

	var mariaWarn bool
	for _, w := range p.Warnings {
		if w.Container == "a-maria-1" && strings.Contains(w.Message, "MARIADB_ROOT_PASSWORD") {
			mariaWarn = true
		}
	}
	assert.True(t, mariaWarn, "a mariadb container without credentials is warned about: %v", p.Warnings)
}

func TestBuildPlanStopDuringBackup(t *testing.T) {
	app := ctr("a", "app", map[string]string{lp + "volumes": "true", lp + "volumes.stop-during-backup": "true"}, vol("a_data", "/data"))
	// Only stop-labelled: stopped, not backed up itself, but its volume is.
	side := ctr("a", "side", map[string]string{lp + "volumes.stop-during-backup": "True"}, vol("a_data", "/d"))
	p := BuildPlan(Options{}, selfA(), []Container{app, side})
	assert.Equal(t, []ContainerRef{app.ref(), side.ref()}, p.StopDuringBackup)
	require.Len(t, p.Targets, 1)
	assert.Equal(t, []ContainerRef{app.ref(), side.ref()}, p.Targets[0].Volume.Stop)
	assert.Empty(t, skipFor(p, "a-side-1", ""), "a container to stop is not 'skipped'")
}

func TestBuildPlanSeveralProjects(t *testing.T) {
	cs := []Container{
		ctr("a", "app", map[string]string{lp + "volumes": "true"}, vol("a_data", "/data")),
		ctr("b", "app", map[string]string{lp + "volumes": "true"}, vol("b_data", "/data")),
		ctr("c", "app", map[string]string{lp + "volumes": "true"}, vol("c_data", "/data")),
	}
	p := BuildPlan(Options{Projects: []string{"a", "b"}}, Identity{}, cs)
	assert.Equal(t, []string{"/volumes/a/app/data", "/volumes/b/app/data"}, paths(p), "two projects never share a path")
}

func TestBuildPlanReplicasGetSeparatePaths(t *testing.T) {
	r1 := ctr("a", "worker", map[string]string{lp + "volumes": "true"}, Mount{Type: "volume", Name: "aaa", Source: "/v/aaa", Destination: "/state"})
	r2 := ctr("a", "worker", map[string]string{lp + "volumes": "true", ComposeContainerNumberLabel: "2"}, Mount{Type: "volume", Name: "bbb", Source: "/v/bbb", Destination: "/state"})
	r2.ID, r2.Name = "id-a-worker-2", "a-worker-2"
	p := BuildPlan(Options{}, selfA(), []Container{r2, r1})
	assert.Equal(t, []string{"/volumes/worker-1/state", "/volumes/worker-2/state"}, paths(p))
	require.NotEmpty(t, p.Warnings)
	assert.Contains(t, p.Warnings[0].Message, "snapshot path /volumes/worker/state would be shared")
}

func TestBuildPlanEmpty(t *testing.T) {
	p := BuildPlan(Options{}, selfA(), nil)
	assert.True(t, p.Empty())
	assert.NotNil(t, p.Targets, "JSON shows an empty list, not null")
	require.Len(t, p.Warnings, 1)
	assert.Contains(t, p.Warnings[0].Message, `no container of compose project "a" was found`)

	p = BuildPlan(Options{}, Identity{}, nil)
	assert.Contains(t, p.Warnings[0].Message, "no compose project in scope (set PLATBACK_PROJECT)")

	p = BuildPlan(Options{Projects: []string{"*"}}, Identity{}, nil)
	assert.Contains(t, p.Warnings[0].Message, `"*" is not a compose project name`)
}

func TestOptionsNormalize(t *testing.T) {
	for _, tc := range []struct {
		in      Options
		prefix  string
		project []string
		err     string
	}{
		{Options{}, "stack-back.", nil, ""},
		{Options{LabelPrefix: "backup"}, "backup.", nil, ""},
		{Options{Projects: []string{"a", "b_2", "a"}}, "stack-back.", []string{"a", "b_2"}, ""},
		{Options{Projects: []string{""}}, "", nil, `"" is not a compose project name`},
		{Options{Projects: []string{"All"}}, "", nil, `"All" is not a compose project name`},
		{Options{Self: SelfOptions{Project: "x y"}}, "", nil, `PLATBACK_PROJECT="x y"`},
	} {
		o, err := tc.in.normalize()
		if tc.err != "" {
			assert.ErrorIs(t, err, ErrInvalidOptions)
			assert.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tc.prefix, o.LabelPrefix)
		assert.Equal(t, tc.project, o.Projects)
	}
}

func TestSelfFromEnv(t *testing.T) {
	env := map[string]string{EnvProject: " shop ", EnvContainer: "backup-1"}
	assert.Equal(t, SelfOptions{Project: "shop", Container: "backup-1"}, SelfFromEnv(func(k string) string { return env[k] }))
}
