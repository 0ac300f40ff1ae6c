package dbengine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// pgClusterTrailer is the last comment pg_dumpall writes: a dump without it
// was cut short.
const pgClusterTrailer = "-- PostgreSQL database cluster dump complete"

// pgLineBuffer is the longest line pgStream can rewrite; longer lines (COPY
// rows, big literals) pass through in pieces.
const pgLineBuffer = 64 << 10

// copyColumnsMax is PostgreSQL's limit on the columns of a table
// (MaxHeapAttributeNumber): a COPY row with more fields is always an error.
const copyColumnsMax = 1600

// pgStream is the pg_dumpall script on its way to psql, read line by line
// in constant memory whatever the size of the dump. It keeps every line
// where it was, so psql's "<stdin>:N" line numbers are the dump's, and
// changes only what cannot run against a server that already has it:
//
//   - "CREATE ROLE x;" of a role that exists becomes a comment (pg_dumpall
//     expects that error to be ignored; the ALTER ROLE that follows still
//     sets the role's attributes and password from the dump);
//   - "CREATE DATABASE x ..." of a database that exists and was found empty
//     gets "DROP DATABASE x; " in front of it on the same line.
//
// Only lines that begin a statement are looked at: a lexer follows quotes,
// dollar quotes, comments and psql meta-commands, and the data of COPY ...
// FROM stdin blocks passes untouched up to the line "\.". When the input
// ends before pg_dumpall's last line (or with a read error), pgStream adds
// a line psql cannot run, so psql stops with an error instead of taking the
// end of input for the end of a table's data or of the script, and then
// returns an error wrapping ErrIncompleteDump.
type pgStream struct {
	src *bufio.Reader
	// roles exist on the server; emptyDBs exist and hold nothing (true
	// for template databases, which must be made ordinary to be dropped).
	roles    map[string]bool
	emptyDBs map[string]bool

	lex      sqlLexer
	lines    int  // complete lines read
	midLine  bool // the last piece read did not end its line
	inCopy   bool
	copyLine int    // line of the COPY statement
	copyWhat string // its table
	trailer  bool   // pgClusterTrailer was seen

	out  []byte // to hand out before reading on
	done error  // after out: io.EOF or the error

	// What was changed, for the log.
	skippedRoles, droppedDBs []string
}

func newPGStream(r io.Reader, roles, emptyDBs map[string]bool) *pgStream {
	return newPGStreamSize(r, pgLineBuffer, roles, emptyDBs)
}

// newPGStreamSize is newPGStream with lines longer than size (at least 16)
// passed in pieces.
func newPGStreamSize(r io.Reader, size int, roles, emptyDBs map[string]bool) *pgStream {
	return &pgStream{src: bufio.NewReaderSize(r, size), roles: roles, emptyDBs: emptyDBs}
}

func (s *pgStream) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.done != nil {
			return 0, s.done
		}
		s.next()
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// next reads the next line, or piece of a long line, into out.
func (s *pgStream) next() {
	piece, err := s.src.ReadSlice('\n')
	if len(piece) > 0 {
		lineStart := !s.midLine
		ended := piece[len(piece)-1] == '\n'
		// A whole line: it ends here, or it is the last one and has no '\n'.
		whole := lineStart && (ended || err == io.EOF)
		s.out = s.process(piece, lineStart, whole)
		s.midLine = !ended
		if ended {
			s.lines++
		}
	}
	switch {
	case err == nil, errors.Is(err, bufio.ErrBufferFull):
	case err == io.EOF:
		s.finish(nil)
	default:
		s.finish(err)
	}
}

// process returns what psql gets for piece.
func (s *pgStream) process(piece []byte, lineStart, whole bool) []byte {
	if s.inCopy {
		if whole && isCopyEnd(piece) {
			s.inCopy = false
		}
		return piece
	}
	if !whole || !s.lex.atStatementStart() {
		s.lex.feed(piece)
		return piece
	}
	line := bytes.TrimRight(piece, "\r\n")
	if name, _, rest, ok := parseCreate(line, "CREATE ROLE "); ok && rest == ";" && s.roles[name] {
		s.skippedRoles = append(s.skippedRoles, name)
		return slices.Concat([]byte("-- platback: the role exists, so its CREATE ROLE is skipped: "), piece)
	}
	if name, ident, rest, ok := parseCreate(line, "CREATE DATABASE "); ok && (rest == ";" || strings.HasPrefix(rest, " ")) {
		if template, empty := s.emptyDBs[name]; empty {
			s.droppedDBs = append(s.droppedDBs, name)
			s.lex.feed(piece)
			pre := "DROP DATABASE " + ident + "; "
			if template {
				pre = "ALTER DATABASE " + ident + " IS_TEMPLATE false; " + pre
			}
			return slices.Concat([]byte(pre), piece)
		}
	}
	if string(line) == pgClusterTrailer {
		s.trailer = true
	}
	ends, last := s.lex.feed(piece)
	if ends == 1 && last == len(line)-1 && s.lex.atStatementStart() && isCopyFromStdin(line) {
		s.inCopy, s.copyLine = true, s.lines+1
		s.copyWhat = strings.TrimSpace(string(line[len("COPY ") : len(line)-len("FROM stdin;")]))
	}
	return piece
}

