package discover

import (
	"bufio"
	"io"
	"regexp"
	"slices"
	"strings"
)

// containerPath finds the files Docker bind-mounts into every container
// (/etc/hostname, /etc/hosts, /etc/resolv.conf) from
// /var/lib/docker/containers/<id>/, seen in mountinfo's root field.
var containerPath = regexp.MustCompile(`/containers/([0-9a-f]{64})/`)

// cgroupPath is a container's cgroup under cgroup v1 (/docker/<id>), a last
// resort when the files above are not mounted.
var cgroupPath = regexp.MustCompile(`^/docker/([0-9a-f]{64})$`)

// containerIDsFromMountInfo returns the distinct container ids found in the
// root field of /proc/self/mountinfo lines, those behind /etc/hostname,
// /etc/hosts and /etc/resolv.conf first (the container's own files; other
// ids may come from nested setups), cgroup v1 paths last. It works with any hostname and with
// network_mode: host, where the hostname is the host's.
func containerIDsFromMountInfo(r io.Reader) ([]string, error) {
	type cand struct {
		id   string
		rank int
	}
	var cands []cand
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// Fields: id parent major:minor root mountpoint options… - fstype source superopts
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		root := unescapeMountInfo(f[3])
		if m := cgroupPath.FindStringSubmatch(root); m != nil {
			cands = append(cands, cand{m[1], 4})
			continue
		}
		m := containerPath.FindStringSubmatch(root)
		if m == nil {
			continue
		}
		rank := 3
		switch unescapeMountInfo(f[4]) {
		case "/etc/hostname":
			rank = 0
		case "/etc/hosts":
			rank = 1
		case "/etc/resolv.conf":
			rank = 2
		}
		cands = append(cands, cand{m[1], rank})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return a.rank - b.rank })
	var ids []string
	for _, c := range cands {
		if !slices.Contains(ids, c.id) {
			ids = append(ids, c.id)
		}
	}
	return ids, nil
}

// unescapeMountInfo undoes the octal escapes (\040 for a space…) of
// mountinfo path fields.
func unescapeMountInfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
