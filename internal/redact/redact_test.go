package redact

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestURL(t *testing.T) {
	tests := map[string]string{
		"s3:https://KEY:SECRET@minio.internal/bucket":    "s3:https://***@minio.internal/bucket",
		"rest:https://TOKEN@rest.internal:8000/repo":     "rest:https://***@rest.internal:8000/repo",
		"s3:KEY:SECRET@minio.internal/bucket":            "s3:***@minio.internal/bucket",
		"see s3:https://minio.internal/bucket@v2 for it": "see s3:https://minio.internal/bucket@v2 for it",
		"sftp:user@host:/srv/restic":                     "sftp:user@host:/srv/restic",
	}
	for in, want := range tests {
		assert.Equal(t, want, URL(in), in)
	}
}

func TestSecrets(t *testing.T) {
	s := NewSecrets("correct-horse", "correct-horse-battery", "ab", "")
	got := s.String("pw correct-horse-battery then correct-horse, url https://u:p@h/ and ab")
	assert.Equal(t, "pw *** then ***, url https://***@h/ and ab", got)
}
