package discover_test

import (
	"context"
	"encoding/json"
	"log"
	"os"

	"github.com/platback/platback/discover"
)

// The sidecar's view: find its own compose project and print the plan.
func ExampleDiscoverer_Plan() {
	cli, err := discover.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	d, err := discover.New(cli, discover.Options{Self: discover.SelfFromEnv(os.Getenv)})
	if err != nil {
		log.Fatal(err)
	}
	plan, err := d.Plan(context.Background())
	if err != nil {
		log.Fatal(err) // e.g. discover.ErrNoProject outside a container: set PLATBACK_PROJECT
	}
	if err := plan.WriteTable(os.Stdout); err != nil {
		log.Fatal(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(plan) // the same plan as JSON
}

// BuildPlan needs no Docker engine: it decides from container data.
func ExampleBuildPlan() {
	labels := func(service string, kv ...string) map[string]string {
		l := map[string]string{discover.ComposeProjectLabel: "shop", discover.ComposeServiceLabel: service}
		for i := 0; i < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	containers := []discover.Container{
		{ID: "c1", Name: "shop-web-1", State: "running",
			Labels: labels("web", "stack-back.volumes", "true", "stack-back.volumes.exclude", "cache"),
			Mounts: []discover.Mount{
				{Type: "volume", Name: "shop_media", Source: "/var/lib/docker/volumes/shop_media/_data", Destination: "/srv/media"},
				{Type: "bind", Source: "/srv/cache", Destination: "/cache"},
			}},
		{ID: "c2", Name: "shop-db-1", State: "running",
			Labels: labels("db", "stack-back.postgres", "True"),
			Env:    []string{"POSTGRES_USER=shop", "POSTGRES_PASSWORD=never-printed"}},
		{ID: "c3", Name: "shop-backup-1", State: "running", Labels: labels("backup")},
	}
	self := discover.Identity{ContainerID: "c3", ContainerName: "shop-backup-1", Project: "shop", FoundBy: discover.FoundByMountInfo}
	plan := discover.BuildPlan(discover.Options{}, self, containers)
	_ = plan.WriteTable(os.Stdout)
	// Output:
	// Projects: shop
	// Sidecar:  shop-backup-1 (c3, found by mountinfo)
	//
	// PROJECT  SERVICE  KIND      SOURCE                 SNAPSHOT PATH                    NOTES
	// shop     web      volume    shop_media             /volumes/web/srv/media           -
	// shop     db       postgres  postgres in shop-db-1  /databases/db/all_databases.sql  pg_dumpall: all databases and roles; credentials from POSTGRES_PASSWORD,POSTGRES_USER
	//
	// Skipped:
	//   shop-backup-1: the backup sidecar itself
	//   shop-web-1 /cache: source contains "cache" from stack-back.volumes.exclude
}
