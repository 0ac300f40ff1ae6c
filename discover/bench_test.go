package discover_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/moby/moby/api/types/mount"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// project200 returns 200 synthetic containers: volumes with include/exclude
// labels, shared volumes, binds, a docker socket, databases, one-offs.
func project200() []discover.Container {
	cs := make([]discover.Container, 0, 200)
	for i := range 200 {
		svc := fmt.Sprintf("svc%03d", i)
		l := map[string]string{
			discover.ComposeProjectLabel: "big", discover.ComposeServiceLabel: svc,
			discover.ComposeOneoffLabel: "False", discover.ComposeContainerNumberLabel: "1",
			lp + "volumes": "true",
		}
		var env []string
		switch i % 10 {
		case 1:
			l[lp+"volumes.exclude"] = "cache"
		case 2:
			l[lp+"volumes.include"] = "data"
		case 3:
			l[lp+"postgres"] = "true"
			env = []string{"POSTGRES_USER=u", "POSTGRES_PASSWORD=p", "POSTGRES_DB=d"}
		case 4:
			l[discover.ComposeOneoffLabel] = "True"
		case 5:
			l[lp+"volumes"] = "maybe"
		}
		cs = append(cs, discover.Container{
			ID: fmt.Sprintf("%064d", i), Name: "big-" + svc + "-1", State: "running", Labels: l, Env: env,
			Mounts: []discover.Mount{
				{Type: "volume", Name: "big_data" + svc, Source: "/var/lib/docker/volumes/big_data" + svc + "/_data", Destination: "/data"},
				{Type: "volume", Name: "big_shared", Source: "/var/lib/docker/volumes/big_shared/_data", Destination: "/shared"},
				{Type: "bind", Source: "/srv/cache/" + svc, Destination: "/cache"},
				{Type: "bind", Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock"},
			},
		})
	}
	return cs
}

// BenchmarkPlan200 measures plan building for a 200-container project
// (without the Docker calls).
func BenchmarkPlan200(b *testing.B) {
	cs := project200()
	self := discover.Identity{ContainerID: "self", Project: "big"}
	b.ReportAllocs()
	for b.Loop() {
		p := discover.BuildPlan(discover.Options{}, self, cs)
		if len(p.Targets) == 0 {
			b.Fatal("empty plan")
		}
	}
}

// BenchmarkPlan200Engine measures Discoverer.Plan — list, inspect of the
// database containers, build — on the real engine for a project of 200
// created (not started) labelled containers sharing a volume, 20 of them
// postgres (inspected for their environment, then skipped). Creating
// them takes a while; it only runs with -bench.
func BenchmarkPlan200Engine(b *testing.B) {
	cli := dockerbed.Client(b)
	project := dockerbed.UniqueName("pbbench")
	vol := project + "_shared"
	dockerbed.Volume(b, cli, vol, map[string]string{discover.ComposeProjectLabel: project})

	specs := make([]dockerbed.ContainerSpec, 200)
	for i := range specs {
		svc := fmt.Sprintf("svc%03d", i)
		l := map[string]string{
			discover.ComposeProjectLabel: project, discover.ComposeServiceLabel: svc,
			discover.ComposeOneoffLabel: "False", discover.ComposeContainerNumberLabel: "1",
			lp + "volumes": "true",
		}
		if i%10 == 3 {
			l[lp+"postgres"] = "true"
		}
		specs[i] = dockerbed.ContainerSpec{
			Name: project + "-" + svc + "-1", Labels: l, Env: []string{"POSTGRES_PASSWORD=p"}, NoStart: true,
			Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/shared"}},
		}
	}
	dockerbed.RunAll(b, cli, specs...)

	d, err := discover.New(cli, discover.Options{IncludeStopped: true, Self: discover.SelfOptions{Project: project, MountInfoPath: "/nonexistent", Hostname: "laptop"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("list+inspect+build", func(b *testing.B) {
		for b.Loop() {
			p, err := d.Plan(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			// One target: the shared volume, backed up once. Skipped: 199
			// "shared with", and 20 dumps that need a running container.
			if len(p.Targets) != 1 || len(p.Skipped) != 199+20 {
				b.Fatalf("plan: %d targets, %d skipped", len(p.Targets), len(p.Skipped))
			}
		}
	})
}
