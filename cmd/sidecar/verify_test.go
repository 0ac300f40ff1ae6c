package main

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/internal/testbed/composebed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

const verifyCompose = `
services:
  app:
    image: ${APP_IMAGE}
    entrypoint: ["sleep", "infinity"]
    labels:
      stack-back.volumes: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - data:/data
  pg:
    image: ${PG_IMAGE}
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: ${PG_PASSWORD}
      POSTGRES_DB: shop
    labels:
      stack-back.postgres: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - pgdata:/var/lib/postgresql/data
  maria:
    image: ${MARIA_IMAGE}
    environment:
      MARIADB_ROOT_PASSWORD: ${PG_PASSWORD}
      MARIADB_DATABASE: shop
    labels:
      stack-back.mariadb: "true"
      io.platback.test: ${PLATBACK_TEST_OWNER}
  tools: # reaches the repository to damage it; not backed up
    image: ${APP_IMAGE}
    entrypoint: ["sleep", "infinity"]
    labels:
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - restic_data:/restic_data
  backup:
    image: ${SIDECAR_IMAGE}
    environment:
      RESTIC_REPOSITORY: /restic_data
      RESTIC_PASSWORD: ${RESTIC_PASSWORD}
      CRON_SCHEDULE: "0 3 1 1 *"
      LOG_FORMAT: json
    labels:
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - restic_data:/restic_data
      - cache:/cache
volumes:
  data: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  pgdata: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  restic_data: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
  cache: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
networks:
  default: {labels: {io.platback.test: "${PLATBACK_TEST_OWNER}"}}
`

