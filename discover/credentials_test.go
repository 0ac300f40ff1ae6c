package discover

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

func TestResolveCredentials(t *testing.T) {
	files := map[string]string{"/run/secrets/pw": "from-file\n", "/run/secrets/user": "fileuser"}
	readFile := func(p string) (string, error) {
		if v, ok := files[p]; ok {
			return v, nil
		}
		return "", errors.New("no such file")
	}
	for _, tc := range []struct {
		name   string
		engine Kind
		env    map[string]string
		want   Credentials
		err    string
	}{
		{"postgres defaults", KindPostgres, nil, Credentials{User: "postgres", Database: "postgres"}, ""},
		{"postgres db defaults to user", KindPostgres, map[string]string{"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "pw"},
			Credentials{User: "app", Password: "pw", Database: "app"}, ""},
		{"postgres _FILE, newline trimmed", KindPostgres, map[string]string{"POSTGRES_USER_FILE": "/run/secrets/user", "POSTGRES_PASSWORD_FILE": "/run/secrets/pw", "POSTGRES_DB": "d"},
			Credentials{User: "fileuser", Password: "from-file", Database: "d"}, ""},
		{"both plain and _FILE", KindPostgres, map[string]string{"POSTGRES_PASSWORD": "a", "POSTGRES_PASSWORD_FILE": "/run/secrets/pw"},
			Credentials{}, "both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set"},
		{"missing file", KindPostgres, map[string]string{"POSTGRES_PASSWORD_FILE": "/nope"}, Credentials{}, "read POSTGRES_PASSWORD_FILE=/nope: no such file"},
		{"mysql root", KindMySQL, map[string]string{"MYSQL_ROOT_PASSWORD": "r", "MYSQL_USER": "u", "MYSQL_PASSWORD": "p"},
			Credentials{User: "root", Password: "r"}, ""},
		{"mysql user", KindMySQL, map[string]string{"MYSQL_USER": "u", "MYSQL_PASSWORD_FILE": "/run/secrets/pw"},
			Credentials{User: "u", Password: "from-file"}, ""},
		{"mysql ignores MARIADB_", KindMySQL, map[string]string{"MARIADB_ROOT_PASSWORD": "r"}, Credentials{}, "set MYSQL_ROOT_PASSWORD"},
		{"mysql empty root password allowed", KindMySQL, map[string]string{"MYSQL_ALLOW_EMPTY_PASSWORD": "yes"}, Credentials{User: "root"}, ""},
		{"mariadb prefers MARIADB_", KindMariaDB, map[string]string{"MARIADB_ROOT_PASSWORD": "m", "MYSQL_ROOT_PASSWORD": "y"},
			Credentials{User: "root", Password: "m"}, ""},
		{"mariadb falls back to MYSQL_", KindMariaDB, map[string]string{"MYSQL_USER": "u", "MYSQL_PASSWORD": "p"},
			Credentials{User: "u", Password: "p"}, ""},
		{"mariadb nothing", KindMariaDB, map[string]string{"MARIADB_DATABASE": "x"}, Credentials{}, "no database credentials: set MARIADB_ROOT_PASSWORD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveCredentials(tc.engine, tc.env, readFile)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	_, err := resolveCredentials(KindMariaDB, nil, readFile)
	assert.ErrorIs(t, err, ErrNoCredentials)
}

func TestCredentialsNeverPrintThePassword(t *testing.T) {
	c := Credentials{User: "app", Password: "hunter2", Database: "appdb"}
	var log strings.Builder
	slog.New(slog.NewJSONHandler(&log, nil)).Info("dump", "creds", c)
	j, err := json.Marshal(c)
	require.NoError(t, err)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), string(j), log.String()} {
		assert.NotContains(t, s, "hunter2")
		assert.Contains(t, s, "app")
	}
}
