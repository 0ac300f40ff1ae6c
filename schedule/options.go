package schedule

import (
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
)

// Option configures a Scheduler.
type Option func(*options)

type options struct {
	logger     *slog.Logger
	clock      clockwork.Clock
	onSkip     func(due time.Time)
	onRunStart func(RunInfo)
	onRunEnd   func(RunInfo)
}

// RunInfo describes one run of the job, for the OnRunStart and OnRunEnd
// hooks.
type RunInfo struct {
	// Manual is true for a run started by RunNow.
	Manual bool
	// Start is when the run started, by the Scheduler's clock.
	Start time.Time
	// End is when the job returned; zero in OnRunStart.
	End time.Time
	// Err is what the job returned (a recovered panic becomes an error);
	// nil in OnRunStart.
	Err error
}

// Duration is End - Start, or 0 while the run is going.
func (r RunInfo) Duration() time.Duration {
	if r.End.IsZero() {
		return 0
	}
	return r.End.Sub(r.Start)
}

// WithLogger sets the logger (default slog.Default()). The Scheduler logs
// its start with the next run time, each run's start and end (with the next
// run time), skips and shutdown; gocron's own messages go out at debug level.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithClock sets the clock that times runs (default: the real clock). Tests
// pass a clockwork.FakeClock and advance it.
func WithClock(c clockwork.Clock) Option {
	return func(o *options) {
		if c != nil {
			o.clock = c
		}
	}
}

// OnSkip calls fn, with the time the skipped run was due, each time a
// scheduled run is skipped because a run is still going (the sidecar counts
// these in a metric). fn runs on the scheduler's goroutine and must return
// quickly.
func OnSkip(fn func(due time.Time)) Option {
	return func(o *options) { o.onSkip = fn }
}

// OnRunStart calls fn before each run of the job, scheduled or manual, on
// the run's goroutine; fn must return quickly.
func OnRunStart(fn func(RunInfo)) Option {
	return func(o *options) { o.onRunStart = fn }
}

// OnRunEnd calls fn after each run of the job, scheduled or manual, with its
// end time and error, on the run's goroutine; fn must return quickly.
// Scheduler.NextRun already reports the following run when fn is called.
func OnRunEnd(fn func(RunInfo)) Option {
	return func(o *options) { o.onRunEnd = fn }
}
