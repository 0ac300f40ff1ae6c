package dockerproxy_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/testbed/dockerproxy"
)

// proxied returns a Docker client that goes through p.
func proxied(t *testing.T, p *dockerproxy.Proxy) *client.Client {
	t.Helper()
	cli, err := client.New(client.WithHost(p.DockerHost()))
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestThroughTheEngine drives the calls a sidecar makes through the proxy:
// a container attached with stdin before it starts (a hijack that is
// half-closed and read to its end), its wait (a stream), exec with stdin,
// events; and checks what was recorded.
func TestThroughTheEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Docker Engine")
	}
	ctx := context.Background()
	direct := dockerbed.Client(t)
	img := dockerbed.HelperImage(t, direct)
	p := dockerproxy.Start(t, dockerproxy.Options{})
	cli := proxied(t, p)

	events := cli.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).
		Add("type", "container").Add("event", "create").Add("label", "io.platback.test="+dockerbed.Owner())})

	// A worker-like container: stdin attached before start, the input
	// echoed back, stdin closed, the output read to its end.
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: img, Cmd: dockerbed.Helper("cat=/dev/stdin", "stderr=done"), Env: []string{"SECRET=not-recorded"},
			OpenStdin: true, StdinOnce: true, AttachStdin: true, AttachStdout: true, AttachStderr: true, Labels: dockerbed.Labels(nil)},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { dockerbed.Remove(t, direct, created.ID) })
	att, err := cli.ContainerAttach(ctx, created.ID, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	require.NoError(t, err)
	defer att.Close()
	wait := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	_, err = cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{})
	require.NoError(t, err)
	input := bytes.Repeat([]byte("through the proxy\n"), 20000) // 360 kB, more than any buffer
	_, err = att.Conn.Write(input)
	require.NoError(t, err)
	require.NoError(t, att.CloseWrite())
	var stdout, stderr bytes.Buffer
	_, err = stdcopy.StdCopy(&stdout, &stderr, att.Reader)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(input, stdout.Bytes()), "stdin came back whole (%d of %d bytes)", stdout.Len(), len(input))
	assert.Equal(t, "done\n", stderr.String())
	select {
	case res := <-wait.Result:
		assert.Equal(t, int64(0), res.StatusCode)
	case err := <-wait.Error:
		t.Fatal(err)
	case <-time.After(time.Minute):
		t.Fatal("no exit from the wait stream")
	}

	select {
	case m := <-events.Messages:
		assert.Equal(t, created.ID, m.Actor.ID)
	case err := <-events.Err:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("no event from the events stream")
	}

	// exec with stdin, half-closed, in a running container.
	sleeper := dockerbed.Run(t, direct, dockerbed.ContainerSpec{NetworkMode: "none"})
	r, err := dockerbed.TryExec(ctx, cli, sleeper.ID, dockerbed.ExecOptions{Stdin: "exec stdin\n"}, dockerbed.Helper("cat=/dev/stdin", "exit=3")...)
	require.NoError(t, err)
	assert.Equal(t, "exec stdin\n", r.Stdout)
	assert.Equal(t, 3, r.ExitCode)

	_, err = cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
	require.NoError(t, err)

	var calls []string
	for _, e := range p.Calls() {
		calls = append(calls, e.String())
	}
	assert.Equal(t, []string{
		"POST /containers/create",
		"DELETE /containers/{id}",
		"POST /containers/{id}/attach",
		"POST /containers/{id}/exec",
		"POST /containers/{id}/start",
		"POST /containers/{id}/wait",
		"GET /events",
		"GET /exec/{id}/json",
		"POST /exec/{id}/start",
	}, withoutPing(calls))
	for _, c := range p.Log() {
		switch c.Endpoint.Path {
		case "/containers/{id}/attach", "/exec/{id}/start":
			assert.Equal(t, 101, c.Status, "%s is a protocol switch", c.URL)
		}
	}
	creates := p.Creates()
	require.Len(t, creates, 1)
	assert.Equal(t, img, creates[0].Image)
	assert.Equal(t, []string{"SECRET"}, creates[0].EnvNames, "only the names of variables are kept")
	assert.True(t, creates[0].OpenStdin)
	assert.Equal(t, "none", creates[0].NetworkMode)
	assert.Empty(t, p.Denied())
}

// withoutPing drops the version negotiation, which the client makes with
// HEAD or GET depending on the engine.
func withoutPing(calls []string) []string {
	var out []string
	for _, c := range calls {
		if c != "HEAD /_ping" && c != "GET /_ping" {
			out = append(out, c)
		}
	}
	return out
}

// TestAllowlistEnforced: an endpoint off the list is answered 403 with the
// engine's error shape, never reaches the engine, and is reported.
func TestAllowlistEnforced(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Docker Engine")
	}
	ctx := context.Background()
	direct := dockerbed.Client(t)
	sleeper := dockerbed.Run(t, direct, dockerbed.ContainerSpec{NetworkMode: "none"})
	p := dockerproxy.Start(t, dockerproxy.Options{Allow: []dockerproxy.Endpoint{
		{Method: "HEAD", Path: "/_ping"}, {Method: "GET", Path: "/_ping"}, {Method: "GET", Path: "/containers/json"},
	}})
	cli := proxied(t, p)

	list, err := cli.ContainerList(ctx, client.ContainerListOptions{Filters: make(client.Filters).Add("id", sleeper.ID)})
	require.NoError(t, err)
	assert.Len(t, list.Items, 1)

	_, err = cli.ContainerInspect(ctx, sleeper.ID, client.ContainerInspectOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "GET /containers/{id}/json is not on the allowlist")
	_, err = cli.ContainerKill(ctx, sleeper.ID, client.ContainerKillOptions{Signal: "KILL"})
	require.Error(t, err)
	_, err = cli.ContainerAttach(ctx, sleeper.ID, client.ContainerAttachOptions{Stream: true, Stdout: true})
	require.Error(t, err, "a hijack is refused too")

	ins, err := direct.ContainerInspect(ctx, sleeper.ID, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.True(t, ins.Container.State.Running, "the kill never reached the engine")
	assert.Equal(t, []dockerproxy.Endpoint{
		{Method: "POST", Path: "/containers/{id}/attach"}, {Method: "GET", Path: "/containers/{id}/json"}, {Method: "POST", Path: "/containers/{id}/kill"},
	}, p.Denied())
	for _, c := range p.Log() {
		if c.Denied {
			assert.Equal(t, 403, c.Status)
		}
	}
}