// finish ends the stream after the last piece: io.EOF when the dump was
// complete, else a line psql cannot run and ErrIncompleteDump.
func (s *pgStream) finish(readErr error) {
	if readErr == nil && s.trailer && !s.inCopy && s.lex.atEnd() {
		s.done = io.EOF
		return
	}
	var poison strings.Builder
	if s.midLine {
		poison.WriteByte('\n')
	}
	at := whereItEnds(s.lines, s.midLine)
	var why string
	if s.inCopy {
		why = fmt.Sprintf("%s, inside the data of COPY %s (line %d): none of that table's rows are kept", at, s.copyWhat, s.copyLine)
		// Too many fields for any table: the server rejects the row, and
		// with it the whole COPY.
		poison.WriteString("platback: the dump ends here, it is incomplete")
		poison.WriteString(strings.Repeat("\t", copyColumnsMax))
		poison.WriteByte('\n')
	} else {
		why = at + ", before pg_dumpall's last line"
		// Not SQL: whatever statement was left unfinished fails with it.
		poison.WriteString("platback: the dump ends here, it is incomplete\n")
	}
	s.out = slices.Concat(s.out, []byte(poison.String()))
	if readErr != nil {
		s.done = fmt.Errorf("%w: reading it failed after line %d: %w", ErrIncompleteDump, s.lines, readErr)
	} else {
		s.done = fmt.Errorf("%w: %s", ErrIncompleteDump, why)
	}
}

// whereItEnds says where a dump of lines complete lines ends.
func whereItEnds(lines int, midLine bool) string {
	switch {
	case midLine:
		return fmt.Sprintf("it ends in the middle of line %d", lines+1)
	case lines == 0:
		return "it is empty"
	}
	return fmt.Sprintf("it ends after line %d", lines)
}

// isCopyEnd reports whether a whole line ends COPY data, as psql reads it.
func isCopyEnd(line []byte) bool {
	return string(line) == "\\.\n" || string(line) == "\\.\r\n" || string(line) == "\\."
}

// isCopyFromStdin reports whether a one-line statement is pg_dump's
// "COPY table (columns) FROM stdin;".
func isCopyFromStdin(line []byte) bool {
	return len(line) >= len("COPY ")+len(" FROM stdin;") &&
		bytes.EqualFold(line[:len("COPY ")], []byte("COPY ")) &&
		bytes.EqualFold(line[len(line)-len(" FROM stdin;"):], []byte(" FROM stdin;"))
}

// parseCreate reads "<prefix><identifier><rest>" (prefix as pg_dumpall
// writes it, in upper case) and returns the identifier's name, its text as
// written, and what follows it.
func parseCreate(line []byte, prefix string) (name, ident, rest string, ok bool) {
	if !bytes.HasPrefix(line, []byte(prefix)) {
		return "", "", "", false
	}
	after := line[len(prefix):]
	name, ok, end := parseIdent(after)
	if !ok {
		return "", "", "", false
	}
	return name, string(after[:end]), string(after[end:]), true
}

// parseIdent reads an SQL identifier at the start of b as pg_dump's fmtId
// writes it: "quoted" with "" for a quote, or plain (lower case letters,
// digits, _ and $; PostgreSQL folds plain names to lower case). end is the
// length of its text in b.
func parseIdent(b []byte) (name string, ok bool, end int) {
	if len(b) == 0 {
		return "", false, 0
	}
	if b[0] == '"' {
		var sb strings.Builder
		for i := 1; i < len(b); i++ {
			if b[i] != '"' {
				sb.WriteByte(b[i])
				continue
			}
			if i+1 < len(b) && b[i+1] == '"' {
				sb.WriteByte('"')
				i++
				continue
			}
			return sb.String(), sb.Len() > 0, i + 1
		}
		return "", false, 0 // not closed on this line
	}
	i := 0
	for i < len(b) && isIdentByte(b[i]) {
		i++
	}
	if i == 0 || isDigit(b[0]) || b[0] == '$' {
		return "", false, 0
	}
	// PostgreSQL folds ASCII letters only.
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, string(b[:i])), true, i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isIdentByte reports whether c can continue an unquoted identifier (bytes
// of multi-byte UTF-8 characters included).
func isIdentByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '_' || c == '$' || c >= 0x80
}

// lexMode is where sqlLexer is in the script.
type lexMode uint8

