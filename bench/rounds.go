package main

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// The rows of the table (bench_test checks them all).
const (
	rowFirst         = "first run (init included): run-once vs restic init + backup"
	rowFirstTarget   = "first run, the target alone vs restic backup alone"
	rowUnchanged     = "unchanged run: run-once vs restic backup"
	rowUnchangedTgt  = "unchanged run, the target alone vs restic backup alone"
	rowPostgres      = "postgres (init included): run-once vs restic init + `pg_dumpall \\| restic backup --stdin`"
	rowPostgresTgt   = "postgres, the dump target alone vs `pg_dumpall \\| restic backup --stdin`"
	rowIdleRSS       = "idle daemon RSS (`sidecar run`, VmRSS)"
	rowRunOnceRSS    = "`sidecar run-once` peak RSS (VmHWM)"
	rowDumpRSS       = "`sidecar dump` peak RSS (the dump's producer)"
	rowWorkerRSS     = "`sidecar worker` peak RSS"
	rowResticRSS     = "restic peak RSS, files: in the worker / on the host"
	rowResticDumpRSS = "restic peak RSS, dump: in the sidecar / on the host"
	rowWorkers       = "worker containers per run (engine events)"
	rowOwnTime       = "platback's own time around the target (run-once − target), median"
	rowCalls         = "restic processes per run"
)

func (b *bench) newReport(ctx context.Context) *report {
	s := b.scale
	return &report{
		title:  fmt.Sprintf("platback vs plain restic — %s scale: a volume of %s in %d files, a PostgreSQL database of %d rows; %d round(s), interleaved", s.Name, mb(s.Bytes), s.Files, s.Rows, b.o.Rounds),
		header: b.machine(ctx),
	}
}

