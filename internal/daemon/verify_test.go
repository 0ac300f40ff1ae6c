package daemon

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/schedule"
)

// startLabelled starts a container of image in the bed's project as
// service, with labels and env; removed with its volumes at the end.
func startLabelled(t *testing.T, cli *client.Client, image, project, service string, labels map[string]string, env []string, mounts []mount.Mount) string {
	t.Helper()
	l := dockerbed.Labels(map[string]string{discover.ComposeProjectLabel: project, discover.ComposeServiceLabel: service})
	for k, v := range labels {
		l[k] = v
	}
	ctx := context.Background()
	c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: dockerbed.UniqueName(service),
		Config:     &container.Config{Image: image, Env: env, Labels: l, Entrypoint: []string{"sleep", "infinity"}},
		HostConfig: &container.HostConfig{NetworkMode: "none", Mounts: mounts}})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
	_, err = cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{})
	require.NoError(t, err)
	return c.ID
}

// VERIFY_CRON's job against a real repository and Docker: a postgres
// target whose dump is in the repository passes (its rows counted in a
// throwaway container of its image), a volume target with no snapshot
// fails alone: its metric goes to 0 and its failure is counted, one
// notification names it, the cause and the fix, never the app's database
// password; a restarted sidecar replays both results without counting the
// failure again.
//
// How it fails: a drill that stopped at the first failure would not
// count the rows; one that notified per target or on a pass sends more
// than one message; a replay that counted again shows 1.
func TestScheduledVerify(t *testing.T) {
	b := newCheckBed(t, 1)
	cli := dockerbed.Client(t)
	dbs := dbimage.ForTest(t, cli)
	project := b.rn.Config.Project
	const appPassword = "app-db-password-4711"
	// The postgres container's own server is never used: only its image.
	startLabelled(t, cli, dbs.Postgres, project, "pg", map[string]string{"stack-back.postgres": "true"},
		[]string{"POSTGRES_PASSWORD=" + appPassword}, nil)
	vol := dockerbed.Volume(t, cli, dockerbed.UniqueName("verifydata"), nil)
	startLabelled(t, cli, dbs.Base, project, "app", map[string]string{"stack-back.volumes": "true"}, nil,
		[]mount.Mount{{Type: mount.TypeVolume, Source: vol.Name, Target: "/data"}})

	dump := "CREATE TABLE t(x int);\nINSERT INTO t VALUES (1), (2), (3);\nCREATE TABLE u(y int);\n-- PostgreSQL database cluster dump complete\n"
	cmd := exec.Command(b.restic, "--no-cache", "-q", "backup", "--host", project, "--stdin", "--stdin-filename", "/databases/pg/all_databases.sql")
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+b.repo, "RESTIC_PASSWORD="+b.env["RESTIC_PASSWORD"])
	cmd.Stdin = strings.NewReader(dump)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))

	d := b.daemon(t)
	const pgTarget, volTarget = "/databases/pg/all_databases.sql", "/volumes/app/data"
	err = d.scheduledVerify(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 target(s)")
	ok := func(d *daemon, target string) string {
		return metricValue(t, d.m, "platback_verify_last_ok", map[string]string{"target": target})
	}
	assert.Equal(t, "1", ok(d, pgTarget))
	assert.Equal(t, "0", ok(d, volTarget))
	assert.Equal(t, "1", metricValue(t, d.m, "platback_verify_failures_total", map[string]string{"target": volTarget}))
	assert.Empty(t, metricValue(t, d.m, "platback_verify_failures_total", map[string]string{"target": pgTarget}))
	assert.NotEmpty(t, metricValue(t, d.m, "platback_verify_snapshot_age_seconds", map[string]string{"target": pgTarget}))

	st, err := LoadVerifyState(b.cache)
	require.NoError(t, err)
	require.NotNil(t, st.Last)
	require.Len(t, st.Last.Results, 2)
	for _, res := range st.Last.Results {
		if res.Target == pgTarget {
			assert.True(t, res.OK(), res.Error)
			assert.Equal(t, 2, res.Tables)
			assert.Equal(t, int64(3), res.Rows)
		} else {
			assert.Contains(t, res.Error, "no snapshot of /volumes/app/data")
		}
	}

	sent := b.hooks.take()
	require.Len(t, sent, 1, "one notification for the drill")
	assert.Contains(t, sent[0], "restore drill of stack shop FAILED for 1 of 2 target(s)")
	assert.Contains(t, sent[0], "- /volumes/app/data: no snapshot of /volumes/app/data")
	assert.Contains(t, sent[0], "docker exec shop-backup-1 sidecar verify")
	assert.NotContains(t, sent[0], "- "+pgTarget, "the passing target is not listed")
	assert.NotContains(t, sent[0], appPassword)

	// A restarted sidecar replays the drill: gauges, not the counter.
	d = b.daemon(t)
	d.refreshVerify(true)
	assert.Equal(t, "1", ok(d, pgTarget))
	assert.Equal(t, "0", ok(d, volTarget))
	assert.Empty(t, metricValue(t, d.m, "platback_verify_failures_total", map[string]string{"target": volTarget}))
}

// VERIFY_CRON gets its own scheduler, in BACKUP_TZ, after CHECK_CRON's;
// none without it. A daemon that ignored VERIFY_CRON has one scheduler
// too few.
func TestVerifyScheduler(t *testing.T) {
	for _, tt := range []struct {
		check, verify string
		want          int
	}{{"", "", 1}, {"", "0 4 * * SAT", 2}, {"30 3 * * SUN", "0 4 * * SAT", 3}} {
		d := newTestDaemon(t, t.TempDir())
		d.a.Config.Schedule = schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris"}
		d.a.Config.CheckCron, d.a.Config.VerifyCron = tt.check, tt.verify
		scheds, err := d.a.schedulers(d, "shop")
		require.NoError(t, err)
		require.Len(t, scheds, tt.want)
		if tt.verify != "" {
			require.NotNil(t, d.verifySched)
			assert.Equal(t, schedule.Spec{Cron: tt.verify, TZ: "Europe/Paris"}, d.verifySched.Timetable().Spec())
		} else {
			assert.Nil(t, d.verifySched)
		}
	}
}
