package discover_test

import (
	"fmt"

	"github.com/platback/platback/discover"
)

// Containers stopped during a backup are restarted in dependency order
// (compose's depends_on) and stopped in the reverse order.
func ExampleStartOrder() {
	stopped := []discover.ContainerRef{
		{ID: "c1", Name: "shop-web-1", Project: "shop", Service: "web", DependsOn: []string{"api"}},
		{ID: "c2", Name: "shop-api-1", Project: "shop", Service: "api", DependsOn: []string{"db"}},
		{ID: "c3", Name: "shop-db-1", Project: "shop", Service: "db"},
		{ID: "c4", Name: "shop-worker-1", Project: "shop", Service: "worker", DependsOn: []string{"db"}},
	}
	for _, c := range discover.StartOrder(stopped) {
		fmt.Println(c.Name)
	}
	// Output:
	// shop-db-1
	// shop-api-1
	// shop-web-1
	// shop-worker-1
}

// A label value that is not understood is never silently ignored: the plan
// carries a warning naming the container and the label.
func ExampleBuildPlan_warnings() {
	containers := []discover.Container{
		{ID: "c1", Name: "shop-web-1", State: "running", Labels: map[string]string{
			discover.ComposeProjectLabel: "shop", discover.ComposeServiceLabel: "web",
			"stack-back.volumes": "yes please",
		}, Mounts: []discover.Mount{{Type: "volume", Name: "shop_media", Source: "/var/lib/docker/volumes/shop_media/_data", Destination: "/srv/media"}}},
	}
	self := discover.Identity{ContainerID: "c9", ContainerName: "shop-backup-1", Project: "shop", FoundBy: discover.FoundByMountInfo}
	plan := discover.BuildPlan(discover.Options{}, self, containers)
	for _, w := range plan.Warnings {
		if w.Label != "" { // the other warning says the plan is empty, and why
			fmt.Println(w)
		}
	}
	fmt.Println("targets:", len(plan.Targets), "empty:", plan.Empty())
	// Output:
	// container shop-web-1: label stack-back.volumes="yes please": not a boolean: use true or false (1/0 and any case work too); the label is ignored
	// targets: 0 empty: true
}

// The project and container can be named in the environment when the
// sidecar cannot find its own container (outside Docker, in tests).
func ExampleSelfFromEnv() {
	env := map[string]string{discover.EnvProject: "mattermost"}
	self := discover.SelfFromEnv(func(k string) string { return env[k] })
	fmt.Printf("project %q, container %q\n", self.Project, self.Container)
	// Output:
	// project "mattermost", container ""
}
