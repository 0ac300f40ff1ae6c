package dbengine

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

var (
	testRoles = map[string]bool{"mm": true, `Mixed "Role"`: true, "ünïcode": true}
	testEmpty = map[string]bool{"shop": false, "Big Shop": false, "tmpl": true}
)

// filter runs input through a pgStream and returns its output and final
// error (nil for a complete dump).
func filter(t *testing.T, input string, size int) (string, error) {
	t.Helper()
	s := newPGStreamSize(strings.NewReader(input), size, testRoles, testEmpty)
	out, err := io.ReadAll(s)
	return string(out), err
}

const trailer = "--\n" + pgClusterTrailer + "\n--\n\n"

const skip = "-- platback: the role exists, so its CREATE ROLE is skipped: "

func TestPGStreamRewrites(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{{
		name: "existing roles are not created again, others are",
		in: "CREATE ROLE mm;\nALTER ROLE mm WITH SUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:x';\n" +
			"CREATE ROLE reporter;\nCREATE ROLE \"Mixed \"\"Role\"\"\";\nCREATE ROLE \"MM\";\nCREATE ROLE ünïcode;\n",
		want: skip + "CREATE ROLE mm;\nALTER ROLE mm WITH SUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:x';\n" +
			"CREATE ROLE reporter;\n" + skip + "CREATE ROLE \"Mixed \"\"Role\"\"\";\nCREATE ROLE \"MM\";\n" + skip + "CREATE ROLE ünïcode;\n",
	}, {
		name: "only the exact statement pg_dumpall writes",
		in:   "CREATE ROLE mm WITH LOGIN;\ncreate role mm;\n  CREATE ROLE mm;\nCREATE ROLE mm; SELECT 1;\nCREATE ROLE mmx;\n",
		want: "CREATE ROLE mm WITH LOGIN;\ncreate role mm;\n  CREATE ROLE mm;\nCREATE ROLE mm; SELECT 1;\nCREATE ROLE mmx;\n",
	}, {
		name: "empty databases are dropped before they are created",
		in: "CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8';\n" +
			"CREATE DATABASE \"Big Shop\" WITH TEMPLATE = template0;\n" +
			"CREATE DATABASE tmpl WITH TEMPLATE = template0;\n" +
			"CREATE DATABASE \"Shop\" WITH TEMPLATE = template0;\nCREATE DATABASE shopx WITH TEMPLATE = template0;\n",
		want: "DROP DATABASE shop; CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8';\n" +
			"DROP DATABASE \"Big Shop\"; CREATE DATABASE \"Big Shop\" WITH TEMPLATE = template0;\n" +
			"ALTER DATABASE tmpl IS_TEMPLATE false; DROP DATABASE tmpl; CREATE DATABASE tmpl WITH TEMPLATE = template0;\n" +
			"CREATE DATABASE \"Shop\" WITH TEMPLATE = template0;\nCREATE DATABASE shopx WITH TEMPLATE = template0;\n",
	}, {
		name: "COPY data that looks like statements passes untouched",
		in: "COPY public.t (line) FROM stdin;\nCREATE ROLE mm;\nCREATE DATABASE shop WITH TEMPLATE = template0;\n" +
			"\\\\.\n \\.\n\\.x\n" + pgClusterTrailer + "\nCOPY public.items (id, name) FROM stdin;\n'\n$$\n/*\n\\.\nCREATE ROLE mm;\n",
		want: "COPY public.t (line) FROM stdin;\nCREATE ROLE mm;\nCREATE DATABASE shop WITH TEMPLATE = template0;\n" +
			"\\\\.\n \\.\n\\.x\n" + pgClusterTrailer + "\nCOPY public.items (id, name) FROM stdin;\n'\n$$\n/*\n\\.\n" + skip + "CREATE ROLE mm;\n",
	}, {
		name: "COPY of a quoted table with a semicolon in its name",
		in:   "COPY public.\"a;b\" (\"x;\") FROM stdin;\nCREATE ROLE mm;\n\\.\r\nCREATE ROLE mm;\r\n",
		want: "COPY public.\"a;b\" (\"x;\") FROM stdin;\nCREATE ROLE mm;\n\\.\r\n" + skip + "CREATE ROLE mm;\r\n",
	}, {
		name: "a COPY to stdout is not followed by data",
		in:   "COPY t TO stdout; -- FROM stdin;\nCREATE ROLE mm;\n",
		want: "COPY t TO stdout; -- FROM stdin;\n" + skip + "CREATE ROLE mm;\n",
	}, {
		name: "lines inside a multi-line string literal",
		in:   "COMMENT ON TABLE t IS 'first\nCREATE ROLE mm;\nit''s\nCREATE DATABASE shop WITH x;\nCOPY t (a) FROM stdin;\nlast';\nCREATE ROLE mm;\n",
		want: "COMMENT ON TABLE t IS 'first\nCREATE ROLE mm;\nit''s\nCREATE DATABASE shop WITH x;\nCOPY t (a) FROM stdin;\nlast';\n" + skip + "CREATE ROLE mm;\n",
	}, {
		name: "escape strings",
		in:   "SELECT E'a\\'\nCREATE ROLE mm;\n\\\\';\nSELECT e'x''\\'\nCREATE ROLE mm;\n';\nSELECT E'\\\\';\nCREATE ROLE mm;\n",
		want: "SELECT E'a\\'\nCREATE ROLE mm;\n\\\\';\nSELECT e'x''\\'\nCREATE ROLE mm;\n';\nSELECT E'\\\\';\n" + skip + "CREATE ROLE mm;\n",
	}, {
		name: "a backslash in a standard string does not escape",
		in:   "SELECT 'a\\';\nCREATE ROLE mm;\n",
		want: "SELECT 'a\\';\n" + skip + "CREATE ROLE mm;\n",
	}, {
		name: "dollar-quoted bodies",
		in: "CREATE FUNCTION f() RETURNS text AS $f$ SELECT $$x\nCREATE ROLE mm;\n$$ || $g$\n$f\n$g$ $f$;\nCREATE ROLE mm;\n" +
			"CREATE FUNCTION g() AS $$\nCREATE ROLE mm;\n$$;\nCREATE ROLE mm;\n",
		want: "CREATE FUNCTION f() RETURNS text AS $f$ SELECT $$x\nCREATE ROLE mm;\n$$ || $g$\n$f\n$g$ $f$;\n" + skip + "CREATE ROLE mm;\n" +
			"CREATE FUNCTION g() AS $$\nCREATE ROLE mm;\n$$;\n" + skip + "CREATE ROLE mm;\n",
	}, {
		name: "a dollar in an identifier or a parameter opens no quote",
		in:   "SELECT a$b$c, $1 FROM t$x$;\nCREATE ROLE mm;\n",
		want: "SELECT a$b$c, $1 FROM t$x$;\n" + skip + "CREATE ROLE mm;\n",
	}, {
		name: "quoted identifiers",
		in:   "CREATE TABLE \"x;\n\"\"CREATE ROLE mm;\n\" (a int);\nCREATE ROLE mm;\n",
		want: "CREATE TABLE \"x;\n\"\"CREATE ROLE mm;\n\" (a int);\n" + skip + "CREATE ROLE mm;\n",
	}, {
		name: "comments",
		in:   "/* a /* nested */\nCREATE ROLE mm;\n*/\nSELECT 1 -- ; 'x\n;\nSELECT 2 - -1; SELECT 4/2;\nCREATE ROLE mm;\n",
		want: "/* a /* nested */\nCREATE ROLE mm;\n*/\nSELECT 1 -- ; 'x\n;\nSELECT 2 - -1; SELECT 4/2;\n" + skip + "CREATE ROLE mm;\n",
	}, {
		name: "a semicolon in a comment",
		in:   "/* x; */\nCREATE ROLE mm;\n/* a /* b */ ;\nCREATE ROLE mm;\n*/\nCREATE ROLE mm;\n",
		want: "/* x; */\n" + skip + "CREATE ROLE mm;\n/* a /* b */ ;\nCREATE ROLE mm;\n*/\n" + skip + "CREATE ROLE mm;\n",
	}, {
		name: "dollar quote ends",
		in:   "SELECT $a$a$ ;\nCREATE ROLE mm;\n$a$;\nCREATE ROLE mm;\nSELECT $a$x$$a$;\nCREATE ROLE mm;\n",
		want: "SELECT $a$a$ ;\nCREATE ROLE mm;\n$a$;\n" + skip + "CREATE ROLE mm;\nSELECT $a$x$$a$;\n" + skip + "CREATE ROLE mm;\n",
	}, {
		name: "an unfinished statement",
		in:   "SELECT 1,\nCREATE ROLE mm;\n",
		want: "SELECT 1,\nCREATE ROLE mm;\n",
	}, {
		name: "psql meta-commands",
		in:   "\\restrict abc\n\\connect -reuse-previous=on \"dbname='x''; y'\"\nCREATE ROLE mm;\n\\unrestrict abc\n",
		want: "\\restrict abc\n\\connect -reuse-previous=on \"dbname='x''; y'\"\n" + skip + "CREATE ROLE mm;\n\\unrestrict abc\n",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := filter(t, tc.in+trailer, pgLineBuffer)
			require.NoError(t, err)
			require.Equal(t, tc.want+trailer, got)
			require.Equal(t, strings.Count(tc.in, "\n"), strings.Count(got, "\n")-strings.Count(trailer, "\n"),
				"psql's line numbers must stay the dump's")
		})
	}
}

