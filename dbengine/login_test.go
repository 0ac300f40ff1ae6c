package dbengine

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResolveLogin(t *testing.T) {
	files := map[string]string{"/run/secrets/pw": "from-file\n", "/run/secrets/user": "fileuser"}
	readFile := func(p string) (string, error) {
		if v, ok := files[p]; ok {
			return v, nil
		}
		return "", errors.New("no such file")
	}
	for _, tc := range []struct {
		name   string
		engine Engine
		env    map[string]string
		want   Login
		err    string
	}{
		{"postgres defaults", Postgres, nil, Login{User: "postgres", Database: "postgres"}, ""},
		{"postgres db defaults to user", Postgres, map[string]string{"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "pw"},
			Login{User: "app", Password: "pw", Database: "app"}, ""},
		{"postgres _FILE, newline trimmed", Postgres, map[string]string{"POSTGRES_USER_FILE": "/run/secrets/user", "POSTGRES_PASSWORD_FILE": "/run/secrets/pw", "POSTGRES_DB": "d"},
			Login{User: "fileuser", Password: "from-file", Database: "d"}, ""},
		{"both plain and _FILE", Postgres, map[string]string{"POSTGRES_PASSWORD": "a", "POSTGRES_PASSWORD_FILE": "/run/secrets/pw"},
			Login{}, "both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set"},
		{"missing file", Postgres, map[string]string{"POSTGRES_PASSWORD_FILE": "/nope"}, Login{}, "read POSTGRES_PASSWORD_FILE=/nope: no such file"},
		{"mysql root", MySQL, map[string]string{"MYSQL_ROOT_PASSWORD": "r", "MYSQL_USER": "u", "MYSQL_PASSWORD": "p"},
			Login{User: "root", Password: "r"}, ""},
		{"mysql user", MySQL, map[string]string{"MYSQL_USER": "u", "MYSQL_PASSWORD_FILE": "/run/secrets/pw"},
			Login{User: "u", Password: "from-file"}, ""},
		{"mysql ignores MARIADB_", MySQL, map[string]string{"MARIADB_ROOT_PASSWORD": "r"}, Login{}, "set MYSQL_ROOT_PASSWORD"},
		{"mysql empty root password allowed", MySQL, map[string]string{"MYSQL_ALLOW_EMPTY_PASSWORD": "yes"}, Login{User: "root"}, ""},
		{"mariadb prefers MARIADB_", MariaDB, map[string]string{"MARIADB_ROOT_PASSWORD": "m", "MYSQL_ROOT_PASSWORD": "y"},
			Login{User: "root", Password: "m"}, ""},
		{"mariadb falls back to MYSQL_", MariaDB, map[string]string{"MYSQL_USER": "u", "MYSQL_PASSWORD": "p"},
			Login{User: "u", Password: "p"}, ""},
		{"mariadb nothing", MariaDB, map[string]string{"MARIADB_DATABASE": "x"}, Login{}, "no database credentials: set MARIADB_ROOT_PASSWORD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveLogin(tc.engine, tc.env, readFile)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	_, err := ResolveLogin(MariaDB, nil, readFile)
	assert.ErrorIs(t, err, ErrNoLogin)
}

func TestLoginNeverPrintsThePassword(t *testing.T) {
	c := Login{User: "app", Password: "hunter2", Database: "appdb"}
	var log strings.Builder
	slog.New(slog.NewJSONHandler(&log, nil)).Info("dump", "creds", c)
	j, err := json.Marshal(c)
	require.NoError(t, err)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), string(j), log.String()} {
		assert.NotContains(t, s, "hunter2")
		assert.Contains(t, s, "app")
	}
}
