package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/discover"
)

// TestQuickBench runs the bench end to end in its quick mode (one round):
// real compose stacks, MinIO, restic and PostgreSQL. It checks that every
// row of the table was measured, not the ratios (the machine may be busy).
func TestQuickBench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench's compose stacks")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// make bench keeps its data volumes for the next run; a test leaves
	// nothing behind (the quick data is made again in seconds).
	t.Cleanup(func() { removeQuickData(t) })
	rep, err := run(ctx, options{Quick: true, Rounds: 1, Count: true, Progress: testLog{t}})
	require.NoError(t, err)
	require.NotNil(t, rep)
	var out bytes.Buffer
	rep.print(&out)
	t.Log(out.String())

	require.Len(t, rep.cases, 6)
	for _, c := range rep.cases {
		assert.Len(t, c.platback, 1, c.name)
		assert.Len(t, c.restic, 1, c.name)
		for _, d := range append(c.platback, c.restic...) {
			assert.Positive(t, d, c.name)
		}
	}
	table := out.String()
	for _, row := range []string{rowFirst, rowFirstTarget, rowUnchanged, rowUnchangedTgt, rowPostgres, rowPostgresTgt,
		rowIdleRSS, rowRunOnceRSS, rowOwnTime, rowDumpRSS, rowWorkerRSS, rowResticRSS, rowResticDumpRSS, rowWorkers,
		rowCalls + ": first run", rowCalls + ": unchanged run", rowCalls + ": postgres"} {
		assert.Contains(t, table, "| "+row+" |")
	}
	// Every RSS was measured, but for the dump's producer: in quick mode it
	// lives about two seconds and the 100 ms sampler can miss it on a busy
	// machine (seen once in a full make test); the full bench's dump runs
	// for tens of seconds.
	for _, line := range strings.Split(table, "\n") {
		if strings.Contains(line, "not seen") && !strings.HasPrefix(line, "| "+rowDumpRSS+" |") {
			t.Errorf("an RSS was not measured: %s", line)
		}
	}
	if strings.Contains(table, "| "+rowDumpRSS+" | not seen") {
		t.Logf("the dump producer's RSS was not sampled this time (quick mode)")
	}
	assert.Regexp(t, `unchanged run \| \d+ \(sidecar: .*worker: .*backup`, table, "the counting pass saw the worker's restic backup")
}

// removeQuickData removes the quick mode's cached data volumes, unless a
// running bench uses them.
func removeQuickData(t *testing.T) {
	cli, err := discover.NewClient()
	if err != nil {
		t.Errorf("docker: %v", err)
		return
	}
	defer cli.Close()
	ctx := context.Background()
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", cacheLabel)})
	if err != nil {
		t.Errorf("list the bench's data volumes: %v", err)
		return
	}
	for _, v := range vs.Items {
		if !strings.Contains(v.Name, "-quick-") {
			continue
		}
		if _, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{}); err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove %s: %v", v.Name, err)
		}
	}
}

// testLog writes the bench's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestGenerateTreeIsDeterministic: the same scale gives the same files,
// byte for byte, of the sizes asked for.
func TestGenerateTreeIsDeterministic(t *testing.T) {
	s := scale{Name: "tiny", Files: 30, Bytes: 3_000_000, Rows: 10}
	digest := func() (string, int64, int) {
		dir := t.TempDir()
		require.NoError(t, generateTree(dir, s))
		h := sha256.New()
		var total int64
		n := 0
		require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() == markerFile {
				return err
			}
			b, err := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			h.Write([]byte(rel))
			h.Write(b)
			total += int64(len(b))
			n++
			return err
		}))
		return string(h.Sum(nil)), total, n
	}
	d1, total, n := digest()
	d2, _, _ := digest()
	assert.Equal(t, d1, d2)
	assert.Equal(t, s.Bytes, total)
	assert.Equal(t, s.Files, n)
	assert.NotEqual(t, s.recipe(), quickScale.recipe())
}

func TestMedianAndRatios(t *testing.T) {
	assert.Equal(t, 2.0, median([]float64{3, 1, 2}))
	assert.Equal(t, 2.5, median([]float64{4, 1, 2, 3}))
	assert.Equal(t, time.Duration(0), median([]time.Duration(nil)))
	c := &caseResult{platback: []time.Duration{3 * time.Second, 2 * time.Second}, restic: []time.Duration{2 * time.Second, 2 * time.Second},
		goal: goal{maxRatio: 1.10}}
	assert.Equal(t, []float64{1.5, 1}, c.ratios())
	assert.Equal(t, "≤ 1.10×: **missed**", c.verdict()) // median 1.25
	c.goal = goal{maxRatio: 1 / 0.9, throughput: true}
	assert.Equal(t, "≥ 0.90× throughput: 0.80× — **missed**", c.verdict())
}

func TestSummarizeCalls(t *testing.T) {
	assert.Equal(t, "5 (sidecar: version, forget --dry-run; worker: version ×2, backup)",
		summarizeCalls([]string{"worker: version", "sidecar: version", "worker: backup", "sidecar: forget --dry-run", "worker: version"}))
	assert.Equal(t, "0", summarizeCalls(nil))
}
