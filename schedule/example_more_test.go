package schedule_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/platback/platback/schedule"
)

// RunNow (the sidecar's run-once, a backup asked for over HTTP) goes
// through the same guard as scheduled runs: it never overlaps a run.
func ExampleScheduler_RunNow() {
	started, release := make(chan struct{}), make(chan struct{})
	job := func(ctx context.Context) error {
		started <- struct{}{}
		<-release
		return nil
	}
	s, err := schedule.New(schedule.Spec{Cron: "@daily"}, job,
		schedule.WithLogger(slog.New(slog.DiscardHandler)),
		schedule.OnRunEnd(func(r schedule.RunInfo) { fmt.Println("run ended, manual:", r.Manual, "error:", r.Err) }))
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error)
	go func() { done <- s.RunNow(context.Background()) }()
	<-started
	fmt.Println("second run:", s.RunNow(context.Background()))
	close(release)
	fmt.Println("first run:", <-done)

	if err := s.Shutdown(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println(errors.Is(s.RunNow(context.Background()), schedule.ErrClosed))
	// Output:
	// second run: schedule: a run is already in progress
	// run ended, manual: true error: <nil>
	// first run: <nil>
	// true
}

// Around daylight-saving changes a cron schedule follows the wall clock as
// cron(8) does; Prev finds the run that should have happened last (the
// health check's "is the last backup overdue?").
func ExampleTimetable_Next() {
	t, err := schedule.ParseSpec(schedule.Spec{Cron: "30 2 * * *", TZ: "Europe/Paris"})
	if err != nil {
		fmt.Println(err)
		return
	}
	paris := t.Location()
	// Clocks jump from 02:00 to 03:00 on 29 March 2026: 02:30 does not
	// exist that night, and the run fires at the jump.
	from := time.Date(2026, 3, 28, 12, 0, 0, 0, paris)
	for range 3 {
		from = t.Next(from)
		fmt.Println(from.Format("Mon Jan 2 15:04 MST"))
	}
	fmt.Println("last before Mar 30 noon:", t.Prev(time.Date(2026, 3, 30, 12, 0, 0, 0, paris)).Format("Jan 2 15:04 MST"))
	fmt.Println(t)
	// Output:
	// Sun Mar 29 03:00 CEST
	// Mon Mar 30 02:30 CEST
	// Tue Mar 31 02:30 CEST
	// last before Mar 30 noon: Mar 30 02:30 CEST
	// 30 2 * * * Europe/Paris
}

// Validate checks a Spec at start-up; each error names the field, the
// value and the fix.
func ExampleSpec_Validate() {
	for _, spec := range []schedule.Spec{
		{Cron: "0 2 * * *", TZ: "Europe/Pariss"},
		{Cron: "0 2 * * *", Stagger: 20 * time.Minute},
		{Cron: "@every 30s"},
	} {
		err := spec.Validate()
		var se *schedule.SpecError
		if errors.As(err, &se) {
			fmt.Printf("%s: %v\n", se.Field, err)
		}
	}
	// Output:
	// TZ: schedule: time zone "Europe/Pariss": unknown time zone; want an IANA name such as "Europe/Paris" or "UTC" (the binary needs tzdata: import time/tzdata or install zoneinfo)
	// Stagger: schedule: stagger "20m0s": the offset is derived from the project name, which is empty; set Spec.Name (the compose project) or set the stagger to 0
	// Cron: schedule: cron "@every 30s": interval 30s is shorter than 1m; want "@every <duration>" with a Go duration of at least 1m, e.g. "@every 6h" or "@every 90m"
}
