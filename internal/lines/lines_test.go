package lines

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWriter(t *testing.T) {
	var got []string
	w := &Writer{Fn: func(b []byte) { got = append(got, string(b)) }}
	for _, chunk := range []string{"fir", "st\nsec", "ond\n\nlast"} {
		n, err := w.Write([]byte(chunk))
		assert.NoError(t, err)
		assert.Equal(t, len(chunk), n)
	}
	w.Flush()
	assert.Equal(t, []string{"first", "second", "", "last"}, got)
}
