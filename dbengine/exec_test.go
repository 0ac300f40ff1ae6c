package dbengine_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/dbengine"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// execBed starts one helper container for the exec tests.
func execBed(t *testing.T) (*client.Client, string) {
	cli := dockerbed.Client(t)
	c := dockerbed.Run(t, cli, dockerbed.ContainerSpec{})
	return cli, c.ID
}

func TestExecStream(t *testing.T) {
	cli, id := execBed(t)

	t.Run("200 MB in constant memory, complete and in order", func(t *testing.T) {
		const size = 200_000_000
		want := strings.TrimSpace(dockerbed.Exec(t, cli, id, dockerbed.Helper("gensum=200000000")...).Stdout)
		require.Len(t, want, 64)

		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var peak atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var m runtime.MemStats
			for {
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()

		out, wait, err := dbengine.ExecStream(t.Context(), cli, id, dockerbed.Helper("gen=200000000", "stderr=done"), nil)
		require.NoError(t, err)
		h := sha256.New()
		n, err := io.Copy(h, out)
		close(stop)
		<-sampled
		require.NoError(t, err, "io.EOF only after a zero exit")
		require.NoError(t, out.Close())
		code, tail, err := wait()
		require.NoError(t, err)
		assert.Equal(t, 0, code)
		assert.Equal(t, "done\n", tail, "stderr is demultiplexed from stdout")
		assert.Equal(t, int64(size), n)
		assert.Equal(t, want, hex.EncodeToString(h.Sum(nil)))

		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		allocated := after.TotalAlloc - before.TotalAlloc
		t.Logf("streamed %d MB: allocated %.1f MB in total, heap in use peaked at %.1f MB (%.1f MB before)",
			n/1e6, float64(allocated)/1e6, float64(peak.Load())/1e6, float64(before.HeapInuse)/1e6)
		assert.Less(t, allocated, uint64(64<<20), "streaming must not allocate in proportion to the size")
		assert.Less(t, peak.Load()-min(peak.Load(), before.HeapInuse), uint64(64<<20), "heap growth while streaming")
	})

	t.Run("non-zero exit: code, stderr tail, and the stream ends in error", func(t *testing.T) {
		out, wait, err := dbengine.ExecStream(t.Context(), cli, id,
			dockerbed.Helper("echo=partial dump", "stderrgen=20000", "stderr=FATAL: no such database", "exit=3"), nil)
		require.NoError(t, err)
		got, err := io.ReadAll(out)
		assert.Equal(t, "partial dump\n", string(got))
		var exit *dbengine.ExitError
		require.ErrorAs(t, err, &exit, "a reader must not see io.EOF after a failed command")
		assert.Equal(t, 3, exit.Code)

		code, tail, werr := wait()
		assert.Equal(t, 3, code)
		assert.ErrorAs(t, werr, &exit)
		assert.True(t, strings.HasSuffix(tail, "FATAL: no such database\n"), "tail ends with the last line: %q", tail)
		assert.True(t, strings.HasPrefix(tail, "…stderr line "), "tail was cut at a line: %q", tail[:40])
		assert.LessOrEqual(t, len(tail), dbengine.StderrTailSize+len("…"))
		assert.Contains(t, werr.Error(), "exited with status 3: …stderr line")
	})

	t.Run("environment", func(t *testing.T) {
		out, wait, err := dbengine.ExecStream(t.Context(), cli, id, dockerbed.Helper("getenv=PGPASSWORD"), []string{"PGPASSWORD=from-exec"})
		require.NoError(t, err)
		got, err := io.ReadAll(out)
		require.NoError(t, err)
		assert.Equal(t, "from-exec\n", string(got))
		_, _, err = wait()
		assert.NoError(t, err)
	})

	t.Run("context cancel ends an endless stream promptly", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		out, wait, err := dbengine.ExecStream(ctx, cli, id, dockerbed.Helper("gen=1000000000000"), nil)
		require.NoError(t, err)
		_, err = io.ReadFull(out, make([]byte, 1<<20))
		require.NoError(t, err)
		cancel()
		done := make(chan error, 1)
		go func() { _, err := io.Copy(io.Discard, out); done <- err }()
		select {
		case err := <-done:
			assert.ErrorIs(t, err, context.Canceled)
		case <-time.After(30 * time.Second):
			t.Fatal("the stream did not end after its context was cancelled")
		}
		code, _, err := wait()
		assert.Equal(t, -1, code)
		assert.ErrorIs(t, err, context.Canceled)
	})

	t.Run("closing early is reported by wait", func(t *testing.T) {
		out, wait, err := dbengine.ExecStream(t.Context(), cli, id, dockerbed.Helper("gen=1000000000000"), nil)
		require.NoError(t, err)
		_, err = io.ReadFull(out, make([]byte, 1<<16))
		require.NoError(t, err)
		require.NoError(t, out.Close())
		_, _, err = wait()
		assert.ErrorContains(t, err, "output closed by the reader before the end")
	})

	t.Run("unknown container", func(t *testing.T) {
		_, _, err := dbengine.ExecStream(t.Context(), cli, "pbtest-no-such-container", []string{"true"}, nil)
		assert.ErrorContains(t, err, "pbtest-no-such-container")
	})

	t.Run("missing program", func(t *testing.T) {
		out, wait, err := dbengine.ExecStream(t.Context(), cli, id, []string{"/bin/pg_dump"}, nil)
		require.NoError(t, err)
		_, err = io.ReadAll(out)
		assert.Error(t, err)
		code, _, werr := wait()
		assert.Equal(t, 126, code, "the engine reports a command it cannot start as 126")
		assert.True(t, errors.As(werr, new(*dbengine.ExitError)), "%v", werr)
		assert.ErrorContains(t, werr, "/bin/pg_dump: no such file or directory", "the runtime's reason (sent on stdout) is in the error")
	})
}
