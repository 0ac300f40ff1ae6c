package schedule_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/schedule"
)

// wait is how long a test waits for something that should happen at once;
// generous, since only a broken scheduler ever reaches it.
const wait = 10 * time.Second

// bed is a Scheduler on a fake clock with its hooks wired to channels.
type bed struct {
	s      *schedule.Scheduler
	clock  *clockwork.FakeClock
	starts chan schedule.RunInfo
	ends   chan schedule.RunInfo
	skips  chan time.Time
}

func newBed(t *testing.T, spec schedule.Spec, now time.Time, job func(context.Context) error) *bed {
	t.Helper()
	b := &bed{
		clock:  clockwork.NewFakeClockAt(now),
		starts: make(chan schedule.RunInfo, 16),
		ends:   make(chan schedule.RunInfo, 16),
		skips:  make(chan time.Time, 16),
	}
	s, err := schedule.New(spec, job,
		schedule.WithClock(b.clock),
		schedule.WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))),
		schedule.OnRunStart(func(r schedule.RunInfo) { b.starts <- r }),
		schedule.OnRunEnd(func(r schedule.RunInfo) { b.ends <- r }),
		schedule.OnSkip(func(due time.Time) { b.skips <- due }),
	)
	require.NoError(t, err)
	b.s = s
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		assert.NoError(t, s.Shutdown(ctx))
	})
	return b
}

// advanceTo checks that the next run is due at want, waits until gocron has
// armed its timer, and moves the fake clock exactly there.
func (b *bed) advanceTo(t *testing.T, want time.Time) {
	t.Helper()
	next, err := b.s.NextRun()
	require.NoError(t, err)
	require.True(t, want.Equal(next), "NextRun = %s, want %s", next, want)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, b.clock.BlockUntilContext(ctx, 1), "gocron armed no timer")
	b.clock.Advance(want.Sub(b.clock.Now()))
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// The job fires at the cron time read in the given time zone, and NextRun
// then moves to the following day.
func TestSchedulerFiresAtCronTimeInTimeZone(t *testing.T) {
	paris := mustLoc(t, "Europe/Paris")
	// 00:30 UTC is 01:30 in Paris: 02:00 Paris comes in 30 minutes, 02:00
	// UTC (what a scheduler ignoring TZ would use) in 90.
	b := newBed(t, schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris"}, at(time.UTC, 2026, 1, 10, 0, 30, 0),
		func(context.Context) error { return nil })
	b.s.Start()

	first := at(paris, 2026, 1, 10, 2, 0, 0)
	b.advanceTo(t, first)
	run := recv(t, b.starts, "the 02:00 Paris run")
	assert.True(t, first.Equal(run.Start), "started at %s, want %s", run.Start, first)
	assert.False(t, run.Manual)
	end := recv(t, b.ends, "the end of the run")
	assert.NoError(t, end.Err)

	next, err := b.s.NextRun()
	require.NoError(t, err)
	assert.Equal(t, at(paris, 2026, 1, 11, 2, 0, 0), next)
	assert.Equal(t, paris, next.Location())
	assert.Zero(t, b.s.Skipped())
}

// With a stagger every run fires at cron time + offset, and NextRun says
// so, before Start, after Start and after a run.
func TestSchedulerStaggerShiftsRunsAndNextRun(t *testing.T) {
	spec := schedule.Spec{Cron: "0 2 * * *", TZ: "UTC", Stagger: 20 * time.Minute, Name: "mattermost"}
	b := newBed(t, spec, at(time.UTC, 2026, 1, 10, 0, 0, 0), func(context.Context) error { return nil })
	offset := 15*time.Minute + 51*time.Second
	require.Equal(t, offset, b.s.Timetable().Offset())

	first := at(time.UTC, 2026, 1, 10, 2, 0, 0).Add(offset)
	before, err := b.s.NextRun()
	require.NoError(t, err)
	assert.Equal(t, first, before, "NextRun before Start")

	b.s.Start()
	for day := range 3 {
		due := first.AddDate(0, 0, day)
		b.advanceTo(t, due) // asserts NextRun == due
		run := recv(t, b.starts, "a staggered run")
		assert.True(t, due.Equal(run.Start), "started at %s, want %s", run.Start, due)
		recv(t, b.ends, "the end of the run")
	}
	next, err := b.s.NextRun()
	require.NoError(t, err)
	assert.Equal(t, first.AddDate(0, 0, 3), next)
}

