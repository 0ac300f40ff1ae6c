package outbuf

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTail(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"fits", 10, []string{"ab", "cd"}, "abcd"},
		{"drops the start at a line boundary", 10, []string{"line one\n", "two\nthree"}, "…two\nthree"},
		{"one big write", 4, []string{"abcdefgh"}, "…efgh"},
		{"exactly max", 4, []string{"abcd"}, "abcd"},
		{"a cut rune is dropped", 3, []string{"x\u00e9\u00e9"}, "…\u00e9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tail := NewTail(tt.max)
			for _, w := range tt.writes {
				n, err := tail.Write([]byte(w))
				assert.NoError(t, err)
				assert.Equal(t, len(w), n)
			}
			assert.Equal(t, tt.want, tail.String())
		})
	}
}

func TestHead(t *testing.T) {
	h := NewHead(5)
	for _, w := range []string{"abc", "defg", "hij"} {
		n, _ := h.Write([]byte(w))
		assert.Equal(t, len(w), n)
	}
	assert.Equal(t, "abcde", h.String())
	assert.Equal(t, "", strings.TrimSpace(NewHead(0).String()))
}