func TestPGStreamIncomplete(t *testing.T) {
	cases := []struct {
		name, in, poison, why string
	}{{
		name:   "no trailer",
		in:     "CREATE ROLE x;\n",
		poison: "platback: the dump ends here, it is incomplete\n",
		why:    "it ends after line 1, before pg_dumpall's last line",
	}, {
		name:   "empty",
		in:     "",
		poison: "platback: the dump ends here, it is incomplete\n",
		why:    "it is empty, before pg_dumpall's last line",
	}, {
		name:   "inside a statement, mid-line",
		in:     "SELECT pg_catalog.setval('s', 5",
		poison: "\nplatback: the dump ends here, it is incomplete\n",
		why:    "it ends in the middle of line 1, before",
	}, {
		name:   "trailer, then an unfinished statement",
		in:     trailer + "SELECT 1",
		poison: "\nplatback: the dump ends here, it is incomplete\n",
	}, {
		name:   "inside COPY data, at a line end",
		in:     "SET x = 1;\nCOPY public.items (id, name) FROM stdin;\n1\ta\n2\tb\n",
		poison: "platback: the dump ends here, it is incomplete" + strings.Repeat("\t", copyColumnsMax) + "\n",
		why:    "it ends after line 4, inside the data of COPY public.items (id, name) (line 2): none of that table's rows are kept",
	}, {
		name:   "inside COPY data, mid-line",
		in:     "COPY t (a) FROM stdin;\n1\n2" + "\n" + trailer + "12",
		poison: "\nplatback: the dump ends here, it is incomplete" + strings.Repeat("\t", copyColumnsMax) + "\n",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := filter(t, tc.in, pgLineBuffer)
			require.ErrorIs(t, err, ErrIncompleteDump)
			require.Contains(t, err.Error(), tc.why)
			require.Equal(t, tc.in+tc.poison, got)
		})
	}

	t.Run("a read error", func(t *testing.T) {
		broken := errors.New("connection reset")
		r := io.MultiReader(strings.NewReader("CREATE ROLE mm;\nCOPY t (a) FROM stdin;\n1\n"), iotest.ErrReader(broken))
		out, err := io.ReadAll(newPGStream(r, testRoles, testEmpty))
		require.ErrorIs(t, err, ErrIncompleteDump)
		require.ErrorIs(t, err, broken)
		require.Contains(t, err.Error(), "after line 3")
		require.True(t, strings.HasSuffix(string(out), "1\nplatback: the dump ends here, it is incomplete"+strings.Repeat("\t", copyColumnsMax)+"\n"))
	})

	t.Run("complete without a final newline", func(t *testing.T) {
		in := "COPY t (a) FROM stdin;\n1\n\\.\n--\n" + pgClusterTrailer
		got, err := filter(t, in, pgLineBuffer)
		require.NoError(t, err)
		require.Equal(t, in, got)
	})
}