// TestVerify runs `sidecar verify` in a compose stack with a volume, a
// postgres and a mariadb holding data: every target passes, naming the
// volume's file count and what each dump holds; each throwaway database
// container has a password of its own (never the app's) and no network; VERIFY_MAX_BYTES
// below the snapshot's size refuses the volume naming both sizes; a pack
// file deleted from the repository fails the volume alone; after every
// drill no scratch volume or throwaway container is left.
//
// How it fails: a drill that skipped the comparison or the load would not
// report the counts; one that copied the app's environment shows its
// password in the inspected config; one that did not clean up leaves
// labelled volumes or containers; one that ignored the damage exits 0.
func TestVerify(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a compose stack")
	}
	ctx := context.Background()
	cli := dockerbed.Client(t)
	dbs := dbimage.ForTest(t, cli)
	sidecarImage := buildSidecarImage(t, cli)
	pgPassword := "shop-pw-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	project := dockerbed.UniqueName("verify")
	st := composebed.Up(t, cli, project, verifyCompose, map[string]string{"APP_IMAGE": dbs.Base, "PG_IMAGE": dbs.Postgres, "MARIA_IMAGE": dbs.MariaDB,
		"SIDECAR_IMAGE": sidecarImage, "PG_PASSWORD": pgPassword, "RESTIC_PASSWORD": "verify-restic-pw"})
	app, pg, side := st.Container("app", 1), st.Container("pg", 1), st.Container("backup", 1)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar log:\n%s", containerLogs(t, cli, side))
		}
	})
	require.NoError(t, dbimage.WaitReady(ctx, cli, pg, dbimage.Postgres))
	maria := st.Container("maria", 1)
	require.NoError(t, dbimage.WaitReady(ctx, cli, maria, dbimage.MariaDB))
	// 20,000 rows over many pages: InnoDB's row estimate is not exact.
	sh(t, cli, maria, `mariadb -uroot -p"$MARIADB_ROOT_PASSWORD" shop -e "CREATE TABLE items(id int primary key); INSERT INTO items VALUES (1),(2),(3),(4); CREATE TABLE tags(t int, pad varchar(300)); `+
		`SET SESSION max_recursive_iterations = 100000; INSERT INTO tags WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) SELECT i, REPEAT('x', 300) FROM n;"`)
	sh(t, cli, app, `head -c 3000000 /dev/urandom > /data/big.bin && echo one > /data/a.txt && mkdir -p /data/sub && echo deep > /data/sub/b.txt`)
	sh(t, cli, pg, `psql -v ON_ERROR_STOP=1 -U shop -d shop -c "CREATE TABLE orders(id int, item text); INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1,500) g;" \
		-c "CREATE TABLE customers(id int); INSERT INTO customers SELECT generate_series(1,7);"`)
	code, out, logs := execSplit(t, cli, side, nil, "sidecar", "run-once")
	require.Equal(t, 0, code, out+logs)

	// This sidecar's drills only: other tests (internal/daemon's scheduled
	// drill, TestSocketProxy) run drills of their own at the same time.
	ownDrills := runner.VerifyLabel + "=" + project + "/backup/1"
	leftovers := func() []string {
		t.Helper()
		f := make(client.Filters).Add("label", ownDrills)
		cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
		require.NoError(t, err)
		vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
		require.NoError(t, err)
		var names []string
		for _, c := range cs.Items {
			names = append(names, "container "+strings.Join(c.Names, ","))
		}
		for _, v := range vs.Items {
			names = append(names, "volume "+v.Name)
		}
		return names
	}
	// Inspect every throwaway container while the drill runs.
	var mu sync.Mutex
	envs := map[string][]string{}
	networks := map[string]string{}
	var throwawayVolumes []string
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watching sync.WaitGroup
	watching.Go(func() {
		for watchCtx.Err() == nil {
			f := make(client.Filters).Add("label", ownDrills)
			if cs, err := cli.ContainerList(watchCtx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
				for _, c := range cs.Items {
					if ins, err := cli.ContainerInspect(watchCtx, c.ID, client.ContainerInspectOptions{}); err == nil {
						mu.Lock()
						envs[c.ID] = ins.Container.Config.Env
						networks[c.ID] = string(ins.Container.HostConfig.NetworkMode)
						for _, m := range ins.Container.Mounts {
							if m.Name != "" && !slices.Contains(throwawayVolumes, m.Name) {
								throwawayVolumes = append(throwawayVolumes, m.Name)
							}
						}
						mu.Unlock()
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	// A scratch volume a killed drill of this sidecar left is removed under
	// the run lock; another sidecar's is not this one's to remove.
	dockerbed.Volume(t, cli, dockerbed.UniqueName("verifyleft"), map[string]string{runner.VerifyLabel: project + "/backup/1"})
	other := dockerbed.Volume(t, cli, dockerbed.UniqueName("verifyother"), map[string]string{runner.VerifyLabel: "other/backup/1"})

	start := time.Now()
	code, out, logs = execSplit(t, cli, side, nil, "sidecar", "verify")
	t.Logf("sidecar verify took %s", time.Since(start).Round(time.Millisecond))
	stopWatch()
	watching.Wait()
	require.Equal(t, 0, code, out+logs)
	assert.Regexp(t, `/volumes/app/data +ok +\w+ +\S+ +3 files, 2 dirs, 3000009 bytes`, out)
	assert.Regexp(t, `/databases/pg/all_databases.sql +ok +\w+ +\S+ +1 databases, 2 tables, 507 rows`, out)
	assert.Regexp(t, `/databases/maria/all_databases.sql +ok +\w+ +\S+ +1 databases, 2 tables, 20004 rows`, out, "exact counts, not InnoDB's estimate")
	assert.Contains(t, out, "restore drill: 3 target(s) passed")
	assert.Empty(t, leftovers(), "the scratch is deleted, and what a killed drill of this sidecar left")
	_, err := cli.VolumeInspect(ctx, other.Name, client.VolumeInspectOptions{})
	assert.NoError(t, err, "another sidecar's scratch volume is kept")
	_, err = cli.VolumeRemove(ctx, other.Name, client.VolumeRemoveOptions{})
	require.NoError(t, err)
	require.Len(t, envs, 2, "a throwaway container per database")
	for id, env := range envs {
		joined := strings.Join(env, "\n")
		assert.NotContains(t, joined, pgPassword, "the app's password is the app's own")
		assert.NotContains(t, joined, "verify-restic-pw")
		assert.Regexp(t, `(?m)^(POSTGRES_PASSWORD|MARIADB_ROOT_PASSWORD)=[0-9a-f]{32}$`, joined, "a random password of its own")
		assert.Equal(t, "none", networks[id])
	}
	require.NotEmpty(t, throwawayVolumes, "the postgres image's data volume")
	for _, v := range throwawayVolumes {
		_, err := cli.VolumeInspect(ctx, v, client.VolumeInspectOptions{})
		assert.Error(t, err, "the throwaway container's volume %s is removed with it", v)
	}

	code, out, logs = execSplit(t, cli, side, nil, "sidecar", "verify", "--json", "--path", "/databases/pg/all_databases.sql")
	require.Equal(t, 0, code, out+logs)
	var results []runner.VerifyResult
	require.NoError(t, json.Unmarshal([]byte(out), &results))
	require.Len(t, results, 1)
	assert.Equal(t, int64(507), results[0].Rows)
	assert.Positive(t, results[0].Age)

	t.Run("VERIFY_MAX_BYTES below the snapshot refuses it", func(t *testing.T) {
		code, out, logs := execSplit(t, cli, side, []string{"VERIFY_MAX_BYTES=1M"}, "sidecar", "verify", "--path", "/volumes/app/data")
		assert.Equal(t, 1, code, out+logs)
		assert.Contains(t, out, "refused: the snapshot holds 3000009 bytes, more than VERIFY_MAX_BYTES=1048576 allows")
		assert.Contains(t, out, "restore drill: 1 of 1 target(s) FAILED")
		code, out, logs = execSplit(t, cli, side, []string{"VERIFY_MAX_BYTES=1k"}, "sidecar", "verify", "--path", "/databases/pg/all_databases.sql")
		assert.Equal(t, 1, code, out+logs)
		assert.Regexp(t, `refused: the dump holds \d+ bytes, more than VERIFY_MAX_BYTES=1024 allows`, out)
		assert.Empty(t, leftovers())
	})

	t.Run("a damaged snapshot fails its target alone", func(t *testing.T) {
		// The largest pack holds the volume's random data.
		sh(t, cli, st.Container("tools", 1), `rm "$(find /restic_data/data -type f -exec ls -S {} + | head -n 1)"`)
		code, out, logs := execSplit(t, cli, side, nil, "sidecar", "verify")
		assert.Equal(t, 1, code, out+logs)
		t.Logf("verify of a damaged repository:\n%s", out)
		assert.Regexp(t, `/volumes/app/data +FAILED`, out)
		assert.Regexp(t, `/databases/pg/all_databases.sql +ok .* 507 rows`, out)
		assert.Contains(t, out, "restore drill: 1 of 3 target(s) FAILED")
		assert.Empty(t, leftovers())
	})
}
