package runner

import (
	"io"
	"log/slog"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/config"
)

// copyTarget takes the copy's variables out of the run's credentials (the
// primary's restic and the workers never get them), falls back to the
// primary's password, prefers COPY_REPOSITORY over the Vault field, and
// turns a bad copy into the copy's error, not the run's.
func TestCopyTarget(t *testing.T) {
	self := &container.InspectResponse{Mounts: []container.MountPoint{
		{Type: mount.TypeVolume, Name: "proj_copy", Destination: "/copy", RW: true},
	}}
	const primary = "s3:https://minio.internal/app"
	creds := func(kv map[string]string) map[string]string {
		env := map[string]string{"RESTIC_PASSWORD": "primary-pw", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
		for k, v := range kv {
			env[k] = v
		}
		return env
	}
	tests := []struct {
		name      string
		setting   string // COPY_REPOSITORY
		env       map[string]string
		self      *container.InspectResponse
		url, pass string
		err       string
	}{
		{name: "no copy", env: creds(nil)},
		{name: "the primary's password", setting: "s3:https://offsite/app", env: creds(nil), url: "s3:https://offsite/app", pass: "primary-pw"},
		{name: "its own password", setting: "s3:https://offsite/app", env: creds(map[string]string{"COPY_RESTIC_PASSWORD": "copy-pw"}), url: "s3:https://offsite/app", pass: "copy-pw"},
		{name: "from Vault", env: creds(map[string]string{"COPY_REPOSITORY": "s3:https://offsite/vault-copy", "COPY_RESTIC_PASSWORD": "copy-pw"}), url: "s3:https://offsite/vault-copy", pass: "copy-pw"},
		{name: "the variable wins over Vault", setting: "s3:https://offsite/app", env: creds(map[string]string{"COPY_REPOSITORY": "s3:https://offsite/vault-copy"}), url: "s3:https://offsite/app", pass: "primary-pw"},
		{name: "Vault gives the primary itself", env: creds(map[string]string{"COPY_REPOSITORY": primary + "/"}), url: primary + "/", pass: "primary-pw", err: "is the primary repository itself"},
		{name: "Vault gives a bad URL", env: creds(map[string]string{"COPY_REPOSITORY": "s3:https://offsite/"}), url: "s3:https://offsite/", pass: "primary-pw", err: "COPY_REPOSITORY (from the credentials)"},
		{name: "a local path on a mount", setting: "/copy/repo", env: creds(nil), self: self, url: "/copy/repo", pass: "primary-pw"},
		{name: "a local path on no mount", setting: "/elsewhere", env: creds(nil), self: self, url: "/elsewhere", pass: "primary-pw", err: "COPY_REPOSITORY=/elsewhere is a local path on no volume or bind mount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn := &Runner{Config: config.Config{CopyRepository: tt.setting}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			env := tt.env
			c := rn.copyTarget(env, primary, tt.self)
			assert.NotContains(t, env, "COPY_REPOSITORY", "taken out of the primary's environment")
			assert.NotContains(t, env, "COPY_RESTIC_PASSWORD", "taken out of the primary's environment")
			assert.Equal(t, "primary-pw", env["RESTIC_PASSWORD"], "the primary's own password is untouched")
			assert.Equal(t, tt.url, c.url)
			if tt.url == "" {
				assert.Nil(t, c.env)
				return
			}
			assert.Equal(t, tt.pass, c.env["RESTIC_PASSWORD"])
			assert.Equal(t, "AK", c.env["AWS_ACCESS_KEY_ID"], "the primary's S3 keys")
			if tt.err != "" {
				require.Error(t, c.err)
				assert.Contains(t, c.err.Error(), tt.err)
				return
			}
			assert.NoError(t, c.err)
		})
	}
}
