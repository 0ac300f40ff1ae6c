package dbengine_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/platback/platback/dbengine"
)

func TestPlanningFacts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		engine   dbengine.Engine
		env      map[string]string
		dataDirs []string
		credEnv  []string
		login    bool
	}{
		{"postgres needs nothing", dbengine.Postgres, nil,
			[]string{"/var/lib/postgresql/data", "/var/lib/postgresql"}, nil, true},
		{"postgres PGDATA first, cleaned", dbengine.Postgres, map[string]string{"PGDATA": "/srv/pg/", "POSTGRES_PASSWORD_FILE": "/s", "POSTGRES_DB": "x"},
			[]string{"/srv/pg", "/var/lib/postgresql/data", "/var/lib/postgresql"}, []string{"POSTGRES_DB", "POSTGRES_PASSWORD_FILE"}, true},
		{"mysql user alone cannot log in", dbengine.MySQL, map[string]string{"MYSQL_USER": "u"},
			[]string{"/var/lib/mysql"}, []string{"MYSQL_USER"}, false},
		{"mysql ignores MARIADB_", dbengine.MySQL, map[string]string{"MARIADB_ROOT_PASSWORD": "r"},
			[]string{"/var/lib/mysql"}, nil, false},
		{"mariadb _FILE and MYSQL_ names", dbengine.MariaDB, map[string]string{"MARIADB_PASSWORD_FILE": "/s", "MYSQL_USER": "u"},
			[]string{"/var/lib/mysql"}, []string{"MARIADB_PASSWORD_FILE", "MYSQL_USER"}, true},
		{"mariadb empty root password", dbengine.MariaDB, map[string]string{"MARIADB_ALLOW_EMPTY_ROOT_PASSWORD": "yes"},
			[]string{"/var/lib/mysql"}, []string{"MARIADB_ALLOW_EMPTY_ROOT_PASSWORD"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.dataDirs, tc.engine.DataDirs(tc.env))
			assert.Equal(t, tc.credEnv, tc.engine.CredentialEnv(tc.env))
			assert.Equal(t, tc.login, tc.engine.HasLogin(tc.env))
		})
	}
	// The lists are copies: a caller cannot change what dbengine knows.
	dirs := dbengine.MySQL.DataDirs(nil)
	dirs[0] = "/elsewhere"
	assert.Equal(t, []string{"/var/lib/mysql"}, dbengine.MySQL.DataDirs(nil))
	assert.Empty(t, dbengine.Postgres.LoginEnv())
	assert.Equal(t, []string{"MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD"}, dbengine.MySQL.LoginEnv())
}
