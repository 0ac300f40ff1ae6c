package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDumpEnvDropsCredentials(t *testing.T) {
	env := []string{"PATH=/usr/local/bin", "RESTIC_PASSWORD=pw", "AWS_ACCESS_KEY_ID=key", "AWS_SECRET_ACCESS_KEY=secret",
		"RESTIC_REPOSITORY=s3:https://h/b", "DOCKER_HOST=unix:///var/run/docker.sock", "PLATBACK_STREAM_STDERR=/tmp/e",
		"VAULT_TOKEN=t", "RESTIC_PROGRESS_FPS=1"}
	assert.Equal(t, []string{"PATH=/usr/local/bin", "DOCKER_HOST=unix:///var/run/docker.sock", "PLATBACK_STREAM_STDERR=/tmp/e"}, dumpEnv(env))
}
