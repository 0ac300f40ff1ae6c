package ids

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestShorten(t *testing.T) {
	assert.Equal(t, "0123456789ab", Container("0123456789abcdef"))
	assert.Equal(t, "abc", Container("abc"))
	assert.Equal(t, "01234567", Snapshot("0123456789abcdef"))
	assert.Equal(t, "", Snapshot(""))
}
