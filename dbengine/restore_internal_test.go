package dbengine

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

func TestMySQLStream(t *testing.T) {
	const done = "\n/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n-- Dump completed on 2026-12-01 13:45:08\n"
	const poison = "\nplatback: the dump ends here, it is incomplete\n"
	cases := []struct {
		name, in, why string
	}{
		{"complete", "USE `shop`;\nINSERT INTO `t` VALUES (1);" + done, ""},
		{"complete, no final newline", "SELECT 1;" + strings.TrimSuffix(done, "\n"), ""},
		{"cut between statements", "USE `shop`;\nDROP TABLE IF EXISTS `t`;\n", "it ends after line 2, before mariadb-dump's last line"},
		{"cut inside an INSERT that is valid SQL", "INSERT INTO `t` VALUES\n(1,'apple')", "it ends in the middle of line 2"},
		{"the trailer text, not on its own line", "SELECT '-- Dump completed';", "incomplete"},
		{"empty", "", "it is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time: the check must not depend on how reads split.
			out, err := io.ReadAll(newMySQLStream(iotest.OneByteReader(strings.NewReader(tc.in)), "mariadb"))
			if tc.why == "" {
				require.NoError(t, err)
				require.Equal(t, tc.in, string(out))
				return
			}
			require.ErrorIs(t, err, ErrIncompleteDump)
			require.Contains(t, err.Error(), tc.why)
			require.Equal(t, tc.in+poison, string(out))
		})
	}
	t.Run("a read error", func(t *testing.T) {
		broken := errors.New("unexpected EOF from the repository")
		r := io.MultiReader(strings.NewReader("SELECT 1;\n"+done), iotest.ErrReader(broken))
		out, err := io.ReadAll(newMySQLStream(r, "mysql"))
		require.ErrorIs(t, err, ErrIncompleteDump)
		require.ErrorIs(t, err, broken)
		require.True(t, strings.HasSuffix(string(out), poison))
	})
}

func TestClientErrorText(t *testing.T) {
	cases := []struct{ name, stderr, want string }{{
		name:   "psql: notices before the error are left out",
		stderr: "psql:<stdin>:12: NOTICE:  extension \"x\" already exists, skipping\npsql:<stdin>:136: ERROR:  syntax error at or near \"TABLEX\"\nLINE 1: CREATE TABLEX public.r (\n               ^\n",
		want:   "psql:<stdin>:136: ERROR:  syntax error at or near \"TABLEX\"\nLINE 1: CREATE TABLEX public.r (\n               ^",
	}, {
		name:   "psql: connection failure",
		stderr: "psql: error: connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: FATAL:  role \"x\" does not exist\n",
		want:   "psql: error: connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: FATAL:  role \"x\" does not exist",
	}, {
		name:   "mariadb: the echoed statement is left out",
		stderr: "--------------\nINSERT INTO `t` VALUES (1,'ERROR: not this one')\n--------------\n\nERROR 1064 (42000) at line 4821: You have an error in your SQL syntax; near 'TABLEX `orders` (\n  `id` int(11)' at line 1\n",
		want:   "ERROR 1064 (42000) at line 4821: You have an error in your SQL syntax; near 'TABLEX `orders` (\n  `id` int(11)' at line 1",
	}, {
		name:   "mariadb: data in the message that looks like an error",
		stderr: "ERROR 1064 (42000) at line 7: You have an error in your SQL syntax; near '(1,'x\nERROR: y\npsql: ERROR: z')' at line 2\n",
		want:   "ERROR 1064 (42000) at line 7: You have an error in your SQL syntax; near '(1,'x\nERROR: y\npsql: ERROR: z')' at line 2",
	}, {
		name:   "no error line: all of it",
		stderr: "something else\n",
		want:   "something else",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, clientErrorText(tc.stderr))
		})
	}
}

func TestClientResultErr(t *testing.T) {
	ctx := context.Background()
	inUse := clientResult{code: 3, stderr: "psql:<stdin>:80: ERROR:  database \"shop\" is being accessed by other users\nDETAIL:  There is 1 other session using the database.\n"}
	err := inUse.err(ctx, "app-db-1", "psql", "pw-secret", pgAdvice)
	require.ErrorContains(t, err, `restore into app-db-1: psql stopped at an error (exit status 3): psql:<stdin>:80: ERROR:  database "shop" is being accessed by other users`)
	require.ErrorContains(t, err, "Stop the services that use this database (keep the database container running).")
	require.ErrorContains(t, err, pgAdvice)

	leak := clientResult{code: 1, stderr: "ERROR 1045 (28000): Access denied; password pw-secret\n"}
	err = leak.err(ctx, "db", "mariadb", "pw-secret", "")
	require.NotContains(t, err.Error(), "pw-secret")

	cut := clientResult{code: 3, stderr: "psql:<stdin>:9: ERROR:  extra data after last expected column\n",
		readErr: errors.Join(ErrIncompleteDump)}
	require.ErrorIs(t, cut.err(ctx, "db", "psql", "", ""), ErrIncompleteDump)

	require.NoError(t, clientResult{code: 0}.err(ctx, "db", "psql", "", ""))
	require.Error(t, clientResult{code: -1}.err(ctx, "db", "psql", "", ""))
	require.ErrorIs(t, clientResult{code: 0, sendErr: errClientGone}.err(ctx, "db", "psql", "", ""), errClientGone)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, clientResult{code: 0}.err(cancelled, "db", "psql", "", ""), context.Canceled)
}

