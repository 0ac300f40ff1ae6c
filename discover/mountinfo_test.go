package discover

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestContainerIDsFromMountInfo(t *testing.T) {
	const (
		real  = "8389c5b6064846030d6a0b04b8c55b7933715134acc72b843215831234a3bc40"
		own   = "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd"
		other = "2222222222222222222222222222222222222222222222222222222222222222"
		space = "3333333333333333333333333333333333333333333333333333333333333333"
	)
	for _, tc := range []struct {
		file string
		want []string
	}{
		// Read from a container started with hostname: custom-backup on
		// Docker 20.10 (fuse-overlayfs, cgroup v1).
		{"mountinfo-custom-hostname.txt", []string{real}},
		// /var/lib/docker on its own filesystem: the root field starts at
		// /containers/. /etc/hostname's id comes first; an overlay2 layer id
		// is not a container id; escaped spaces are decoded.
		{"mountinfo-separate-fs.txt", []string{own, other, space}},
		// Not in a container.
		{"mountinfo-host.txt", nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open("testdata/" + tc.file)
			require.NoError(t, err)
			defer f.Close()
			ids, err := containerIDsFromMountInfo(f)
			require.NoError(t, err)
			assert.Equal(t, tc.want, ids)
		})
	}
}

func TestContainerIDsFromMountInfoCgroupFallback(t *testing.T) {
	const id = "4444444444444444444444444444444444444444444444444444444444444444"
	in := "74 73 0:28 /docker/" + id + " /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n"
	ids, err := containerIDsFromMountInfo(strings.NewReader(in))
	require.NoError(t, err)
	assert.Equal(t, []string{id}, ids)
}

func TestUnescapeMountInfo(t *testing.T) {
	assert.Equal(t, "/a b\tc", unescapeMountInfo(`/a\040b\011c`))
	assert.Equal(t, `/a\04`, unescapeMountInfo(`/a\04`))
	assert.Equal(t, "/plain", unescapeMountInfo("/plain"))
}
