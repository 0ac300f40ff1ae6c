package dbengine

import (
	"bytes"
	"fmt"
	"io"
)

// mysqlTrailer begins the last line mariadb-dump and mysqldump write
// ("-- Dump completed on 2025-01-31 12:00:00").
const mysqlTrailer = "-- Dump completed"

// mysqlStream passes a mariadb-dump or mysqldump script through unchanged
// and checks that it ends with the dump's last line. When it does not (the
// dump was cut, or reading it failed), it adds a line that is not SQL
// before the end: the mariadb and mysql clients run an unfinished last
// statement at the end of their input, and a cut INSERT can be a valid,
// shorter one. With the extra line it fails instead, and Read then returns
// an error wrapping ErrIncompleteDump.
type mysqlStream struct {
	r      io.Reader
	dumper string // for messages: mariadb-dump or mysqldump
	tail   []byte // the last bytes passed
	lines  int
	out    []byte // the extra line, once the input ended
	done   error
}

const mysqlTailKeep = 512

func newMySQLStream(r io.Reader, client string) *mysqlStream {
	dumper := "mariadb-dump"
	if client == "mysql" {
		dumper = "mysqldump"
	}
	return &mysqlStream{r: r, dumper: dumper}
}

func (s *mysqlStream) Read(p []byte) (int, error) {
	if s.done != nil {
		if len(s.out) > 0 {
			n := copy(p, s.out)
			s.out = s.out[n:]
			return n, nil
		}
		return 0, s.done
	}
	n, err := s.r.Read(p)
	s.lines += bytes.Count(p[:n], []byte("\n"))
	s.tail = append(s.tail, p[:n]...)
	if over := len(s.tail) - mysqlTailKeep; over > 0 {
		s.tail = s.tail[:copy(s.tail, s.tail[over:])]
	}
	switch {
	case err == nil:
	case err == io.EOF && s.complete():
		s.done = io.EOF
	default:
		s.out = []byte("\nplatback: the dump ends here, it is incomplete\n")
		if err == io.EOF {
			midLine := len(s.tail) > 0 && s.tail[len(s.tail)-1] != '\n'
			s.done = fmt.Errorf("%w: %s, before %s's last line (%q)", ErrIncompleteDump,
				whereItEnds(s.lines, midLine), s.dumper, mysqlTrailer)
		} else {
			s.done = fmt.Errorf("%w: reading it failed after line %d: %w", ErrIncompleteDump, s.lines, err)
		}
	}
	return n, nil
}

// complete reports whether the last line that is not blank is the dump's
// last line.
func (s *mysqlStream) complete() bool {
	t := bytes.TrimRight(s.tail, " \t\r\n")
	if i := bytes.LastIndexByte(t, '\n'); i >= 0 {
		t = t[i+1:]
	}
	return bytes.HasPrefix(t, []byte(mysqlTrailer))
}
