package dbengine

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/platback/platback/internal/outbuf"
)

// The stderr tail ExecStream and Restore keep for error messages (an
// outbuf.Tail): the end of the output, from a line start when earlier
// bytes were dropped.
func TestStderrTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		max    int
		want   string
	}{
		{"fits", []string{"ab", "cd"}, 8, "abcd"},
		{"exactly max in one write", []string{"abcd"}, 4, "abcd"},
		{"overflow keeps the end, from a line start", []string{"line1\nline2\n", "line3\n"}, 10, "…line3\n"},
		{"one big write", []string{strings.Repeat("x", 100) + "\nend"}, 6, "…end"},
		{"no newline to cut at", []string{"abcdefgh"}, 3, "…fgh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := outbuf.NewTail(tc.max)
			for _, w := range tc.writes {
				n, err := b.Write([]byte(w))
				assert.NoError(t, err)
				assert.Equal(t, len(w), n)
			}
			assert.Equal(t, tc.want, b.String())
			assert.LessOrEqual(t, len(b.Bytes()), tc.max)
		})
	}
}
