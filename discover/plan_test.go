package discover

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPlanFindTarget(t *testing.T) {
	app := ctr("a", "app", map[string]string{lp + "volumes": "true"}, vol("a_data", "/data"))
	pg := ctr("a", "db", map[string]string{lp + "postgres": "true"})
	pg.Env = []string{"POSTGRES_PASSWORD=x", "POSTGRES_DB=appdb"}
	maria := ctr("a", "maria", map[string]string{lp + "mariadb": "true"})
	maria.Env = []string{"MARIADB_ROOT_PASSWORD=x"}
	r1 := ctr("a", "rep", map[string]string{lp + "postgres": "true"})
	r2 := ctr("a", "rep", map[string]string{lp + "postgres": "true", ComposeContainerNumberLabel: "2"})
	r2.ID, r2.Name = "id-a-rep-2", "a-rep-2"
	plan := BuildPlan(Options{}, selfA(), []Container{app, pg, maria, r1, r2})
	inPath := BuildPlan(Options{ProjectInPath: true}, selfA(), []Container{app, pg})

	for _, tc := range []struct {
		name string
		plan Plan
		path string
		want string // the found target's Path; "" for not found
	}{
		{"volume, exact", plan, "/volumes/app/data", "/volumes/app/data"},
		{"dump, exact", plan, "/databases/db/all_databases.sql", "/databases/db/all_databases.sql"},
		{"old postgres name (POSTGRES_DB)", plan, "/databases/db/appdb.sql", "/databases/db/all_databases.sql"},
		{"old postgres default name", plan, "/databases/db/postgres.sql", "/databases/db/all_databases.sql"},
		{"any .sql in a dump's directory", plan, "/databases/maria/x.sql", "/databases/maria/all_databases.sql"},
		{"replica", plan, "/databases/rep-2/appdb.sql", "/databases/rep-2/all_databases.sql"},
		{"not clean", plan, "/databases/db//appdb.sql", "/databases/db/all_databases.sql"},
		{"project in path", inPath, "/databases/a/db/appdb.sql", "/databases/a/db/all_databases.sql"},
		{"project in path, old path without project", inPath, "/databases/db/appdb.sql", ""},
		{"unknown service", plan, "/databases/nosuch/appdb.sql", ""},
		{"replicas' old shared path", plan, "/databases/rep/appdb.sql", ""},
		{"deeper directory", plan, "/databases/db/sub/appdb.sql", ""},
		{"directly under /databases", plan, "/databases/appdb.sql", ""},
		{"not .sql", plan, "/databases/db/appdb.sql.gz", ""},
		{"the directory itself", plan, "/databases/db", ""},
		{"a volume's directory is no fallback", plan, "/volumes/app/old.sql", ""},
		{"unknown volume", plan, "/volumes/app/other", ""},
		{"empty", plan, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.plan.FindTarget(tc.path)
			assert.Equal(t, tc.want != "", ok)
			assert.Equal(t, tc.want, got.Path)
		})
	}
}
