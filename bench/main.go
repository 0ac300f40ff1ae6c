// Command bench measures the whole platback sidecar against plain restic on
// one machine: the sidecar's run-once in a real compose stack and restic run
// directly on the host, with the same pinned restic binary, the same MinIO
// and the same data, interleaved round by round, and prints min and median
// of each case and the ratio platback/restic next to the goals of issue 12.
//
//	make bench                        # go run ./bench: ~1 GB volume, ~400 MB dump, 3 rounds
//	go run ./bench -quick             # ~100 MB, ~40 MB dump: about a minute
//	go run ./bench -rounds 5
//	go run ./bench -clean             # remove the cached data volumes and exit
//
// It needs the Docker Engine, docker-compose, root (it reads volumes under
// /var/lib/docker/volumes, as restic on the host would) and the pinned tools
// (scripts/tools.sh restic minio). See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// options say what one bench run does.
type options struct {
	Quick  bool // the ~100 MB version
	Rounds int  // interleaved rounds (platback, restic, …)
	// Count adds an untimed pass with a restic that logs its calls, to
	// report the restic processes of each kind of run.
	Count bool
	// DropData removes the cached data volumes at the end too.
	DropData bool
	// Progress receives what the bench is doing (nil: discarded).
	Progress io.Writer
}

func main() {
	o := options{Progress: os.Stderr}
	clean := false
	flag.BoolVar(&o.Quick, "quick", envBool("BENCH_QUICK"), "the small version: ~100 MB / 400 files and a ~40 MB dump (env BENCH_QUICK=1)")
	flag.IntVar(&o.Rounds, "rounds", envInt("BENCH_ROUNDS", 3), "interleaved rounds (env BENCH_ROUNDS)")
	flag.BoolVar(&o.Count, "count", true, "add an untimed pass that counts the restic processes of each kind of run")
	flag.BoolVar(&o.DropData, "drop-data", false, "remove the cached data volumes at the end too (they are kept for the next run by default)")
	flag.BoolVar(&clean, "clean", false, "remove everything the bench left or keeps (cached data volumes included) and exit")
	flag.Parse()
	if o.Rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if clean {
		if err := cleanAll(ctx, o.Progress); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	rep, err := run(ctx, o)
	if rep != nil {
		rep.print(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func envBool(name string) bool {
	v, _ := strconv.ParseBool(os.Getenv(name))
	return v
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// logf writes a progress line with the time since start.
func (b *bench) logf(format string, args ...any) {
	if b.o.Progress == nil {
		return
	}
	fmt.Fprintf(b.o.Progress, "bench %6.1fs  %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}
