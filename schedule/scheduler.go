package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"
)

var (
	// ErrRunning is returned by RunNow when a run (scheduled or manual) is
	// already going; the request is refused, not queued.
	ErrRunning = errors.New("schedule: a run is already in progress")

	// ErrClosed is returned after Shutdown by RunNow and NextRun.
	ErrClosed = errors.New("schedule: scheduler is shut down")
)

// gocronStopTimeout bounds how long gocron itself waits for a job at
// shutdown. Shutdown does its own waiting, within the caller's context,
// before it stops gocron; this only limits gocron's background wait when
// a job ignores its cancelled context.
const gocronStopTimeout = time.Second

// Scheduler runs one job on a Timetable with gocron: never two runs at once,
// skips counted, the job's context cancelled by Shutdown. Its methods are
// safe for concurrent use.
type Scheduler struct {
	tt    *Timetable
	job   func(ctx context.Context) error
	opts  options
	log   *slog.Logger
	clock clockwork.Clock

	cron gocron.Scheduler
	gjob gocron.Job

	// ctx is the parent of every run's context; Shutdown cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	skipped atomic.Uint64

	mu      sync.Mutex
	started bool
	closed  bool
	running bool           // the one-run-at-a-time guard, held while the job runs
	runs    sync.WaitGroup // runs in progress, hooks included; Shutdown waits for them
}

// New validates spec (errors are *SpecError, see ParseSpec) and prepares a
// Scheduler that runs job on it once Start is called. job receives a context
// that Shutdown cancels; it should return promptly when it is done.
func New(spec Spec, job func(ctx context.Context) error, opts ...Option) (*Scheduler, error) {
	if job == nil {
		return nil, errors.New("schedule: New: job is nil")
	}
	tt, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	o := options{logger: slog.Default(), clock: clockwork.NewRealClock()}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Scheduler{tt: tt, job: job, opts: o, clock: o.clock}
	s.log = o.logger.With(slog.String("component", "schedule"))
	if spec.Name != "" {
		s.log = s.log.With(slog.String("project", spec.Name))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	s.cron, err = gocron.NewScheduler(
		gocron.WithClock(o.clock),
		// gocron only sees instants, in UTC: the Timetable handles the
		// time zone and its daylight-saving changes, so gocron's own
		// wall-clock DST adjustments must not apply on top.
		gocron.WithLocation(time.UTC),
		gocron.WithLogger(gocronLogger{s.log}),
		gocron.WithStopTimeout(gocronStopTimeout),
	)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("schedule: %w", err)
	}
	// No gocron.WithSingletonMode: the guard is the Scheduler's own (see
	// begin), because RunNow must share it. A second guard in gocron would
	// be released a little after the job returns, so a run due just then
	// could be refused by one guard and not the other.
	jobOpts := []gocron.JobOption{gocron.WithCronImplementation(timetableCron{tt})}
	if spec.Name != "" {
		jobOpts = append(jobOpts, gocron.WithName(spec.Name))
	}
	s.gjob, err = s.cron.NewJob(gocron.CronJob(tt.String(), false), gocron.NewTask(s.fire), jobOpts...)
	if err != nil {
		s.cancel()
		_ = s.cron.Shutdown()
		return nil, fmt.Errorf("schedule: %w", err)
	}
	return s, nil
}

// Timetable returns the parsed schedule (for logs: offset, location).
func (s *Scheduler) Timetable() *Timetable { return s.tt }

// Start begins scheduling; it does not block. Calling it again, or after
// Shutdown, does nothing.
func (s *Scheduler) Start() {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return
	}
	s.started = true
	s.mu.Unlock()

	s.cron.Start()
	next, _ := s.NextRun()
	s.log.Info("schedule: started",
		slog.String("schedule", s.tt.String()),
		slog.Duration("stagger_offset", s.tt.Offset()),
		slog.Time("next_run", next))
}

// NextRun returns when the next scheduled run fires, stagger offset
// included, in the Timetable's location. Before Start it returns the time
// the first run would fire if started now.
func (s *Scheduler) NextRun() (time.Time, error) {
	s.mu.Lock()
	started, closed := s.started, s.closed
	s.mu.Unlock()
	if closed {
		return time.Time{}, ErrClosed
	}
	now := s.clock.Now()
	if started {
		// gocron's armed time, unless it is stale: gocron drops a fired
		// time only once that run's dispatch is under way.
		if t, err := s.gjob.NextRun(); err == nil && t.After(now) {
			return t.In(s.tt.Location()), nil
		}
	}
	next := s.tt.Next(now)
	if next.IsZero() {
		return next, fmt.Errorf("schedule: %s matches no date in the next five years", s.tt)
	}
	return next, nil
}

// Skipped returns how many scheduled runs were skipped because a run was
// still going when they came due.
func (s *Scheduler) Skipped() uint64 { return s.skipped.Load() }

