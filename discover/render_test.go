package discover

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func samplePlan() Plan {
	app := ctr("a", "app", map[string]string{lp + "volumes": "true", lp + "volumes.stop-during-backup": "true"},
		vol("a_data", "/data"), bind("/srv/ro", "/ro"))
	app.Mounts[1].ReadOnly = true
	web := ctr("a", "web", map[string]string{lp + "volumes": "true"}, vol("a_data", "/shared"))
	db := ctr("a", "db", map[string]string{lp + "postgres": "true"})
	db.Env = []string{"POSTGRES_USER=app", "POSTGRES_PASSWORD=hunter2-secret", "POSTGRES_DB=appdb"}
	my := ctr("a", "my", map[string]string{lp + "mysql": "true", lp + "volumes": "maybe"})
	my.Env = []string{"MYSQL_ROOT_PASSWORD_FILE=/run/secrets/root", "MYSQL_PASSWORD=other-secret"}
	return BuildPlan(Options{}, selfA(), []Container{app, web, db, my})
}

func TestPlanTable(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, samplePlan().WriteTable(&buf))
	out := buf.String()
	for _, want := range []string{
		"Projects: a\n",
		"Sidecar:  ",
		"PROJECT  SERVICE  KIND      SOURCE              SNAPSHOT PATH                    NOTES\n",
		"Sidecar:  a-backup-1 (id-a-backup-, found by mountinfo)\n",
		"/volumes/app/data",
		"shared with a-web-1:/shared; stops a-app-1",
		"/databases/db/all_databases.sql",
		"pg_dumpall: all databases and roles; credentials from",
		"all databases; credentials from MYSQL_PASSWORD",
		"credentials from POSTGRES_DB,POSTGRES_PASSWORD,POSTGRES_USER",
		"Stopped during the backup:\n  a-app-1 (app)",
		"Skipped:\n",
		`container a-my-1: label stack-back.volumes="maybe": not a boolean`,
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "hunter2-secret")
	assert.NotContains(t, out, "other-secret")
}

func TestPlanJSONHoldsNoSecret(t *testing.T) {
	b, err := json.Marshal(samplePlan())
	require.NoError(t, err)
	assert.NotContains(t, string(b), "hunter2-secret")
	assert.NotContains(t, string(b), "other-secret")

	var back Plan
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, samplePlan(), back, "the JSON form round-trips")
	assert.Contains(t, string(b), `"credential_env":["MYSQL_PASSWORD","MYSQL_ROOT_PASSWORD_FILE"]`)
}

func TestEmptyPlanTable(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, BuildPlan(Options{}, Identity{Project: "x", ProjectFrom: EnvProject}, nil).WriteTable(&buf))
	assert.True(t, strings.HasPrefix(buf.String(), "Projects: x\nSidecar:  not in a container (project from PLATBACK_PROJECT)\n\nNothing to back up.\n"), buf.String())
	assert.Contains(t, buf.String(), "Warnings:\n  nothing to back up: no container of compose project \"x\" was found")
}
