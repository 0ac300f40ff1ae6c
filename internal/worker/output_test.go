package worker

import (
	"encoding/binary"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A worker whose attached stream does not end when it exits: finish must
// stop the reader before it returns the buffers, or the reader goes on
// writing them while they are read (a data race; run with -race).
func TestOutputFinishStopsTheReader(t *testing.T) {
	pr, pw := io.Pipe()
	var written atomic.Int64
	go func() {
		_ = frame(pw, stdcopy.Stdout, `{"error":"still talking"}`+"\n")
		for {
			if err := frame(pw, stdcopy.Stderr, `{"level":"INFO","msg":"log line"}`+"\n"); err != nil {
				return
			}
			written.Add(1)
		}
	}()
	o := readOutput(pr, slog.New(slog.DiscardHandler), maxResponse, nil)
	resps, tail := o.finish(50*time.Millisecond, func() { _ = pr.Close() })
	require.Len(t, resps, 1)
	assert.Equal(t, "still talking", resps[0].Error)
	assert.Contains(t, tail, "log line")

	after := written.Load()
	time.Sleep(100 * time.Millisecond)
	require.LessOrEqual(t, written.Load(), after+1, "the stream is still being read after finish returned")
	o.lines.Flush() // what finish returned must not change any more
	assert.Equal(t, tail, o.logs.tail())
}

// A stream that ends with the worker is read to its end; each result is
// reported as it arrives, also one split across frames, and the last one
// without a newline.
func TestOutputFinishReadsToTheEnd(t *testing.T) {
	pr, pw := io.Pipe()
	arrived := make(chan Response, 3)
	go func() {
		_ = frame(pw, stdcopy.Stdout, `{"job":0,"summary":{"snapshot_id":"abc"}}`+"\n")
		<-time.After(10 * time.Millisecond)
		_ = frame(pw, stdcopy.Stdout, `{"job":1,"summary":`)
		_ = frame(pw, stdcopy.Stderr, `{"level":"INFO","msg":"between"}`+"\n")
		_ = frame(pw, stdcopy.Stdout, `{"snapshot_id":"def"}}`+"\n")
		_ = frame(pw, stdcopy.Stdout, `{"job":2,"error":"last"}`)
		_ = pw.Close()
	}()
	o := readOutput(pr, slog.New(slog.DiscardHandler), maxResponse, func(r Response) { arrived <- r })
	first := <-arrived
	assert.Equal(t, "abc", first.Summary.SnapshotID, "reported before the stream ended")
	resps, _ := o.finish(time.Minute, func() { t.Error("closed a stream that ended by itself") })
	require.Len(t, resps, 3)
	assert.Equal(t, "def", resps[1].Summary.SnapshotID)
	assert.Equal(t, 1, resps[1].Job)
	assert.Equal(t, "last", resps[2].Error)
}

// frame writes data as one frame of Docker's multiplexed attach stream.
func frame(w io.Writer, stream stdcopy.StdType, data string) error {
	header := make([]byte, 8)
	header[0] = byte(stream)
	binary.BigEndian.PutUint32(header[4:], uint32(len(data)))
	_, err := w.Write(append(header, data...))
	return err
}
