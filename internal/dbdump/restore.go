package dbdump

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/platback/platback/discover"
)

// Restore pipes a dump from r into the database container's client
// (psql or mariadb/mysql). It returns the client's error output when it
// exits non-zero.
func Restore(ctx context.Context, cli *client.Client, d *discover.Discoverer, t discover.Target, r io.Reader) error {
	_, cmd, env, err := commandsNow(ctx, d, t)
	if err != nil {
		return err
	}
	ex, err := cli.ExecCreate(ctx, t.Container.ID, client.ExecCreateOptions{
		Cmd: cmd, Env: env, AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return fmt.Errorf("restore into %s: %w", t.Container.Name, err)
	}
	att, err := cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("restore into %s: %w", t.Container.Name, err)
	}
	defer att.Close()
	stop := context.AfterFunc(ctx, att.Close)
	defer stop()

	var out bytes.Buffer
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(&tailWriter{b: &out}, &tailWriter{b: &out}, att.Reader)
		copied <- err
	}()
	_, werr := io.Copy(att.Conn, r)
	_ = att.CloseWrite()
	<-copied
	if werr != nil {
		return fmt.Errorf("send the dump to %s in %s: %w", cmd[0], t.Container.Name, werr)
	}
	for {
		ins, err := cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			return fmt.Errorf("restore into %s: %w", t.Container.Name, err)
		}
		if !ins.Running {
			if ins.ExitCode != 0 {
				return fmt.Errorf("%s in %s exited with status %d: %s", cmd[0], t.Container.Name, ins.ExitCode, strings.TrimSpace(out.String()))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tailWriter keeps the last 4 KiB written to b.
type tailWriter struct{ b *bytes.Buffer }

func (w *tailWriter) Write(p []byte) (int, error) {
	w.b.Write(p)
	if w.b.Len() > 4<<10 {
		rest := append([]byte(nil), w.b.Bytes()[w.b.Len()-4<<10:]...)
		w.b.Reset()
		w.b.Write(rest)
	}
	return len(p), nil
}