// measure runs the rounds, then the idle and counting measures, and fills
// the report.
func (b *bench) measure(ctx context.Context) error {
	r := b.rep
	first := r.addCase(rowFirst, goal{maxRatio: 1.10})
	firstT := r.addCase(rowFirstTarget, goal{})
	unch := r.addCase(rowUnchanged, goal{maxRatio: 1.5})
	unchT := r.addCase(rowUnchangedTgt, goal{})
	pgRun := r.addCase(rowPostgres, goal{})
	pgT := r.addCase(rowPostgresTgt, goal{maxRatio: 1 / 0.9, throughput: true})

	loadBefore := loadAvg()
	if err := b.warmUp(ctx); err != nil {
		return err
	}
	sctx, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	go b.sampler.run(sctx)
	b.watch = watchWorkers(ctx, b.cli, []string{b.vol.stack.Project, b.pg.stack.Project}, b.sampler)

	type interval struct{ start, end time.Time }
	runs := map[*caseResult][]interval{}
	var hostFilesRSS, hostDumpRSS int64
	var work struct {
		pb            runResult
		rs            resticSummary
		dumpBytes     uint64
		pbDumpAdded   uint64
		pbFirstTarget time.Duration
	}

	platback := func(c, target *caseResult, s *side, repo string) func() error {
		return func() error {
			var took time.Duration
			var res runResult
			start := time.Now()
			err := b.sampler.measure(func() (err error) {
				took, res, err = b.runOnce(ctx, s.sidecar, repo)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			runs[c] = append(runs[c], interval{start, time.Now()})
			c.platback = append(c.platback, took)
			target.platback = append(target.platback, res.Targets[0].Duration)
			switch c {
			case first:
				work.pb = res
			case pgRun:
				work.pbDumpAdded = res.Targets[0].BytesAdded
			}
			b.logf("  platback %-9s %6.2f s (target %6.2f s)", shortName(c, first, unch), took.Seconds(), res.Targets[0].Duration.Seconds())
			return nil
		}
	}
	for i := 1; i <= b.o.Rounds; i++ {
		b.logf("round %d/%d", i, b.o.Rounds)
		names := map[string]string{}
		for _, k := range []string{"vol-pb", "vol-rs", "pg-pb", "pg-rs"} {
			names[k] = fmt.Sprintf("%s-r%d-%s", b.runID, i, k)
		}
		repo := map[string]string{}
		for k, n := range names {
			u, err := b.bucket(ctx, n)
			if err != nil {
				return err
			}
			repo[k] = u
		}
		resticFirst := func() error {
			init, err := b.restic.run(ctx, repo["vol-rs"], "init")
			if err != nil {
				return err
			}
			bk, err := b.restic.backup(ctx, repo["vol-rs"], b.dataDir)
			if err != nil {
				return err
			}
			first.restic = append(first.restic, init.took+bk.took)
			firstT.restic = append(firstT.restic, bk.took)
			hostFilesRSS = max(hostFilesRSS, bk.maxRSS)
			work.rs = bk.summary
			b.logf("  restic   first     %6.2f s (backup %6.2f s)", (init.took + bk.took).Seconds(), bk.took.Seconds())
			return nil
		}
		resticUnchanged := func() error {
			bk, err := b.restic.backup(ctx, repo["vol-rs"], b.dataDir)
			if err != nil {
				return err
			}
			unch.restic = append(unch.restic, bk.took)
			unchT.restic = append(unchT.restic, bk.took)
			hostFilesRSS = max(hostFilesRSS, bk.maxRSS)
			b.logf("  restic   unchanged %6.2f s", bk.took.Seconds())
			return nil
		}
		resticDump := func() error {
			init, err := b.restic.run(ctx, repo["pg-rs"], "init")
			if err != nil {
				return err
			}
			pipe, err := b.restic.dumpPipe(ctx, repo["pg-rs"], b.db)
			if err != nil {
				return err
			}
			pgRun.restic = append(pgRun.restic, init.took+pipe.took)
			pgT.restic = append(pgT.restic, pipe.took)
			hostDumpRSS = max(hostDumpRSS, pipe.maxRSS)
			work.dumpBytes = pipe.summary.TotalBytesProcessed
			b.logf("  restic   postgres  %6.2f s (pipe %6.2f s, %s)", (init.took + pipe.took).Seconds(), pipe.took.Seconds(), mb(int64(pipe.summary.TotalBytesProcessed)))
			return nil
		}
		// Interleaved; which side goes first alternates from round to
		// round. The unchanged runs follow each side's own first run.
		pairs := [][2]func() error{
			{platback(first, firstT, b.vol, repo["vol-pb"]), resticFirst},
			{platback(unch, unchT, b.vol, repo["vol-pb"]), resticUnchanged},
			{platback(pgRun, pgT, b.pg, repo["pg-pb"]), resticDump},
		}
		for _, p := range pairs {
			if i%2 == 0 {
				p[0], p[1] = p[1], p[0]
			}
			for _, step := range p {
				if err := step(); err != nil {
					return err
				}
			}
		}
		for _, n := range names {
			if err := b.removeBucket(ctx, n); err != nil {
				return err
			}
		}
	}
	stopSampler()

	// Idle: the daemon after the runs, a moment later.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Second):
	}
	idle, daemonPeak, err := daemonRSS(ctx, b.cli, b.vol.sidecar)
	if err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // the last worker events on their way
	b.watch.stop()
	workers := map[*caseResult][]int{}
	for c, ivs := range runs {
		for _, iv := range ivs {
			workers[c] = append(workers[c], b.watch.createdBetween(iv.start, iv.end))
		}
	}

	idleGoal := "< 20 MB: met"
	if float64(idle)*1024/1e6 >= 20 {
		idleGoal = "< 20 MB: **missed**"
	}
	r.addExtra(rowIdleRSS, fmt.Sprintf("%s (peak %s)", kbMB(idle), kbMB(daemonPeak)), idleGoal)
	r.addExtra(rowRunOnceRSS, kbMB(b.sampler.peak("sidecar run-once")), "")
	r.addExtra(rowDumpRSS, fmt.Sprintf("%s for a %s dump", kbMB(b.sampler.peak("sidecar dump")), mb(int64(work.dumpBytes))), "flat in dump size")
	r.addExtra(rowWorkerRSS, kbMB(b.sampler.peak("sidecar worker")), "")
	r.addExtra(rowResticRSS, kbMB(b.sampler.peak("restic in worker"))+" / "+kbMB(hostFilesRSS), "")
	r.addExtra(rowResticDumpRSS, kbMB(b.sampler.peak("restic in sidecar"))+" / "+kbMB(hostDumpRSS), "")
	r.addExtra(rowWorkers, fmt.Sprintf("first run %s, unchanged run %s, postgres %s",
		intsSummary(workers[first]), intsSummary(workers[unch]), intsSummary(workers[pgRun])), "one per run or per stop window")
	r.addExtra(rowOwnTime, fmt.Sprintf("first run %s, unchanged run %s, postgres %s",
		seconds(median(ownTime(first, firstT))), seconds(median(ownTime(unch, unchT))), seconds(median(ownTime(pgRun, pgT)))), "")
	if len(work.pb.Targets) == 1 {
		t := work.pb.Targets[0]
		r.addExtra("work of a first run: files new, data added", fmt.Sprintf("platback %d, %s; restic %d, %s",
			t.FilesNew, mb(int64(t.BytesAdded)), work.rs.FilesNew, mb(int64(work.rs.DataAdded))), "the same")
	}
	if len(pgT.platback) > 0 && work.dumpBytes > 0 {
		r.addExtra("dump throughput (median)", fmt.Sprintf("platback %.1f MB/s, restic %.1f MB/s (%s dump)",
			float64(work.dumpBytes)/1e6/median(pgT.platback).Seconds(), float64(work.dumpBytes)/1e6/median(pgT.restic).Seconds(), mb(int64(work.dumpBytes))), "")
	}

	if b.o.Count {
		calls, err := b.countCalls(ctx)
		if err != nil {
			return fmt.Errorf("counting pass: %w", err)
		}
		for _, c := range calls {
			r.addExtra(rowCalls+": "+c[0], c[1], "")
		}
	}
	r.header = append(r.header, fmt.Sprintf("load average (1/5/15 min) before %s, after %s", loadBefore, loadAvg()))
	r.notes = append(r.notes,
		"Times are wall times. platback: `sidecar run-once --json` run in the running sidecar container through the Engine's exec API "+
			"(as `docker exec` does), from the exec's creation to its exit; \"the target alone\" is the run's own duration of the one target "+
			"(worker container and restic for files, restic with `sidecar dump` as its producer for the database). restic: the pinned binary run "+
			"on the host, reading the volume's directory under /var/lib/docker/volumes (the files the worker reads through its mount), with its own "+
			"cache directory and a stable --host; `docker exec … pg_dumpall` piped into `restic backup --stdin`. Same MinIO on 127.0.0.1 for both, "+
			"a fresh empty bucket per side and round. The ratio is each round's platback/restic; goals are checked on the median.")
	return nil
}

// ownTime is each round's platback time of run minus its target's.
func ownTime(run, target *caseResult) []time.Duration {
	var d []time.Duration
	for i := range min(len(run.platback), len(target.platback)) {
		d = append(d, run.platback[i]-target.platback[i])
	}
	return d
}

// shortName labels a volume row in the progress lines.
func shortName(c, first, unch *caseResult) string {
	switch c {
	case first:
		return "first"
	case unch:
		return "unchanged"
	}
	return "postgres"
}

// countCalls is the untimed counting pass: the sidecars recreated from
// the counting image, one first and one unchanged run of the volume and
// one run of the database (the two stacks side by side), each stack on a
// fresh bucket; it returns the restic processes of each run, by kind.
func (b *bench) countCalls(ctx context.Context) ([][2]string, error) {
	b.logf("counting pass: restic processes per run (untimed, counting image)")
	type pass struct {
		s      *side
		runs   []string
		counts []string
	}
	passes := []*pass{{s: b.vol, runs: []string{"first run", "unchanged run"}}, {s: b.pg, runs: []string{"postgres"}}}
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range passes {
		g.Go(func() error {
			s := p.s
			s.stack.setEnv("SIDECAR_IMAGE", b.countingImage)
			if out, err := s.stack.compose(gctx, "up", "-d"); err != nil {
				return fmt.Errorf("recreate the sidecar of %s: %w\n%s", s.stack.Project, err, out)
			}
			var err error
			if s.sidecar, err = s.stack.container(gctx, b.cli, "backup"); err != nil {
				return err
			}
			if err := waitLog(gctx, b.cli, s.sidecar, "start-up check passed", 2*time.Minute); err != nil {
				return err
			}
			if s.calls, err = b.callLog(gctx, s.stack); err != nil {
				return err
			}
			bucket := s.stack.Project + "-count"
			repo, err := b.bucket(gctx, bucket)
			if err != nil {
				return err
			}
			defer b.removeBucket(context.WithoutCancel(gctx), bucket)
			for range p.runs {
				before := len(s.calls.lines())
				if _, _, err := b.runOnce(gctx, s.sidecar, repo); err != nil {
					return err
				}
				p.counts = append(p.counts, summarizeCalls(s.calls.lines()[before:]))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out [][2]string
	for _, p := range passes {
		for i, name := range p.runs {
			out = append(out, [2]string{name, p.counts[i]})
		}
	}
	return out, nil
}
