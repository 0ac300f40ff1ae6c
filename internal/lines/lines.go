// Package lines splits a byte stream written to it into lines.
package lines

import "bytes"

// Writer calls Fn with each complete line written to it (without the
// newline); Flush hands over a last line that has none.
type Writer struct {
	Fn  func([]byte)
	buf []byte
}

func (w *Writer) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.Fn(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

// Flush passes on what is left after the last newline.
func (w *Writer) Flush() {
	if len(w.buf) > 0 {
		w.Fn(w.buf)
	}
	w.buf = nil
}
