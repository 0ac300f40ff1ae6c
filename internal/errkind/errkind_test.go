package errkind

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/backup"
)

func TestRoundTrip(t *testing.T) {
	for _, sentinel := range []error{backup.ErrLocked, backup.ErrPartialBackup, backup.ErrWrongPassword, backup.ErrInterrupted} {
		err := fmt.Errorf("target /volumes/app/data: %w", sentinel)
		back := New(err.Error(), Of(err))
		require.ErrorIs(t, back, sentinel)
		assert.Equal(t, err.Error(), back.Error())
	}
	plain := errors.New("something else")
	assert.Equal(t, "", Of(plain))
	assert.EqualError(t, New(plain.Error(), Of(plain)), "something else")
	assert.NoError(t, New("", "locked"))
	assert.Equal(t, "", Of(nil))
}
