package doctor

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/schedule"
)

func TestReportVerdict(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rep     Report
		ok      bool
		summary string
	}{
		{"empty", nil, true, "0 pass, 0 warn, 0 fail, 0 skip: OK"},
		{"warnings and skips pass", Report{{Status: Pass}, {Status: Warn}, {Status: Skip}}, true, "1 pass, 1 warn, 0 fail, 1 skip: OK"},
		{"one failure fails", Report{{Status: Pass}, {Status: Fail}, {Status: Skip}}, false, "1 pass, 0 warn, 1 fail, 1 skip: FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.ok, tc.rep.OK())
			assert.Equal(t, tc.summary, tc.rep.Summary())
		})
	}
}

func TestWriteTable(t *testing.T) {
	rep := Report{
		{Name: "docker", Status: Pass, Detail: "Docker Engine 28.1"},
		{Name: "s3 lifecycle", Status: Fail, Detail: "rule \"x\"\nexpires\tobjects", Fix: "remove it"},
		{Name: "snapshots", Status: Skip, Detail: "needs the repository"},
	}
	var b bytes.Buffer
	require.NoError(t, rep.WriteTable(&b))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 5, b.String())
	assert.Regexp(t, `^STATUS +CHECK +DETAIL +FIX$`, lines[0])
	assert.Regexp(t, `^PASS +docker +Docker Engine 28.1 +-$`, lines[1])
	assert.Regexp(t, `^FAIL +s3 lifecycle +rule "x" expires objects +remove it$`, lines[2], "a detail stays on its line and in its column")
	assert.Regexp(t, `^SKIP +snapshots +needs the repository +-$`, lines[3])
	assert.Equal(t, "1 pass, 0 warn, 1 fail, 1 skip: FAILED", lines[4])
}

func TestSnapshotAge(t *testing.T) {
	tt, err := schedule.ParseSpec(schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"})
	require.NoError(t, err)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) // last run 1 Dec 02:00, the one before 30 Nov 02:00
	snap := func(at time.Time) *backup.Snapshot { return &backup.Snapshot{ShortID: "abcd1234", Time: at} }
	for _, tc := range []struct {
		name   string
		last   *backup.Snapshot
		tt     *schedule.Timetable
		status Status
		detail string
	}{
		{"none yet", nil, tt, Warn, "no snapshot yet"},
		{"from the last run", snap(now.Add(-9*time.Hour - 50*time.Minute)), tt, Pass, "newest abcd1234, 9h50m0s ago"},
		{"missed the last run", snap(time.Date(2026, 11, 30, 2, 5, 0, 0, time.UTC)), tt, Warn, "none since the last scheduled run (2026-12-01T02:00:00Z)"},
		{"missed two runs", snap(time.Date(2026, 11, 29, 2, 5, 0, 0, time.UTC)), tt, Fail, "no snapshot since the last two scheduled runs"},
		{"no schedule: age only", snap(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), nil, Pass, "newest abcd1234"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := snapshotCheck("/volumes/app/data", tc.last, tc.tt, now)
			assert.Equal(t, "snapshot /volumes/app/data", c.Name)
			assert.Equal(t, tc.status, c.Status, c.Detail)
			assert.Contains(t, c.Detail, tc.detail)
			assert.Equal(t, c.Status == Pass, c.Fix == "", "a fix exactly when something is wrong")
		})
	}
}

func TestIsSidecar(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    container.Summary
		want bool
	}{
		{"the image's default command", container.Summary{Image: "platback/sidecar:latest", Command: "/usr/local/bin/sidecar run"}, true},
		{"run with flags, another image name", container.Summary{Image: "registry.local/backup:1", Command: "/usr/local/bin/sidecar run --check-retry 1s"}, true},
		{"the platback image, default command", container.Summary{Image: "platback/sidecar:dev", Command: "sidecar"}, true},
		{"a worker", container.Summary{Image: "platback/sidecar", Command: "/usr/local/bin/sidecar worker", Labels: map[string]string{"io.platback.worker": "1"}}, false},
		{"a worker without its label", container.Summary{Image: "platback/sidecar", Command: "/usr/local/bin/sidecar worker"}, false},
		{"a one-off restore", container.Summary{Image: "platback/sidecar", Command: "/usr/local/bin/sidecar restore --path /x"}, false},
		{"anything else", container.Summary{Image: "postgres:17", Command: "docker-entrypoint.sh postgres"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, IsSidecar(tc.c)) })
	}
}