// "@every" runs on multiples of the interval, through gocron too.
func TestSchedulerEvery(t *testing.T) {
	spec := schedule.Spec{Cron: "@every 6h", Stagger: 20 * time.Minute, Name: "vault"}
	b := newBed(t, spec, at(time.UTC, 2026, 1, 10, 7, 13, 0), func(context.Context) error { return nil })
	b.s.Start()
	for _, due := range []time.Time{at(time.UTC, 2026, 1, 10, 12, 11, 43), at(time.UTC, 2026, 1, 10, 18, 11, 43)} {
		b.advanceTo(t, due)
		run := recv(t, b.starts, "an interval run")
		assert.True(t, due.Equal(run.Start), "started at %s, want %s", run.Start, due)
		recv(t, b.ends, "the end of the run")
	}
}

// A run still going when the next one is due: the due run is skipped and
// counted (gocron singleton mode, LimitModeReschedule), the running job is
// not disturbed, and the schedule goes on.
func TestSchedulerSkipsOverlappingRun(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var calls atomic.Int32
	b := newBed(t, schedule.Spec{Cron: "@hourly", TZ: "UTC"}, at(time.UTC, 2026, 1, 10, 10, 30, 0),
		func(ctx context.Context) error {
			if calls.Add(1) == 1 {
				entered <- struct{}{}
				<-release // the first run outlasts the hour
			}
			return nil
		})
	b.s.Start()

	b.advanceTo(t, at(time.UTC, 2026, 1, 10, 11, 0, 0))
	recv(t, b.starts, "the 11:00 run")
	recv(t, entered, "the job to start")

	noon := at(time.UTC, 2026, 1, 10, 12, 0, 0)
	b.advanceTo(t, noon)
	due := recv(t, b.skips, "the skip of the 12:00 run")
	assert.True(t, noon.Equal(due), "skip due %s, want %s", due, noon)
	assert.Equal(t, uint64(1), b.s.Skipped())
	assert.Equal(t, int32(1), calls.Load(), "the job was not entered twice")
	select {
	case r := <-b.ends:
		t.Fatalf("the first run ended early: %+v", r)
	default:
	}

	close(release)
	recv(t, b.ends, "the end of the 11:00 run")

	b.advanceTo(t, at(time.UTC, 2026, 1, 10, 13, 0, 0)) // NextRun is 13:00, not the skipped 12:00
	recv(t, b.starts, "the 13:00 run")
	recv(t, b.ends, "the end of the 13:00 run")
	assert.Equal(t, int32(2), calls.Load())
	assert.Equal(t, uint64(1), b.s.Skipped())
}

// Shutdown cancels the running job's context and waits for the job to
// return before it returns.
func TestSchedulerShutdownCancelsAndWaits(t *testing.T) {
	var returned atomic.Bool
	b := newBed(t, schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"}, at(time.UTC, 2026, 1, 10, 1, 0, 0),
		func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond) // cleanup after cancellation, e.g. restarting containers
			returned.Store(true)
			return ctx.Err()
		})
	b.s.Start()
	b.advanceTo(t, at(time.UTC, 2026, 1, 10, 2, 0, 0))
	recv(t, b.starts, "the 02:00 run")

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, b.s.Shutdown(ctx))
	assert.True(t, returned.Load(), "Shutdown returned before the job")
	end := recv(t, b.ends, "the end of the cancelled run")
	assert.ErrorIs(t, end.Err, context.Canceled)

	_, err := b.s.NextRun()
	assert.ErrorIs(t, err, schedule.ErrClosed)
	assert.ErrorIs(t, b.s.RunNow(context.Background()), schedule.ErrClosed)
	b.s.Start() // no-op after Shutdown
}

