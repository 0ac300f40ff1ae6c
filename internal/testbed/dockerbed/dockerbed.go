// Package dockerbed gives tests real Docker Engine resources — a locally
// built helper image, containers, volumes — that are labelled, removed by
// t.Cleanup, and swept by the next run when a test process crashed.
//
// Nothing is pulled: the only image is built from a static Go program
// (./pbhelper) compiled by the test itself and copied into a FROM scratch
// image through the engine's build API.
package dockerbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/testbed"
)

// StaleAfter is how old a labelled resource without a readable owner must be
// before Sweep removes it.
const StaleAfter = time.Hour

var sweepOnce sync.Once

// Client returns a client for the machine's Docker Engine, configured from
// DOCKER_HOST and friends with API version negotiation, and fails the test
// when the engine does not answer. The first call in a process sweeps what
// crashed runs left behind (see Sweep).
func Client(tb testing.TB) *client.Client {
	tb.Helper()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		tb.Fatalf("dockerbed: docker client: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		tb.Fatalf("dockerbed: the Docker Engine does not answer (%v): these tests need a running engine (docker info)", err)
	}
	sweepOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := Sweep(ctx, cli); err != nil {
			tb.Logf("dockerbed: sweep of leftovers: %v", err)
		}
	})
	return cli
}

// Owner is the value of testbed.Label on every resource this process
// creates: "<pid>/<start time in clock ticks>", so Sweep can tell a live
// owner from a dead one even when a PID is reused.
func Owner() string {
	return ownerOf(os.Getpid())
}

func ownerOf(pid int) string {
	start, err := processStart(pid)
	if err != nil {
		return ""
	}
	return strconv.Itoa(pid) + "/" + start
}

// processStart reads field 22 (starttime) of /proc/<pid>/stat.
func processStart(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	s := string(b)
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("dockerbed: unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return "", fmt.Errorf("dockerbed: short /proc/%d/stat", pid)
	}
	return fields[19], nil
}

// ownerAlive reports whether a label value names a live process, and whether
// it could be read as an owner at all.
func ownerAlive(value string) (alive, parsed bool) {
	pidStr, start, ok := strings.Cut(value, "/")
	if !ok {
		return false, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 || start == "" {
		return false, false
	}
	cur, err := processStart(pid)
	return err == nil && cur == start, true
}

// Labels returns extra plus the owner label, for a resource a test creates.
func Labels(extra map[string]string) map[string]string {
	l := make(map[string]string, len(extra)+1)
	for k, v := range extra {
		l[k] = v
	}
	l[testbed.Label] = Owner()
	return l
}

// UniqueName returns prefix followed by 8 random hex digits, a name no other
// run uses (Docker names and compose project names accept it).
func UniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }
