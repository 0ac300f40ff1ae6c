package dbengine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/moby/moby/client"

	"github.com/platback/platback/dbengine"
	"github.com/platback/platback/discover"
)

// Dump every database target a discover plan lists to a file: discover says
// what to back up, dbengine dumps it.
func ExampleDump() {
	cli, err := discover.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	d, err := discover.New(cli, discover.Options{Self: discover.SelfFromEnv(os.Getenv)})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	plan, err := d.Plan(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range plan.Targets {
		if t.Database == nil {
			continue
		}
		db := dbengine.Database{Engine: dbengine.Engine(t.Database.Engine), ContainerID: t.Container.ID, ContainerName: t.Container.Name}
		f, err := os.Create(t.Service + ".sql")
		if err != nil {
			log.Fatal(err)
		}
		// The login is read from the container now, never stored.
		if err := dbengine.Dump(ctx, cli, db, f); err != nil {
			log.Fatalf("dump of %s failed, %s is incomplete: %v", t.Service, f.Name(), err)
		}
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
	}
}

// Restore a dump into a new, empty database container.
func ExampleRestore() {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	f, err := os.Open("db.sql")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	db := dbengine.Database{Engine: dbengine.Postgres, ContainerID: "shop-db-1"}
	err = dbengine.Restore(context.Background(), cli, db, f)
	switch {
	case errors.Is(err, dbengine.ErrNotEmpty), errors.Is(err, dbengine.ErrInUse):
		log.Fatalf("refused, nothing was changed: %v", err) // the error says what to do
	case err != nil:
		log.Fatalf("restore failed, part of the dump may be restored: %v", err)
	}
}

// Stream a command's output out of a container, e.g. into restic's stdin.
// The stream only ends with io.EOF when pg_dumpall exited 0.
func ExampleExecStream() {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	db := dbengine.Database{Engine: dbengine.Postgres, ContainerID: "shop-db-1"}
	login, err := dbengine.ReadLogin(ctx, cli, db)
	if err != nil {
		log.Fatal(err)
	}
	dump, _, env, err := dbengine.Commands(db.Engine, login)
	if err != nil {
		log.Fatal(err)
	}
	out, wait, err := dbengine.ExecStream(ctx, cli, db.ContainerID, dump, env)
	if err != nil {
		log.Fatal(err)
	}
	n, copyErr := io.Copy(io.Discard, out) // restic's stdin in real use
	code, stderrTail, err := wait()
	if copyErr != nil || err != nil {
		log.Fatalf("dump failed (status %d): %v\n%s", code, err, stderrTail)
	}
	fmt.Printf("%d bytes\n", n)
}

// The login rules of the official images, and the commands that use it;
// the password travels in the environment, never in a command line.
func ExampleResolveLogin() {
	env := map[string]string{"POSTGRES_USER": "shop", "POSTGRES_PASSWORD_FILE": "/run/secrets/pg"}
	readFile := func(path string) (string, error) { return "s3cret\n", nil } // ReadLogin reads it in the container
	login, err := dbengine.ResolveLogin(dbengine.Postgres, env, readFile)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(login)
	dump, restore, cmdEnv, err := dbengine.Commands(dbengine.Postgres, login)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(dump)
	fmt.Println(restore[0], restore[1], restore[2])
	fmt.Println(len(cmdEnv), "variable")
	// Output:
	// user="shop" password=*** database="shop"
	// [pg_dumpall --username shop]
	// psql --username shop
	// 1 variable
}

// What planning needs to know about an engine, from a container's
// environment alone.
func ExampleEngine() {
	env := map[string]string{"MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/root", "MARIADB_DATABASE": "shop"}
	e := dbengine.MariaDB
	fmt.Println("data:", e.DataDirs(env))
	fmt.Println("credentials from:", e.CredentialEnv(env))
	fmt.Println("can log in:", e.HasLogin(env), "- needs one of", len(e.LoginEnv()), "variables")
	fmt.Println("a dump holds:", e.DumpContents())
	fmt.Println(dbengine.Postgres.DataDirs(map[string]string{"PGDATA": "/pgdata/"}))
	// Output:
	// data: [/var/lib/mysql]
	// credentials from: [MARIADB_ROOT_PASSWORD_FILE]
	// can log in: true - needs one of 6 variables
	// a dump holds: all databases
	// [/pgdata /var/lib/postgresql/data /var/lib/postgresql]
}
