package vaultcreds_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/vaultcreds"
)

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestCredentialsRedact(t *testing.T) {
	creds := vaultcreds.NewCredentials(map[string]string{
		"RESTIC_PASSWORD":       "hunter2-long-password",
		"AWS_ACCESS_KEY_ID":     "AKIAEXAMPLE",
		"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-secret",
		"RESTIC_REPOSITORY":     "s3:https://minio.internal/restic-bucket",
	})
	secretValues := []string{"hunter2-long-password", "AKIAEXAMPLE", "wJalrXUtnFEMI-secret", "minio.internal"}

	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		l := slog.New(h)
		l.Info("run", "creds", creds, "ptr", &creds)
		l.Info("run", slog.Any("creds", creds), slog.Group("g", "c", creds))
	}
	type run struct {
		name  string
		creds vaultcreds.Credentials
	}
	type Run struct {
		Name  string
		Creds vaultcreds.Credentials
	}
	outputs := []string{
		creds.String(), creds.GoString(), logs.String(),
		mustJSON(t, creds), mustJSON(t, Run{"n", creds}), mustJSON(t, map[string]any{"c": creds}),
		fmt.Sprintf("%v|%+v|%#v|%s|%q|%x|%d", creds, creds, creds, creds, creds, creds, creds),
		fmt.Sprintf("%v|%+v|%#v", &creds, &creds, &creds),
		fmt.Sprintf("%v|%+v|%#v", run{"n", creds}, run{"n", creds}, run{"n", creds}),
		fmt.Sprintf("%v|%+v|%#v", Run{"n", creds}, Run{"n", creds}, Run{"n", creds}),
		fmt.Sprintf("%v", []vaultcreds.Credentials{creds}),
		fmt.Sprintf("%v", map[string]vaultcreds.Credentials{"k": creds}),
	}
	for _, out := range outputs {
		for _, v := range secretValues {
			assert.NotContains(t, out, v, "in %q", out)
		}
	}
	assert.Equal(t, "Credentials{AWS_ACCESS_KEY_ID=*** AWS_SECRET_ACCESS_KEY=*** RESTIC_PASSWORD=*** RESTIC_REPOSITORY=***}", creds.String())
	assert.Contains(t, logs.String(), `"RESTIC_PASSWORD":"***"`)
}

func TestCredentialsAccessors(t *testing.T) {
	src := map[string]string{"RESTIC_PASSWORD": "pw", "AWS_ACCESS_KEY_ID": "AK-pw-contains", "RESTIC_REPOSITORY": "s3:x"}
	creds := vaultcreds.NewCredentials(src)
	src["RESTIC_PASSWORD"] = "changed"
	assert.Equal(t, "pw", creds.Get("RESTIC_PASSWORD"), "NewCredentials copies")
	env := creds.Env()
	env["RESTIC_PASSWORD"] = "changed"
	assert.Equal(t, "pw", creds.Get("RESTIC_PASSWORD"), "Env returns a copy")
	assert.Equal(t, []string{"AWS_ACCESS_KEY_ID=AK-pw-contains", "RESTIC_PASSWORD=pw", "RESTIC_REPOSITORY=s3:x"}, creds.Environ())
	assert.Equal(t, []string{"AK-pw-contains", "pw"}, creds.SecretValues(), "longest first, repository excluded")
	assert.Equal(t, "Fatal: wrong password *** for key *** at s3:x",
		creds.Redact("Fatal: wrong password pw for key AK-pw-contains at s3:x"))
	_, ok := creds.Lookup("AWS_SECRET_ACCESS_KEY")
	assert.False(t, ok)

	var zero vaultcreds.Credentials
	assert.True(t, zero.IsZero())
	assert.Empty(t, zero.Get("RESTIC_PASSWORD"))
	assert.Empty(t, zero.Env())
	assert.Empty(t, zero.SecretValues())
	assert.Equal(t, "Credentials{}", zero.String())
	assert.Equal(t, "{}", mustJSON(t, zero))
}
