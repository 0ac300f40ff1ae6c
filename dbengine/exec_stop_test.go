package dbengine_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/dbengine"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// A dump the sidecar gives up on (cancelled, or its output closed) must not
// run on inside the database container: it is stopped with its children.
func TestExecStreamStopsWhatItGivesUp(t *testing.T) {
	cli := dockerbed.Client(t)
	img := dbimage.ForTest(t, cli).Base
	ctx := context.Background()
	c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: img, Entrypoint: []string{"sleep", "infinity"},
		Labels: dockerbed.Labels(nil)}})
	require.NoError(t, err)
	t.Cleanup(func() { dockerbed.Remove(t, cli, c.ID) })
	_, err = cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{})
	require.NoError(t, err)

	// A "dump" whose child does the slow part, as pg_dumpall runs pg_dump.
	slowDump := []string{"sh", "-c", "echo header; sleep 313 & wait"}
	left := func() int {
		r := dockerbed.Exec(t, cli, c.ID, "sh", "-c", `n=0; for f in /proc/[0-9]*/cmdline; do case "$(tr '\0' ' ' < "$f" 2>/dev/null)" in "sleep 313 ") n=$((n+1));; esac; done; echo $n`)
		return atoiOr(strings.TrimSpace(r.Stdout))
	}

	for name, giveUp := range map[string]func(cancel context.CancelFunc, out io.ReadCloser){
		"cancelled":     func(cancel context.CancelFunc, _ io.ReadCloser) { cancel() },
		"output closed": func(_ context.CancelFunc, out io.ReadCloser) { out.Close() },
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			out, wait, err := dbengine.ExecStream(ctx, cli, c.ID, slowDump, nil)
			require.NoError(t, err)
			buf := make([]byte, 7)
			_, err = io.ReadFull(out, buf)
			require.NoError(t, err)
			assert.Equal(t, "header\n", string(buf))
			require.Equal(t, 1, left(), "the dump runs")
			giveUp(cancel, out)
			_, _, err = wait()
			require.Error(t, err)
			assert.Eventually(t, func() bool { return left() == 0 }, 10*time.Second, 200*time.Millisecond,
				"the dump and its child were stopped")
		})
	}

	t.Run("a dump that ends by itself is left alone", func(t *testing.T) {
		out, wait, err := dbengine.ExecStream(ctx, cli, c.ID, []string{"sh", "-c", "echo done; echo warning >&2"}, nil)
		require.NoError(t, err)
		b, err := io.ReadAll(out)
		require.NoError(t, err)
		assert.Equal(t, "done\n", string(b))
		code, tail, err := wait()
		require.NoError(t, err)
		assert.Equal(t, 0, code)
		assert.Equal(t, "warning\n", tail, "the wrapper's own line is not in the command's stderr")
	})
}

func atoiOr(s string) int {
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return -1
		}
		n = n*10 + int(r-'0')
	}
	return n
}