func TestSidecarSchedule(t *testing.T) {
	labels := map[string]string{"com.docker.compose.project": "shop"}
	spec, err := SidecarSchedule([]string{"PATH=/bin", "RESTIC_PASSWORD=secret", "CRON_SCHEDULE=0 3 * * *", "TZ=Europe/Paris", "BACKUP_STAGGER=20m"}, labels)
	require.NoError(t, err)
	assert.Equal(t, schedule.Spec{Cron: "0 3 * * *", TZ: "Europe/Paris", Stagger: 20 * time.Minute, Name: "shop"}, spec)

	spec, err = SidecarSchedule([]string{"BACKUP_CRON=@daily", "CRON_SCHEDULE=0 3 * * *", "PLATBACK_PROJECT=other"}, labels)
	require.NoError(t, err)
	assert.Equal(t, schedule.Spec{Cron: "@daily", TZ: "UTC", Name: "other"}, spec, "BACKUP_CRON wins, as in the sidecar")

	spec, err = SidecarSchedule(nil, labels)
	require.NoError(t, err)
	assert.Equal(t, "0 2 * * *", spec.Cron, "the sidecar's default")

	_, err = SidecarSchedule([]string{"BACKUP_STAGGER=soon"}, labels)
	assert.ErrorContains(t, err, `BACKUP_STAGGER="soon"`)
}

func TestFirstCollision(t *testing.T) {
	from := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tt := func(cron, name string, stagger time.Duration) *schedule.Timetable {
		t.Helper()
		x, err := schedule.ParseSpec(schedule.Spec{Cron: cron, TZ: "UTC", Name: name, Stagger: stagger})
		require.NoError(t, err)
		return x
	}
	day := time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name         string
		ours, theirs *schedule.Timetable
		want         *Collision
	}{
		{"same cron", tt("0 2 * * *", "a", 0), tt("0 2 * * *", "b", 0), &Collision{day, day}},
		{"4 minutes apart", tt("0 2 * * *", "a", 0), tt("4 2 * * *", "b", 0), &Collision{day, day.Add(4 * time.Minute)}},
		{"theirs 4 minutes before", tt("4 2 * * *", "a", 0), tt("0 2 * * *", "b", 0), &Collision{day.Add(4 * time.Minute), day}},
		{"5 minutes apart is enough", tt("0 2 * * *", "a", 0), tt("5 2 * * *", "b", 0), nil},
		{"different days never meet", tt("0 2 * * MON", "a", 0), tt("0 2 * * TUE", "b", 0), nil},
		{"hourly meets daily", tt("@hourly", "a", 0), tt("2 2 * * *", "b", 0), &Collision{day, day.Add(2 * time.Minute)}},
		// StaggerOffset("mattermost", 20m) = 15m51s, ("n8n", 20m) = 11m27s: 4m24s apart.
		{"staggered, close offsets", tt("0 2 * * *", "mattermost", 20*time.Minute), tt("0 2 * * *", "n8n", 20*time.Minute),
			&Collision{day.Add(15*time.Minute + 51*time.Second), day.Add(11*time.Minute + 27*time.Second)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := FirstCollision(tc.ours, tc.theirs, from, CollisionHorizon, DefaultCollisionWindow)
			if tc.want == nil {
				assert.False(t, ok, "collision %v", got)
				return
			}
			require.True(t, ok)
			assert.True(t, tc.want.Ours.Equal(got.Ours), "ours %s, want %s", got.Ours, tc.want.Ours)
			assert.True(t, tc.want.Theirs.Equal(got.Theirs), "theirs %s, want %s", got.Theirs, tc.want.Theirs)
		})
	}
}