// TestPGStreamLongLines: lines longer than the buffer pass in pieces, byte
// for byte, and the lexer follows quotes across the pieces.
func TestPGStreamLongLines(t *testing.T) {
	long := strings.Repeat("x", 3*pgLineBuffer+17)
	in := "COPY t (a) FROM stdin;\n" + long + "\n\\.\n" +
		"SELECT '" + long + "\nCREATE ROLE mm;\n" + long + "';\n" +
		"SELECT $q$" + long + "$q$, '" + long[:pgLineBuffer-20] + "\n" + "CREATE ROLE mm;\n';\nCREATE ROLE mm;\n" + trailer
	want := strings.Replace(in, "';\nCREATE ROLE mm;\n", "';\n"+skip+"CREATE ROLE mm;\n", 1)
	got, err := filter(t, in, pgLineBuffer)
	require.NoError(t, err)
	require.Equal(t, len(want), len(got))
	require.True(t, want == got)
}

// TestPGStreamPieces: with a small buffer, long lines come in pieces; a
// piece that looks like a whole line ("\\.", "CREATE ROLE mm;") is not one.
func TestPGStreamPieces(t *testing.T) {
	const size = 48 // the trailer line still fits
	in := "COPY t (a) FROM stdin;\n" + strings.Repeat("a", size) + "\\.\nCREATE ROLE mm;\n" + strings.Repeat("b", size) + "CREATE ROLE mm;\n\\.\n" +
		"SELECT 1;" + strings.Repeat(" ", size-len("SELECT 1;")) + "CREATE ROLE mm;\n" +
		"SELECT '" + strings.Repeat("c", size) + "\nCREATE ROLE mm;\n';\n" + "CREATE ROLE mm;\n" + trailer
	want := strings.Replace(in, "';\nCREATE ROLE mm;\n", "';\n"+skip+"CREATE ROLE mm;\n", 1)
	got, err := filter(t, in, size)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

// TestLexerPieces: the lexer ends in the same state whatever the pieces a
// script comes in.
func TestLexerPieces(t *testing.T) {
	script := "CREATE FUNCTION f() AS $f$ a $$ b $f$; SELECT E'\\'', 'it''s', \"a\"\"b\" /* c /* d */ e */ -- f\n" +
		"SELECT $1, a$b$c; \\connect x\nCOMMENT ON t IS 'x\ny'; SELECT 4/2 - -1;\nSELECT $tag$ open"
	var whole sqlLexer
	wantEnds, _ := whole.feed([]byte(script))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var l sqlLexer
		ends := 0
		for rest := []byte(script); len(rest) > 0; {
			n := 1 + rng.IntN(min(len(rest), 7))
			e, _ := l.feed(rest[:n])
			ends += e
			rest = rest[n:]
		}
		require.Equal(t, wantEnds, ends)
		require.Equal(t, whole.mode, l.mode)
		require.Equal(t, string(whole.tag), string(l.tag))
		require.Equal(t, whole.inStatement, l.inStatement)
	}
	require.Equal(t, 4, wantEnds)
	require.Equal(t, lexDollar, whole.mode)
}

