package discover

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDependsOn(t *testing.T) {
	for in, want := range map[string][]string{
		"": nil,
		"postgres:service_started:false,redis:service_healthy:true": {"postgres", "redis"},
		"redis:service_healthy:true,postgres:service_started:false": {"postgres", "redis"},
		"db,cache": {"cache", "db"}, // older Compose v2: names only
		" db:service_started:false , ,db:x:true,:a:b": {"db"},
	} {
		assert.Equal(t, want, parseDependsOn(in), "%q", in)
	}
}

func TestRefDependsOn(t *testing.T) {
	app := ctr("a", "app", map[string]string{lp + "volumes.stop-during-backup": "true",
		ComposeDependsOnLabel: "redis:service_healthy:true,db:service_started:false"}, vol("a_data", "/data"))
	ref := app.ref()
	assert.Equal(t, []string{"db", "redis"}, ref.DependsOn)
	p := BuildPlan(Options{}, selfA(), []Container{app})
	require.Len(t, p.StopDuringBackup, 1)
	assert.Equal(t, ref, p.StopDuringBackup[0])

	js, err := json.Marshal(ref)
	require.NoError(t, err)
	assert.Contains(t, string(js), `"depends_on":["db","redis"]`)
	js, err = json.Marshal(ctr("a", "x", map[string]string{ComposeDependsOnLabel: ""}).ref())
	require.NoError(t, err)
	assert.NotContains(t, string(js), "depends_on", "Compose v1 and no depends_on: omitted")
}

func TestStartOrder(t *testing.T) {
	// c makes a container of project "p"; name is the service plus "-1",
	// or the given name for replicas.
	c := func(service string, deps ...string) ContainerRef {
		return ContainerRef{ID: "id-" + service, Name: service + "-1", Project: "p", Service: service, DependsOn: deps}
	}
	replica := func(ref ContainerRef, n string) ContainerRef {
		ref.Name, ref.ID = ref.Service+"-"+n, "id-"+ref.Service+"-"+n
		return ref
	}
	inProject := func(project string, ref ContainerRef) ContainerRef {
		ref.Project, ref.Name, ref.ID = project, project+"-"+ref.Name, project+"-"+ref.ID
		return ref
	}
	for _, tc := range []struct {
		name string
		in   []ContainerRef
		want []string // names
	}{
		{"empty", nil, []string{}},
		{"no dependencies: by service, then name", []ContainerRef{c("web"), c("app"), replica(c("app"), "2"), c("db")},
			[]string{"app-1", "app-2", "db-1", "web-1"}},
		{"chain", []ContainerRef{c("a", "b"), c("b", "c"), c("c")},
			[]string{"c-1", "b-1", "a-1"}},
		{"diamond", []ContainerRef{c("a", "m", "n"), c("m", "z"), c("n", "z"), c("z")},
			[]string{"z-1", "m-1", "n-1", "a-1"}},
		{"only what waits moves", []ContainerRef{c("app", "db"), c("db"), c("cache"), c("zzz")},
			[]string{"cache-1", "db-1", "app-1", "zzz-1"}},
		{"unknown and self dependencies are ignored", []ContainerRef{c("b", "external"), c("a", "a", "gone")},
			[]string{"a-1", "b-1"}},
		{"replicas of one service start together after their dependency",
			[]ContainerRef{replica(c("worker", "api"), "2"), c("worker", "api"), replica(c("api", "db"), "2"), c("api", "db"), c("db")},
			[]string{"db-1", "api-1", "api-2", "worker-1", "worker-2"}},
		{"a replica's dependency counts for its service",
			[]ContainerRef{c("a"), replica(c("a", "b"), "2"), c("b")},
			[]string{"b-1", "a-1", "a-2"}},
		{"two-cycle broken at its first service", []ContainerRef{c("b", "a"), c("a", "b"), c("c", "a")},
			[]string{"a-1", "b-1", "c-1"}},
		{"three-cycle: the rest keeps its order", []ContainerRef{c("a", "b"), c("b", "c"), c("c", "a")},
			[]string{"a-1", "c-1", "b-1"}},
		{"a cycle waits for its own dependencies", []ContainerRef{c("a", "b", "db"), c("b", "a", "db"), c("db")},
			[]string{"db-1", "a-1", "b-1"}},
		{"a service waiting for a cycle is not taken for part of it", []ContainerRef{c("a", "y"), c("y", "z"), c("z", "y")},
			[]string{"y-1", "a-1", "z-1"}},
		{"a cycle reached through a started service", []ContainerRef{c("a", "b"), c("b", "c"), c("c", "d"), c("d", "c", "a")},
			[]string{"a-1", "c-1", "b-1", "d-1"}},
		{"dependencies stay within a project",
			[]ContainerRef{inProject("p1", c("app", "db")), inProject("p1", c("db")), inProject("p2", c("app")), inProject("p2", c("db", "app"))},
			[]string{"p2-app-1", "p1-db-1", "p1-app-1", "p2-db-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]ContainerRef(nil), tc.in...)
			got := StartOrder(tc.in)
			names := []string{}
			for _, r := range got {
				names = append(names, r.Name)
			}
			assert.Equal(t, tc.want, names)
			assert.ElementsMatch(t, in, got, "nobody dropped or changed")
			assert.Equal(t, in, tc.in, "the input is not modified")
			assert.Equal(t, got, StartOrder(got), "the order is a fixed point")
		})
	}
}