func hexRec(kind, name string, rest ...string) []string {
	return append([]string{kind, hex.EncodeToString([]byte(name))}, rest...)
}

func TestPGClusterCheck(t *testing.T) {
	recs := [][]string{
		hexRec("role", "mm", "", ""), hexRec("role", `Mixed "Role"`, "", ""),
		hexRec("database", "postgres", "false", "true"), hexRec("database", "template1", "true", "true"),
		hexRec("database", "template0", "true", "false"), hexRec("database", "shop", "false", "true"),
		hexRec("database", "Reports \"Q1\"\x1fx", "false", "true"), hexRec("database", "tmpl", "true", "true"),
		hexRec("database", "closed", "false", "false"),
		hexRec("session", "shop", "mattermost", "172.18.0.5"),
	}
	// parse (a name with the field separator survives: names are hex)
	cl, err := parseCluster(recs)
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"mm": true, `Mixed "Role"`: true}, cl.roles)
	names := []string{}
	for _, db := range cl.dbs {
		names = append(names, db.name)
	}
	require.Equal(t, []string{"Reports \"Q1\"\x1fx", "closed", "postgres", "shop", "template0", "template1", "tmpl"}, names)

	byName := func(n string) *pgDatabase {
		for _, db := range cl.dbs {
			if db.name == n {
				return db
			}
		}
		t.Fatalf("no database %q", n)
		return nil
	}
	count := func(n, objects int, examples ...string) {
		db := byName(map[int]string{0: "postgres", 1: "shop", 2: "Reports \"Q1\"\x1fx", 3: "tmpl"}[n])
		db.checked, db.objects, db.examples = true, objects, examples
	}

	// Everything empty, but the application is connected to shop.
	for i := range 4 {
		count(i, 0)
	}
	_, _, err = cl.check("app-db-1")
	require.ErrorIs(t, err, ErrInUse)
	require.ErrorContains(t, err, `database "shop" has 1 open session(s) (mattermost@172.18.0.5)`)
	require.ErrorContains(t, err, "stop the services that use it (keep the database container running)")

	// Disconnected: the empty ones are replaced (tmpl as a template).
	byName("shop").sessions = nil
	roles, replace, err := cl.check("app-db-1")
	require.NoError(t, err)
	require.Equal(t, cl.roles, roles)
	require.Equal(t, map[string]bool{"shop": false, "Reports \"Q1\"\x1fx": false, "tmpl": true}, replace)

	// Objects anywhere, postgres included: refused, with the fix.
	count(0, 1, "table public.notes")
	count(1, 7, "table public.items", "table public.lookalike", "function public.body", "sequence public.items_id_seq", "view public.item_count")
	_, _, err = cl.check("app-db-1")
	require.ErrorIs(t, err, ErrNotEmpty)
	require.ErrorContains(t, err, `database "postgres" holds 1 object (table public.notes); database "shop" holds 7 objects (table public.items, `)
	require.ErrorContains(t, err, "view public.item_count, …)")
	require.ErrorContains(t, err, "Restore into app-db-1 refused, nothing was changed")
	require.ErrorContains(t, err, "or restore into a new, empty database volume, then run restore again")

	_, err = parseCluster([][]string{{"role", "zz", "", ""}})
	require.Error(t, err)
	_, err = parseCluster([][]string{{"what", "00", "", ""}})
	require.Error(t, err)
}

func TestParseObjects(t *testing.T) {
	n, ex, err := parseObjects([][]string{{"7", "table public.items"}, {"7", `table public."a` + "\x1f" + `b"`}})
	require.NoError(t, err)
	require.Equal(t, 7, n)
	require.Equal(t, []string{"table public.items", "table public.\"a\x1fb\""}, ex)
	n, ex, err = parseObjects(nil)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, ex)
	_, _, err = parseObjects([][]string{{"x", "table t"}})
	require.Error(t, err)
}

func TestQuoting(t *testing.T) {
	require.Equal(t, `"Reports ""Q1"""`, quoteIdent(`Reports "Q1"`))
	require.Equal(t, `'it\'s a \\ name'`, quoteConnValue(`it's a \ name`))
}