// TestPGStreamConstantMemory streams a 256 MiB dump made of long COPY rows
// and checks the output is the input and that memory stays small.
func TestPGStreamConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 256 MiB")
	}
	const size = 256 << 20
	head := "CREATE ROLE mm;\nCOPY public.big (data) FROM stdin;\n"
	tail := "\\.\n" + trailer
	body := &patternReader{left: size, line: 1 << 20}
	in := io.MultiReader(strings.NewReader(head), body, strings.NewReader(tail))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newPGStream(in, testRoles, testEmpty)
	h := sha256.New()
	n, err := io.CopyBuffer(h, s, make([]byte, 32<<10))
	require.NoError(t, err)
	runtime.ReadMemStats(&after)
	require.Equal(t, int64(len(skip)+len(head)+size+len(tail)), n)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(4<<20), "the stream must not hold lines in memory")
	require.Equal(t, []string{"mm"}, s.skippedRoles)
}

// patternReader produces left bytes of lines of length line (newline
// included), without allocating.
type patternReader struct{ left, line, col int }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := min(len(b), p.left)
	for i := range n {
		p.col++
		if p.col == p.line || p.left-i == 1 {
			b[i], p.col = '\n', 0
		} else {
			b[i] = 'a' + byte(p.col%26)
		}
	}
	p.left -= n
	return n, nil
}

func BenchmarkPGStream(b *testing.B) {
	var dump bytes.Buffer
	dump.WriteString("CREATE ROLE mm;\nCREATE DATABASE shop WITH TEMPLATE = template0;\n")
	for range 20 {
		dump.WriteString("CREATE TABLE public.t (id integer, name text, note text);\nCOMMENT ON TABLE public.t IS 'a\nb';\nCOPY public.t (id, name, note) FROM stdin;\n")
		for i := range 5000 {
			dump.WriteString(strings.Repeat("x", i%200))
			dump.WriteString("\t12345\tsome text that is neither short nor long\n")
		}
		dump.WriteString("\\.\n\n")
	}
	dump.WriteString(trailer)
	b.SetBytes(int64(dump.Len()))
	for b.Loop() {
		s := newPGStream(bytes.NewReader(dump.Bytes()), testRoles, testEmpty)
		if _, err := io.Copy(io.Discard, s); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseIdent(t *testing.T) {
	cases := []struct {
		in, name string
		ok       bool
		end      int
	}{
		{"shop WITH", "shop", true, 4},
		{"shop;", "shop", true, 4},
		{"Shop;", "shop", true, 4},
		{"ünï;", "ünï", true, len("ünï")},
		{`"Big ""Shop""" WITH`, `Big "Shop"`, true, 14},
		{`"a;b";`, "a;b", true, 5},
		{`"unclosed`, "", false, 0},
		{`"";`, "", false, 0},
		{"1abc", "", false, 0},
		{"$x", "", false, 0},
		{" shop", "", false, 0},
		{"", "", false, 0},
	}
	for _, tc := range cases {
		name, ok, end := parseIdent([]byte(tc.in))
		require.Equal(t, tc.ok, ok, tc.in)
		if ok {
			require.Equal(t, tc.name, name, tc.in)
			require.Equal(t, tc.end, end, tc.in)
		}
	}
}