// A job that ignores cancellation makes Shutdown give up at the caller's
// deadline; a second Shutdown waits again.
func TestSchedulerShutdownDeadline(t *testing.T) {
	release := make(chan struct{})
	var sawCancel atomic.Bool
	b := newBed(t, schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"}, at(time.UTC, 2026, 1, 10, 1, 0, 0),
		func(ctx context.Context) error {
			<-release
			sawCancel.Store(ctx.Err() != nil)
			return nil
		})
	b.s.Start()
	b.advanceTo(t, at(time.UTC, 2026, 1, 10, 2, 0, 0))
	recv(t, b.starts, "the 02:00 run")

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := b.s.Shutdown(short)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "has not returned")

	close(release)
	ctx, cancel2 := context.WithTimeout(context.Background(), wait)
	defer cancel2()
	require.NoError(t, b.s.Shutdown(ctx))
	assert.True(t, sawCancel.Load(), "the job's context was cancelled by the first Shutdown")
}

// RunNow runs the job in the caller's goroutine through the same guard:
// it returns the job's error, refuses to overlap, makes a scheduled run
// that comes due meanwhile a counted skip, and is cancelled by Shutdown.
func TestSchedulerRunNow(t *testing.T) {
	errBoom := errors.New("boom")
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var mode atomic.Int32 // 0: fail at once, 1: block until release or cancel
	b := newBed(t, schedule.Spec{Cron: "@hourly", TZ: "UTC"}, at(time.UTC, 2026, 1, 10, 10, 30, 0),
		func(ctx context.Context) error {
			if mode.Load() == 0 {
				return errBoom
			}
			entered <- struct{}{}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})

	// Before Start: the run-once path.
	require.ErrorIs(t, b.s.RunNow(context.Background()), errBoom)
	run := recv(t, b.starts, "the manual run")
	assert.True(t, run.Manual)
	end := recv(t, b.ends, "the end of the manual run")
	assert.ErrorIs(t, end.Err, errBoom)

	b.s.Start()
	mode.Store(1)
	done := make(chan error, 1)
	go func() { done <- b.s.RunNow(context.Background()) }()
	recv(t, entered, "the job to start")
	recv(t, b.starts, "the second manual run")

	assert.ErrorIs(t, b.s.RunNow(context.Background()), schedule.ErrRunning, "no overlap with a manual run")
	assert.Zero(t, b.s.Skipped(), "a refused RunNow is not a skipped scheduled run")

	b.advanceTo(t, at(time.UTC, 2026, 1, 10, 11, 0, 0))
	recv(t, b.skips, "the skip of the 11:00 run")
	assert.Equal(t, uint64(1), b.s.Skipped())

	close(release)
	require.NoError(t, recv(t, done, "RunNow to return"))
	recv(t, b.ends, "the end of the second manual run")

	// A manual run is cancelled by Shutdown, which waits for it.
	release = make(chan struct{})
	go func() { done <- b.s.RunNow(context.Background()) }()
	recv(t, entered, "the job to start")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, b.s.Shutdown(ctx))
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	default:
		t.Fatal("Shutdown returned before RunNow's job")
	}
}

// A panicking job becomes a failed run; the scheduler goes on.
func TestSchedulerRecoversPanic(t *testing.T) {
	var calls atomic.Int32
	b := newBed(t, schedule.Spec{Cron: "@hourly", TZ: "UTC"}, at(time.UTC, 2026, 1, 10, 10, 30, 0),
		func(context.Context) error {
			if calls.Add(1) == 1 {
				panic("bug")
			}
			return nil
		})
	b.s.Start()
	b.advanceTo(t, at(time.UTC, 2026, 1, 10, 11, 0, 0))
	end := recv(t, b.ends, "the panicking run")
	require.Error(t, end.Err)
	assert.Contains(t, end.Err.Error(), "panicked: bug")
	b.advanceTo(t, at(time.UTC, 2026, 1, 10, 12, 0, 0))
	end = recv(t, b.ends, "the next run")
	assert.NoError(t, end.Err)
}

func TestNewRejects(t *testing.T) {
	_, err := schedule.New(schedule.Spec{Cron: "0 2 * *"}, func(context.Context) error { return nil })
	assert.ErrorIs(t, err, schedule.ErrBadCron)
	_, err = schedule.New(schedule.Spec{Cron: "0 2 * * *", TZ: "Mars/Olympus"}, func(context.Context) error { return nil })
	assert.ErrorIs(t, err, schedule.ErrBadTimeZone)
	_, err = schedule.New(schedule.Spec{Cron: "0 2 * * *"}, nil)
	assert.Error(t, err)
}
