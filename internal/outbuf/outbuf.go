// Package outbuf keeps a bounded part of a command's output: the last
// bytes (Tail, for error messages) or the first ones (Head). Both are
// io.Writers safe for concurrent use.
package outbuf

import (
	"strings"
	"sync"
)

// Tail keeps the last Max bytes written to it.
type Tail struct {
	Max     int
	mu      sync.Mutex
	buf     []byte
	dropped bool
}

// NewTail returns a Tail of max bytes.
func NewTail(max int) *Tail { return &Tail{Max: max} }

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.Max {
		t.dropped = t.dropped || len(t.buf) > 0 || len(p) > t.Max
		t.buf = append(t.buf[:0], p[len(p)-t.Max:]...)
		return n, nil
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.Max; over > 0 {
		t.dropped = true
		t.buf = t.buf[:copy(t.buf, t.buf[over:])]
	}
	return n, nil
}

// Bytes returns a copy of the kept bytes.
func (t *Tail) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...)
}

// String returns the kept bytes as valid UTF-8, starting with "…" at a
// line boundary when earlier bytes were dropped.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.ToValidUTF8(string(t.buf), "")
	if t.dropped {
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
		return "…" + s
	}
	return s
}

// Head keeps the first Max bytes written to it.
type Head struct {
	Max int
	mu  sync.Mutex
	buf []byte
}

// NewHead returns a Head of max bytes.
func NewHead(max int) *Head { return &Head{Max: max} }

func (h *Head) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := h.Max - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// String returns the kept bytes as valid UTF-8.
func (h *Head) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.ToValidUTF8(string(h.buf), "")
}
