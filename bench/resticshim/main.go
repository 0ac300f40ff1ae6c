// Command resticshim stands in for restic in the bench's counting image
// (only in the bench's untimed counting pass): it appends one line per
// process to /cache/restic-calls.log — the time, the command of the
// container's first process ("run" in the sidecar, "worker" in a worker)
// and restic's arguments (restic's credentials are in its environment,
// never its arguments) — and then runs the real restic.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

func main() {
	where := "?"
	if b, err := os.ReadFile("/proc/1/cmdline"); err == nil {
		if args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"); len(args) > 1 {
			where = args[1]
		}
	}
	if f, err := os.OpenFile("/cache/restic-calls.log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
		fmt.Fprintf(f, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), where, strings.Join(os.Args[1:], " "))
		f.Close()
	}
	err := syscall.Exec("/usr/local/bin/restic.real", os.Args, os.Environ())
	fmt.Fprintln(os.Stderr, "resticshim:", err)
	os.Exit(1)
}
