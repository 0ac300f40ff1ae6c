package discover_test

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// createRaw creates and starts a container of the helper image from cfg and
// hc as given (dockerbed.ContainerSpec has no Config.Volumes or Binds);
// t.Cleanup removes it with its anonymous volumes.
func createRaw(t *testing.T, cli *client.Client, name string, cfg *container.Config, hc *container.HostConfig) container.InspectResponse {
	t.Helper()
	cfg.Image = dockerbed.HelperImage(t, cli)
	cfg.Labels = dockerbed.Labels(cfg.Labels)
	cr, err := cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc})
	require.NoError(t, err)
	t.Cleanup(func() { dockerbed.Remove(t, cli, cr.ID) })
	_, err = cli.ContainerStart(t.Context(), cr.ID, client.ContainerStartOptions{})
	require.NoError(t, err)
	res, err := cli.ContainerInspect(t.Context(), cr.ID, client.ContainerInspectOptions{})
	require.NoError(t, err)
	return res.Container
}

// TestPlanAnonymousVolumeFiltersOnRealEngine: an anonymous volume made from
// Config.Volumes (docker run -v /anon, compose v1) is listed by Engine 20.10
// with no source; include/exclude must still see the source inspect gives,
// <root>/volumes/<64 hex>/_data.
func TestPlanAnonymousVolumeFiltersOnRealEngine(t *testing.T) {
	cli := dockerbed.Client(t)
	s := newStack(t, cli, "pbanon")
	named := s.volume("data") // pbanon…_data: its source has "volumes/p"
	// Every anonymous volume's source has "volumes/" then a hex digit.
	var anyAnon []string
	for _, c := range "0123456789abcdef" {
		anyAnon = append(anyAnon, "volumes/"+string(c))
	}
	mk := func(service, label string) container.InspectResponse {
		return createRaw(t, cli, s.project+"-"+service+"-1", &container.Config{
			Labels: map[string]string{
				discover.ComposeProjectLabel: s.project, discover.ComposeServiceLabel: service,
				discover.ComposeOneoffLabel: "False", discover.ComposeContainerNumberLabel: "1",
				lp + "volumes": "true", label: strings.Join(anyAnon, ","),
			},
			Volumes: map[string]struct{}{"/anon": {}},
		}, &container.HostConfig{Binds: []string{named + ":/named"}})
	}
	app := mk("app", lp+"volumes.include")
	web := mk("web", lp+"volumes.exclude")

	var anon container.MountPoint
	for _, m := range app.Mounts {
		if m.Destination == "/anon" {
			anon = m
		}
	}
	require.Len(t, anon.Name, 64, "an anonymous volume")
	require.Contains(t, anon.Source, "/volumes/"+anon.Name+"/_data")
	listed, err := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("id", app.ID)})
	require.NoError(t, err)
	require.Len(t, listed.Items, 1)
	for _, m := range listed.Items[0].Mounts {
		t.Logf("list: %s %s name=%q source=%q", m.Type, m.Destination, m.Name, m.Source)
	}

	d, err := discover.New(cli, discover.Options{Self: discover.SelfOptions{Project: s.project, MountInfoPath: "/nonexistent", Hostname: "laptop"}})
	require.NoError(t, err)
	p, err := d.Plan(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"/volumes/app/anon", "/volumes/web/named"}, planPaths(p), "skipped: %v", p.Skipped)
	require.NotEmpty(t, p.Targets)
	assert.Equal(t, &discover.VolumeTarget{Type: "volume", Name: anon.Name, Source: anon.Source, Destination: "/anon"}, p.Targets[0].Volume)
	assert.Contains(t, skipReason(p, app.Name[1:], "/named"), "matches none of")
	assert.Contains(t, skipReason(p, web.Name[1:], "/anon"), "from "+lp+"volumes.exclude")
}
