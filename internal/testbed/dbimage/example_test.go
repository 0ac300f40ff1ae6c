package dbimage_test

import (
	"context"
	"log"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/testbed/dbimage"
)

// A test that needs a PostgreSQL server configured like the official image.
// (Tests call dbimage.ForTest(t, cli) instead of Ensure.)
func ExampleEnsure() {
	ctx := context.Background()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		log.Fatal(err)
	}
	imgs, err := dbimage.Ensure(ctx, cli, dbimage.Options{}) // minutes the first time, then instant
	if err != nil {
		log.Fatal(err)
	}
	c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:  imgs.Postgres,
			Env:    []string{"POSTGRES_USER=app", "POSTGRES_PASSWORD=secret", "POSTGRES_DB=shop"},
			Labels: map[string]string{"stack-back.postgres": "true"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		log.Fatal(err)
	}
	if err := dbimage.WaitReady(ctx, cli, c.ID, dbimage.Postgres); err != nil {
		log.Fatal(err) // the error carries the container's log tail
	}
	// … docker exec pg_dumpall -U app …
}