// RunNow runs the job once, now, in the caller's goroutine, and returns its
// error. It goes through the same guard as scheduled runs: if a run is going
// it returns ErrRunning at once (it neither waits nor counts a skip), and a
// scheduled run that comes due while RunNow's run goes is skipped and
// counted. The job's context is ctx, also cancelled by Shutdown, which waits
// for it. RunNow works without Start and does not move the schedule; after
// Shutdown it returns ErrClosed.
func (s *Scheduler) RunNow(ctx context.Context) error {
	if err := s.begin(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	return s.run(ctx, true)
}

// Shutdown stops scheduling, cancels the running job's context (if a run is
// going) and waits for the job to return, up to ctx. If ctx ends first it
// returns an error wrapping ctx.Err(); calling Shutdown again waits again.
// No run starts after Shutdown begins.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true // from here on begin refuses: no new run, no new runs.Add
	running := s.running
	s.mu.Unlock()

	s.cancel()
	if running {
		s.log.Info("schedule: shutting down: cancelled the running job, waiting for it to return")
	}
	var err error
	done := make(chan struct{})
	go func() {
		s.runs.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("schedule: shutdown: the running job has not returned after its context was cancelled: %w", ctx.Err())
	}
	if first {
		// The guard already refuses new runs; this stops gocron's timers
		// and goroutines.
		if gerr := s.cron.ShutdownWithContext(ctx); gerr != nil && err == nil {
			err = fmt.Errorf("schedule: shutdown: %w", gerr)
		}
		s.log.Info("schedule: stopped", slog.Uint64("skipped_total", s.Skipped()))
	}
	return err
}

// fire is gocron's task: one scheduled run. gocron calls it at each due
// time, in a new goroutine.
func (s *Scheduler) fire() {
	due := s.clock.Now()
	if err := s.begin(); err != nil {
		if errors.Is(err, ErrRunning) {
			s.skip(due)
		}
		return
	}
	_ = s.run(s.ctx, false)
}

// begin takes the one-run-at-a-time guard; run releases it.
func (s *Scheduler) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.running {
		return ErrRunning
	}
	s.running = true
	s.runs.Add(1)
	return nil
}

func (s *Scheduler) skip(due time.Time) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return // a run winding down after Shutdown is not an overlap
	}
	n := s.skipped.Add(1)
	s.log.Warn("schedule: run skipped: the previous run is still going",
		slog.Time("due", due.In(s.tt.Location())),
		slog.Uint64("skipped_total", n),
		slog.Time("next_run", s.tt.Next(due)))
	if s.opts.onSkip != nil {
		s.opts.onSkip(due)
	}
}

// run calls the job, after begin, with hooks and logs. The guard is
// released as soon as the job returns, before OnRunEnd, so that a hook that
// waits for the end of a run sees the Scheduler ready for the next one.
func (s *Scheduler) run(ctx context.Context, manual bool) error {
	defer s.runs.Done()
	released := false
	release := func() {
		if !released {
			released = true
			s.mu.Lock()
			s.running = false
			s.mu.Unlock()
		}
	}
	defer release() // even if a hook panics

	info := RunInfo{Manual: manual, Start: s.clock.Now()}
	s.log.Info("schedule: run starting", slog.Bool("manual", manual))
	if s.opts.onRunStart != nil {
		s.opts.onRunStart(info)
	}
	err := s.call(ctx)
	info.End, info.Err = s.clock.Now(), err
	release()

	attrs := []any{slog.Bool("manual", manual), slog.Duration("duration", info.Duration())}
	if !manual || s.isStarted() {
		attrs = append(attrs, slog.Time("next_run", s.tt.Next(info.End)))
	}
	if err != nil {
		s.log.Error("schedule: run failed", append(attrs, slog.String("error", err.Error()))...)
	} else {
		s.log.Info("schedule: run done", attrs...)
	}
	if s.opts.onRunEnd != nil {
		s.opts.onRunEnd(info)
	}
	return err
}

// call runs the job, turning a panic into an error: one bad run must not
// take the sidecar, and every later run, down.
func (s *Scheduler) call(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("schedule: job panicked: %v", r)
			s.log.Error("schedule: job panicked", slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
		}
	}()
	return s.job(ctx)
}

func (s *Scheduler) isStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// timetableCron lets gocron compute run times from the Timetable, so that
// gocron arms its timers at the staggered times and its NextRun reports
// them.
type timetableCron struct{ tt *Timetable }

// IsValid accepts: ParseSpec has validated the expression.
func (c timetableCron) IsValid(string, *time.Location, time.Time) error { return nil }

// Next returns UTC instants, so that gocron's wall-clock comparisons are
// plain instant comparisons.
func (c timetableCron) Next(lastRun time.Time) time.Time { return c.tt.Next(lastRun).UTC() }

// gocronLogger sends gocron's chatter to debug level, keeping its warnings
// and errors.
type gocronLogger struct{ l *slog.Logger }

func (g gocronLogger) Debug(msg string, args ...any) { g.l.Debug(msg, args...) }
func (g gocronLogger) Info(msg string, args ...any)  { g.l.Debug(msg, args...) }
func (g gocronLogger) Warn(msg string, args ...any)  { g.l.Warn(msg, args...) }
func (g gocronLogger) Error(msg string, args ...any) { g.l.Error(msg, args...) }
