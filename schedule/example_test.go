package schedule_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/platback/platback/schedule"
)

// The sidecar's wiring: the schedule from its environment, checked at
// start-up; skips counted for metrics; SIGTERM (docker stop) cancels a
// running backup and waits for it to clean up.
func Example() {
	backup := func(ctx context.Context) error {
		// credentials, EnsureRepo, plan, stop containers, back up, restart…
		return ctx.Err()
	}
	spec := schedule.Spec{
		Cron:    "0 2 * * *",      // BACKUP_CRON
		TZ:      "Europe/Paris",   // BACKUP_TZ
		Stagger: 20 * time.Minute, // BACKUP_STAGGER
		Name:    "mattermost",     // the compose project
	}
	s, err := schedule.New(spec, backup,
		schedule.WithLogger(slog.Default()),
		schedule.OnSkip(func(due time.Time) { /* skippedRuns.Inc() */ }),
		schedule.OnRunEnd(func(r schedule.RunInfo) { /* lastRunSeconds.Set(r.Duration().Seconds()) */ }),
	)
	if err != nil {
		var se *schedule.SpecError
		if errors.As(err, &se) && se.Field == "Cron" {
			log.Fatalf("BACKUP_CRON %q: %s", se.Value, se.Problem)
		}
		log.Fatal(err)
	}
	s.Start()
	if next, err := s.NextRun(); err == nil {
		slog.Info("next backup", "at", next) // 02:15:51 Paris time
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if err := s.Shutdown(shutdownCtx); err != nil {
		slog.Error("backup did not stop in time", "error", err)
	}
}

// Three stacks on one VM share BACKUP_CRON="0 2 * * *" and
// BACKUP_STAGGER=20m; each gets a fixed offset from its project name.
func ExampleStaggerOffset() {
	for _, project := range []string{"mattermost", "n8n", "vault"} {
		off := schedule.StaggerOffset(project, 20*time.Minute)
		t, _ := schedule.ParseSpec(schedule.Spec{Cron: "0 2 * * *", TZ: "UTC", Stagger: 20 * time.Minute, Name: project})
		next := t.Next(time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC))
		fmt.Printf("%-10s offset %-7s runs at %s\n", project, off, next.Format("15:04:05"))
	}
	// Output:
	// mattermost offset 15m51s  runs at 02:15:51
	// n8n        offset 11m27s  runs at 02:11:27
	// vault      offset 11m43s  runs at 02:11:43
}

// ParseSpec is pure: validate at start-up, compute run times, print the
// error a user sees.
func ExampleParseSpec() {
	t, err := schedule.ParseSpec(schedule.Spec{Cron: "@every 6h"})
	if err != nil {
		log.Fatal(err)
	}
	from := time.Date(2026, 1, 10, 7, 13, 0, 0, time.UTC)
	for range 3 {
		from = t.Next(from)
		fmt.Println(from.Format("Jan 2 15:04 MST"))
	}

	_, err = schedule.ParseSpec(schedule.Spec{Cron: "0 0 2 * * *"})
	fmt.Println(err)
	fmt.Println(errors.Is(err, schedule.ErrBadCron))
	// Output:
	// Jan 10 12:00 UTC
	// Jan 10 18:00 UTC
	// Jan 11 00:00 UTC
	// schedule: cron "0 0 2 * * *": 6 fields: a leading seconds field is not supported (backups are scheduled to the minute); drop it: "0 2 * * *"
	// true
}
