package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed/composebed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/worker"
)

// loadCompose is a stack of 50 targets: 11 services with 4 volumes each
// (two of them stopped during their backup), two postgres and three
// mariadb databases, and one "postgres" whose dump fails.
func loadCompose() string {
	var b strings.Builder
	b.WriteString("services:\n")
	var volumes []string
	for i := 1; i <= 11; i++ {
		stop := ""
		if i <= 2 {
			stop = "      stack-back.volumes.stop-during-backup: \"true\"\n"
		}
		fmt.Fprintf(&b, "  svc%d:\n    image: ${APP_IMAGE}\n    entrypoint: [\"sleep\", \"infinity\"]\n    labels:\n      stack-back.volumes: \"true\"\n%s      io.platback.test: ${PLATBACK_TEST_OWNER}\n    volumes:\n", i, stop)
		for v := 1; v <= 4; v++ {
			name := fmt.Sprintf("s%dv%d", i, v)
			volumes = append(volumes, name)
			fmt.Fprintf(&b, "      - %s:/data%d\n", name, v)
		}
	}
	for i := 1; i <= 2; i++ {
		fmt.Fprintf(&b, "  pg%d:\n    image: ${PG_IMAGE}\n    environment: {POSTGRES_USER: app, POSTGRES_PASSWORD: pg-load-pw, POSTGRES_DB: app}\n    labels: {stack-back.postgres: \"true\", io.platback.test: \"${PLATBACK_TEST_OWNER}\"}\n", i)
	}
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "  maria%d:\n    image: ${MARIA_IMAGE}\n    environment: {MARIADB_ROOT_PASSWORD: maria-load-pw, MARIADB_DATABASE: shop}\n    labels: {stack-back.mariadb: \"true\", io.platback.test: \"${PLATBACK_TEST_OWNER}\"}\n", i)
	}
	b.WriteString(`  broken:
    image: ${APP_IMAGE}
    entrypoint: ["sleep", "infinity"]
    environment: {POSTGRES_PASSWORD: x}
    labels: {stack-back.postgres: "true", io.platback.test: "${PLATBACK_TEST_OWNER}"}
  backup:
    image: ${SIDECAR_IMAGE}
    environment:
      RESTIC_REPOSITORY: /restic_data
      RESTIC_PASSWORD: load-password
      CRON_SCHEDULE: "0 3 1 1 *"
      PLATBACK_PARALLEL: "2"
      STOP_TIMEOUT: 1s
      LOG_FORMAT: json
    labels:
      io.platback.test: ${PLATBACK_TEST_OWNER}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - restic_data:/restic_data
      - cache:/cache
volumes:
`)
	for _, v := range append(volumes, "restic_data", "cache") {
		fmt.Fprintf(&b, "  %s: {labels: {io.platback.test: \"${PLATBACK_TEST_OWNER}\"}}\n", v)
	}
	b.WriteString("networks:\n  default: {labels: {io.platback.test: \"${PLATBACK_TEST_OWNER}\"}}\n")
	return b.String()
}

// TestLoad runs 50 targets in one stack: all run to completion with at most
// PLATBACK_PARALLEL workers at once, the failing one does not stop the
// others, and the sidecar's memory stays bounded (its peak is reported).
func TestLoad(t *testing.T) {
	t.Parallel() // a stack of its own; the package runs two at a time
	if testing.Short() {
		t.Skip("runs a 50-target compose stack")
	}
	ctx := context.Background()
	cli := dockerbed.Client(t)
	dbs := dbimage.ForTest(t, cli)
	project := dockerbed.UniqueName("load")
	st := composebed.Up(t, cli, project, loadCompose(), map[string]string{
		"APP_IMAGE": dbs.Base, "PG_IMAGE": dbs.Postgres, "MARIA_IMAGE": dbs.MariaDB, "SIDECAR_IMAGE": buildSidecarImage(t, cli)})
	side := st.Container("backup", 1)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar log:\n%s", containerLogs(t, cli, side))
		}
	})
	for i := 1; i <= 11; i++ {
		sh(t, cli, st.Container(fmt.Sprintf("svc%d", i), 1), "for v in 1 2 3 4; do head -c 200000 /dev/urandom > /data$v/blob && echo svc$v > /data$v/name; done")
	}
	for i := 1; i <= 2; i++ {
		require.NoError(t, dbimage.WaitReady(ctx, cli, st.Container(fmt.Sprintf("pg%d", i), 1), dbimage.Postgres))
	}
	for i := 1; i <= 3; i++ {
		require.NoError(t, dbimage.WaitReady(ctx, cli, st.Container(fmt.Sprintf("maria%d", i), 1), dbimage.MariaDB))
	}

	// Sample the workers running at once while the run goes.
	var most, samples atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			list, err := cli.ContainerList(ctx, client.ContainerListOptions{
				Filters: make(client.Filters).Add("label", worker.SidecarLabel+"="+project+"/backup/1").Add("status", "running")})
			if err == nil {
				samples.Add(1)
				if n := int64(len(list.Items)); n > most.Load() {
					most.Store(n)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	ex, err := cli.ExecCreate(ctx, side, client.ExecCreateOptions{Cmd: []string{"sidecar", "run-once"}, AttachStdout: true, AttachStderr: true})
	require.NoError(t, err)
	att, err := cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	require.NoError(t, err)
	defer att.Close()
	var stdout, stderr strings.Builder
	copied := make(chan struct{})
	go func() { _, _ = stdcopy.StdCopy(&stdout, &stderr, att.Reader); close(copied) }()
	var peakKB atomic.Int64
	go func() {
		for {
			ins, err := cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
			if err != nil || !ins.Running {
				return
			}
			if kb := vmHWM(ins.PID); kb > peakKB.Load() {
				peakKB.Store(kb)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	start := time.Now()
	<-copied
	took := time.Since(start)
	close(stop)
	<-sampled
	ins, err := cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	require.NoError(t, err)
	out := stdout.String()

	t.Logf("50 targets in %s, at most %d workers at once (%d samples), sidecar peak RSS %d KB", took.Round(time.Second), most.Load(), samples.Load(), peakKB.Load())
	assert.Equal(t, 1, ins.ExitCode, "one target failed:\n%s", out)
	assert.Contains(t, out, "FAILED: 50 target(s)")
	assert.Regexp(t, `/databases/broken/all_databases.sql +postgres +.*pg_dumpall`, out)
	snaps := stackSnapshots(t, cli, side)
	assert.Len(t, snaps, 49, "every target but the broken one has its snapshot")
	assert.NotContains(t, snaps, "/databases/broken/all_databases.sql")
	assert.LessOrEqual(t, most.Load(), int64(2), "PLATBACK_PARALLEL=2 bounds the workers")
	assert.Greater(t, most.Load(), int64(1), "two workers did run at once")
	assert.Less(t, peakKB.Load(), int64(100_000), "the sidecar's memory stays bounded")

	code, planOut, planLog := execSplit(t, cli, side, nil, "sidecar", "plan", "--json")
	require.Equal(t, 0, code, planOut+planLog)
	var plan discover.Plan
	require.NoError(t, json.Unmarshal([]byte(planOut), &plan))
	assert.Len(t, plan.Targets, 50)
}

// vmHWM reads a process's peak resident set size in KB from the host's /proc.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
