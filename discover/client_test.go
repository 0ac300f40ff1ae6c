package discover_test

import (
	"testing"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// TestNewClientNegotiates proves NewClient talks to the machine's engine
// (Docker 20.10, API 1.41, here) by negotiating the API version down.
func TestNewClientNegotiates(t *testing.T) {
	dockerbed.Client(t) // fails clearly when no engine runs; sweeps leftovers
	t.Setenv("DOCKER_API_VERSION", "")
	cli, err := discover.NewClient()
	require.NoError(t, err)
	defer cli.Close()
	ping, err := cli.Ping(t.Context(), client.PingOptions{})
	require.NoError(t, err)
	_, err = cli.ServerVersion(t.Context(), client.ServerVersionOptions{})
	require.NoError(t, err, "a request after negotiation")
	want := ping.APIVersion
	if versions.LessThan(client.MaxAPIVersion, want) {
		want = client.MaxAPIVersion
	}
	assert.Equal(t, want, cli.ClientVersion())
	t.Logf("engine API %s, client max %s → negotiated %s", ping.APIVersion, client.MaxAPIVersion, cli.ClientVersion())
}

func TestNewRejectsNilClient(t *testing.T) {
	_, err := discover.New(nil, discover.Options{})
	assert.ErrorIs(t, err, discover.ErrInvalidOptions)
}
