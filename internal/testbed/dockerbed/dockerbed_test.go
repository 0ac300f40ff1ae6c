package dockerbed_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

func TestOwnerNamesThisProcess(t *testing.T) {
	owner := dockerbed.Owner()
	pid, start, ok := strings.Cut(owner, "/")
	require.True(t, ok, "owner %q", owner)
	assert.Equal(t, strconv.Itoa(os.Getpid()), pid)
	assert.NotEmpty(t, start)
}

func TestHelperContainerRunsOps(t *testing.T) {
	cli := dockerbed.Client(t)
	c := dockerbed.Run(t, cli, dockerbed.ContainerSpec{Hostname: "helper-host", Env: []string{"A=1"}})
	require.True(t, c.State.Running, "helper container should keep running (pbhelper sleep)")
	assert.Equal(t, dockerbed.Owner(), c.Config.Labels[testbed.Label])

	res := dockerbed.Exec(t, cli, c.ID, dockerbed.Helper("echo=hi", "hostname", "stderr=oops", "write=/tmp/x/f:secret", "cat=/tmp/x/f", "exit=7")...)
	assert.Equal(t, "hi\nhelper-host\nsecret", res.Stdout)
	assert.Equal(t, "oops\n", res.Stderr)
	assert.Equal(t, 7, res.ExitCode)

	sum := dockerbed.Exec(t, cli, c.ID, dockerbed.Helper("gensum=1000")...)
	assert.Equal(t, 0, sum.ExitCode)
	assert.Len(t, strings.TrimSpace(sum.Stdout), 64)
}

// TestSweepRemovesOnlyDeadOwners proves a crashed run's leftovers go away
// while resources of live test processes (this one) stay.
func TestSweepRemovesOnlyDeadOwners(t *testing.T) {
	cli := dockerbed.Client(t)
	ctx := context.Background()
	img := dockerbed.HelperImage(t, cli)

	// A dead owner: PID 1 exists but was not started at tick 1.
	const dead = "1/1"
	deadVol := dockerbed.UniqueName("pbtest-dead-")
	_, err := cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: deadVol, Labels: map[string]string{testbed.Label: dead}})
	require.NoError(t, err)
	deadC, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   dockerbed.UniqueName("pbtest-dead-"),
		Config: &container.Config{Image: img, Labels: map[string]string{testbed.Label: dead}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { dockerbed.Remove(t, cli, deadC.ID) })
	live := dockerbed.Run(t, cli, dockerbed.ContainerSpec{NoStart: true})
	liveVol := dockerbed.Volume(t, cli, dockerbed.UniqueName("pbtest-live-"), nil)

	require.NoError(t, dockerbed.Sweep(ctx, cli))

	_, err = cli.ContainerInspect(ctx, deadC.ID, client.ContainerInspectOptions{})
	assert.Error(t, err, "container of a dead owner should be swept")
	_, err = cli.VolumeInspect(ctx, deadVol, client.VolumeInspectOptions{})
	assert.Error(t, err, "volume of a dead owner should be swept")
	_, err = cli.ContainerInspect(ctx, live.ID, client.ContainerInspectOptions{})
	assert.NoError(t, err, "container of this live process must stay")
	_, err = cli.VolumeInspect(ctx, liveVol.Name, client.VolumeInspectOptions{})
	assert.NoError(t, err, "volume of this live process must stay")
	_, err = cli.ImageInspect(ctx, img)
	assert.NoError(t, err, "the current helper image must stay cached")
}

func TestUniqueName(t *testing.T) {
	a, b := dockerbed.UniqueName("p"), dockerbed.UniqueName("p")
	assert.NotEqual(t, a, b)
	assert.Regexp(t, `^p[0-9a-f]{8}$`, a)
}
