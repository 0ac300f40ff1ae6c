package backup

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// restic 0.19's `ls --json`: the snapshot first, then its nodes. A parser
// that kept the snapshot line, or dropped the sizes, fails here.
func TestParseList(t *testing.T) {
	out := []byte(`{"time":"2026-12-01T10:00:00Z","tree":"ab","paths":["/volumes/app/data"],"hostname":"h","id":"cd","short_id":"cd","struct_type":"snapshot","message_type":"snapshot"}
{"name":"volumes","type":"dir","path":"/volumes","uid":0,"gid":0,"mode":2147484141,"struct_type":"node","message_type":"node"}
{"name":"a.txt","type":"file","path":"/volumes/app/data/a.txt","uid":0,"gid":0,"size":4,"mode":420,"struct_type":"node","message_type":"node"}
{"name":"l","type":"symlink","path":"/volumes/app/data/l","size":0,"message_type":"node"}

`)
	nodes, err := parseList(out)
	require.NoError(t, err)
	assert.Equal(t, []Node{
		{Path: "/volumes", Type: "dir"},
		{Path: "/volumes/app/data/a.txt", Type: "file", Size: 4},
		{Path: "/volumes/app/data/l", Type: "symlink"},
	}, nodes)

	_, err = parseList([]byte("not json\n"))
	assert.Error(t, err)
}
