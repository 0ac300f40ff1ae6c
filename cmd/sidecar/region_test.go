package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// An S3 server with a region of its own: with the sidecar's
// AWS_DEFAULT_REGION (or AWS_REGION) the run creates the bucket and backs
// up, and a wrong region is refused by the server — the variable reaches
// the bucket check and restic. Before, it was not passed at all (only a
// Vault field could set the region): the wrong region went unnoticed
// because MinIO's region is found from the bucket, which servers such as
// Garage do not all allow.
func TestS3Region(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sidecar against Docker, MinIO and restic")
	}
	cli := dockerbed.Client(t)
	workerImage := buildSidecarImage(t, cli)
	const region = "platback-test-1"
	s3 := testbed.StartMinIOInRegion(t, region)
	project, _ := volumeStack(t, "region", map[string][]byte{"hello.txt": []byte("hello\n")})
	h := newHostSidecar(t, buildDaemonBinary(t), project, map[string]string{
		"RESTIC_REPOSITORY": s3.RepoURL(dockerbed.UniqueName("region"), "repo"), "RESTIC_PASSWORD": "region-pass",
		"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey, "PLATBACK_WORKER_IMAGE": workerImage,
	})
	code, out := h.runOnce(t, map[string]string{"AWS_DEFAULT_REGION": region})
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "OK: 1 target(s)")
	code, out = h.runOnce(t, map[string]string{"AWS_REGION": region})
	require.Equal(t, 0, code, "AWS_REGION, the SDKs' name, works too\n"+out)
	code, out = h.runOnce(t, map[string]string{"AWS_DEFAULT_REGION": "elsewhere-1"})
	assert.Equal(t, 1, code, "a wrong region is refused by the server\n"+out)
	assert.Contains(t, out, "the region is wrong", "the server's refusal is shown")
}