const (
	lexSQL          lexMode = iota
	lexQuote                // '...'
	lexEscQuote             // E'...' (backslash escapes)
	lexIdent                // "..."
	lexDollarTag            // after a $ that may open $tag$
	lexDollar               // $tag$...$tag$
	lexLineComment          // -- to the end of the line
	lexBlockComment         // /* ... */, nested
	lexMeta                 // a psql backslash command, to the end of the line
)

// sqlLexer follows psql's reading of a script byte by byte, as far as
// needed to tell where statements begin and end: quotes, dollar quotes,
// comments and backslash commands. Its state carries over between calls,
// so a line may come in pieces.
type sqlLexer struct {
	mode        lexMode
	inStatement bool   // text since the last ';'
	held        byte   // '-' or '/' that may begin a comment ('*' or '/' in a comment)
	prev, prev2 byte   // the bytes before the current one
	escaped     bool   // lexEscQuote: after a backslash
	reopenE     bool   // an E'...' string just closed ('' continues it)
	depth       int    // lexBlockComment nesting
	tag         []byte // lexDollarTag, lexDollar: the tag between the $s
	match       int    // lexDollar: bytes of "$tag$" matched so far
}

// atStatementStart reports whether the next byte begins a statement.
func (l *sqlLexer) atStatementStart() bool {
	return l.mode == lexSQL && !l.inStatement && l.held == 0
}

// atEnd reports whether the script may end here: no statement, quote or
// comment is left open (the end of input ends a line).
func (l *sqlLexer) atEnd() bool {
	return (l.mode == lexSQL || l.mode == lexLineComment || l.mode == lexMeta) && !l.inStatement && l.held == 0
}

// feed reads b and returns how many statements it ended (';'), and where
// the last of them ended (-1: none).
func (l *sqlLexer) feed(b []byte) (ends, last int) {
	last = -1
	for i, c := range b {
		if l.step(c) {
			ends, last = ends+1, i
		}
		l.prev2, l.prev = l.prev, c
	}
	return ends, last
}

// step reads one byte and reports whether it ended a statement.
func (l *sqlLexer) step(c byte) bool {
	switch l.mode {
	case lexQuote:
		if c == '\'' {
			l.mode = lexSQL
		}
	case lexEscQuote:
		switch {
		case l.escaped:
			l.escaped = false
		case c == '\\':
			l.escaped = true
		case c == '\'':
			l.mode, l.reopenE = lexSQL, true
		}
	case lexIdent:
		if c == '"' {
			l.mode = lexSQL
		}
	case lexLineComment, lexMeta:
		if c == '\n' {
			l.mode = lexSQL
		}
	case lexBlockComment:
		h := l.held
		l.held = 0
		switch {
		case h == '*' && c == '/':
			l.depth--
			if l.depth == 0 {
				l.mode = lexSQL
			}
		case h == '/' && c == '*':
			l.depth++
		case c == '*' || c == '/':
			l.held = c
		}
	case lexDollarTag:
		switch {
		case c == '$':
			l.mode, l.match = lexDollar, 0
		case isIdentByte(c) && c != '$' && !(len(l.tag) == 0 && isDigit(c)):
			l.tag = append(l.tag, c)
		default: // "$1" or a lone "$": not a dollar quote
			l.mode = lexSQL
			return l.sql(c)
		}
	case lexDollar:
		want := byte('$')
		if l.match > 0 && l.match <= len(l.tag) {
			want = l.tag[l.match-1]
		}
		switch {
		case c == want:
			l.match++
			if l.match == len(l.tag)+2 {
				l.mode = lexSQL
			}
		case c == '$':
			l.match = 1
		default:
			l.match = 0
		}
	default:
		return l.sql(c)
	}
	return false
}

// sql reads a byte outside quotes and comments.
func (l *sqlLexer) sql(c byte) bool {
	reopenE := l.reopenE
	l.reopenE = false
	if h := l.held; h != 0 {
		l.held = 0
		switch {
		case h == '-' && c == '-':
			l.mode = lexLineComment
			return false
		case h == '/' && c == '*':
			l.mode, l.depth = lexBlockComment, 1
			return false
		}
		l.inStatement = true // an operator
	}
	switch c {
	case '-', '/':
		l.held = c
	case '\'':
		l.inStatement = true
		l.mode = lexQuote
		if reopenE || (l.prev == 'E' || l.prev == 'e') && !isIdentByte(l.prev2) {
			l.mode = lexEscQuote
		}
	case '"':
		l.inStatement, l.mode = true, lexIdent
	case '$':
		l.inStatement = true
		if !isIdentByte(l.prev) {
			l.mode, l.tag = lexDollarTag, l.tag[:0]
		}
	case '\\':
		l.mode = lexMeta
	case ';':
		l.inStatement = false
		return true
	case ' ', '\t', '\n', '\r', '\f', '\v':
	default:
		l.inStatement = true
	}
	return false
}
