package dockerproxy

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"HEAD", "/_ping", "HEAD /_ping"},
		{"GET", "/v1.52/containers/json", "GET /containers/json"},
		{"POST", "/v1.52/containers/create", "POST /containers/create"},
		{"GET", "/v1.41/containers/3f2a9c0d1e7b/json", "GET /containers/{id}/json"},
		{"GET", "/v1.52/containers/sbc-app-1/json", "GET /containers/{id}/json"},
		{"POST", "/v1.52/containers/3f2a9c0d1e7b/attach", "POST /containers/{id}/attach"},
		{"DELETE", "/v1.52/containers/3f2a9c0d1e7b", "DELETE /containers/{id}"},
		{"HEAD", "/v1.52/containers/3f2a9c0d1e7b/archive", "HEAD /containers/{id}/archive"},
		{"POST", "/v1.52/exec/9a8b7c/start", "POST /exec/{id}/start"},
		{"GET", "/v1.52/exec/9a8b7c/json", "GET /exec/{id}/json"},
		{"GET", "/v1.52/volumes", "GET /volumes"},
		{"GET", "/v1.52/volumes/proj_data", "GET /volumes/{name}"},
		{"POST", "/v1.52/volumes/create", "POST /volumes/create"},
		{"GET", "/v1.52/images/platback-test/sidecar:e2e/json", "GET /images/{name}/json"},
		{"DELETE", "/v1.52/images/platback-test/sidecar:e2e", "DELETE /images/{name}"},
		{"GET", "/v1.52/images/json", "GET /images/json"},
		{"POST", "/v1.52/images/create", "POST /images/create"},
		{"GET", "/v1.52/distribution/docker.io/library/alpine:3/json", "GET /distribution/{name}/json"},
		{"POST", "/v1.52/networks/abc/connect", "POST /networks/{id}/connect"},
		{"GET", "/v1.52/events", "GET /events"},
		{"GET", "/v1.52/info", "GET /info"},
		{"POST", "/v1.52/swarm/init", "POST /swarm/init"},
		{"GET", "/containers/{id}/json", "GET /containers/{id}/json"}, // a template stays itself
		{"GET", "/v1.52/containers/abc/json/", "GET /containers/{id}/json"},
	} {
		assert.Equal(t, tc.want, Normalize(tc.method, tc.path).String(), "%s %s", tc.method, tc.path)
	}
}

func TestParseAllowlist(t *testing.T) {
	got, err := ParseAllowlist(strings.NewReader(`
# what the sidecar needs
HEAD /_ping                  # version negotiation
GET  /containers/{id}/json   # inspect

POST /exec/{id}/start
`))
	require.NoError(t, err)
	assert.Equal(t, []Endpoint{{"HEAD", "/_ping"}, {"GET", "/containers/{id}/json"}, {"POST", "/exec/{id}/start"}}, got)

	for _, bad := range []struct{ text, msg string }{
		{"get /_ping", `line 1: "get /_ping" is not "METHOD /path"`},
		{"\nGET containers/json", `line 2:`},
		{"GET /containers/json extra", `is not "METHOD /path"`},
		{"GET /v1.52/containers/json", "is written GET /containers/json"},
		{"POST /containers/abc/start", "is written POST /containers/{id}/start"},
	} {
		_, err := ParseAllowlist(strings.NewReader(bad.text))
		if assert.Error(t, err, bad.text) {
			assert.Contains(t, err.Error(), bad.msg)
		}
	}
}

func TestCheck(t *testing.T) {
	allow := []Endpoint{{"HEAD", "/_ping"}, {"GET", "/containers/json"}}
	assert.NoError(t, Check([]Endpoint{{"GET", "/containers/json"}}, allow))
	err := Check([]Endpoint{{"POST", "/containers/{id}/kill"}, {"GET", "/containers/json"}, {"GET", "/info"}}, allow)
	require.True(t, errors.Is(err, ErrNotListed))
	assert.Equal(t, "endpoints used but not on the allowlist:\n  POST /containers/{id}/kill\n  GET /info", err.Error())
}
