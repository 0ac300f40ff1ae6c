package schedule_test

import (
	"errors"
	"fmt"
	"testing"
	"time"
	_ "time/tzdata" // hermetic time zones, whatever the machine has

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/schedule"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

// at is time.Date to the second.
func at(loc *time.Location, y int, m time.Month, d, hh, mm, ss int) time.Time {
	return time.Date(y, m, d, hh, mm, ss, 0, loc)
}

// Valid specs: the first run after a given instant, stagger included.
func TestParseSpecValid(t *testing.T) {
	paris := mustLoc(t, "Europe/Paris")
	ny := mustLoc(t, "America/New_York")
	from := at(time.UTC, 2026, time.January, 10, 7, 13, 0) // Saturday 07:13 UTC
	tests := []struct {
		name string
		spec schedule.Spec
		want time.Time
	}{
		{"five fields", schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"}, at(time.UTC, 2026, 1, 11, 2, 0, 0)},
		{"spaces around and between", schedule.Spec{Cron: "  0   2 * *  * ", TZ: "UTC"}, at(time.UTC, 2026, 1, 11, 2, 0, 0)},
		{"ranges and names", schedule.Spec{Cron: "30 1 * * MON-FRI", TZ: "UTC"}, at(time.UTC, 2026, 1, 12, 1, 30, 0)},
		{"steps", schedule.Spec{Cron: "*/20 * * * *", TZ: "UTC"}, at(time.UTC, 2026, 1, 10, 7, 20, 0)},
		{"@hourly", schedule.Spec{Cron: "@hourly", TZ: "UTC"}, at(time.UTC, 2026, 1, 10, 8, 0, 0)},
		{"@daily", schedule.Spec{Cron: "@daily", TZ: "UTC"}, at(time.UTC, 2026, 1, 11, 0, 0, 0)},
		{"@midnight", schedule.Spec{Cron: "@midnight", TZ: "UTC"}, at(time.UTC, 2026, 1, 11, 0, 0, 0)},
		{"@DAILY any case", schedule.Spec{Cron: "@DAILY", TZ: "UTC"}, at(time.UTC, 2026, 1, 11, 0, 0, 0)},
		{"@weekly is Sunday midnight", schedule.Spec{Cron: "@weekly", TZ: "UTC"}, at(time.UTC, 2026, 1, 11, 0, 0, 0)},
		{"@monthly", schedule.Spec{Cron: "@monthly", TZ: "UTC"}, at(time.UTC, 2026, 2, 1, 0, 0, 0)},
		{"@yearly", schedule.Spec{Cron: "@yearly", TZ: "UTC"}, at(time.UTC, 2027, 1, 1, 0, 0, 0)},
		{"@annually", schedule.Spec{Cron: "@annually", TZ: "UTC"}, at(time.UTC, 2027, 1, 1, 0, 0, 0)},
		{"leap day exists", schedule.Spec{Cron: "0 0 29 2 *", TZ: "UTC"}, at(time.UTC, 2028, 2, 29, 0, 0, 0)},
		{"TZ Paris winter", schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris"}, at(paris, 2026, 1, 11, 2, 0, 0)},
		{"TZ New York", schedule.Spec{Cron: "0 2 * * *", TZ: "America/New_York"}, at(ny, 2026, 1, 11, 2, 0, 0)},
		{"TZ Local", schedule.Spec{Cron: "0 2 * * *", TZ: "Local"}, nextLocal2AM(from)},
		{"TZ empty is Local", schedule.Spec{Cron: "0 2 * * *"}, nextLocal2AM(from)},
		{"stagger shifts the run", schedule.Spec{Cron: "0 2 * * *", TZ: "UTC", Stagger: 20 * time.Minute, Name: "mattermost"},
			at(time.UTC, 2026, 1, 11, 2, 15, 51)},
		{"stagger in a time zone", schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris", Stagger: 20 * time.Minute, Name: "n8n"},
			at(paris, 2026, 1, 11, 2, 11, 27)},
		{"stagger just under a day", schedule.Spec{Cron: "@daily", TZ: "UTC", Stagger: 24*time.Hour - time.Second, Name: "vault"},
			at(time.UTC, 2026, 1, 10, 0, 0, 0).Add(schedule.StaggerOffset("vault", 24*time.Hour-time.Second))},
		{"@every aligned to UTC midnight", schedule.Spec{Cron: "@every 6h"}, at(time.UTC, 2026, 1, 10, 12, 0, 0)},
		{"@every ignores TZ", schedule.Spec{Cron: "@every 6h", TZ: "Europe/Paris"}, at(time.UTC, 2026, 1, 10, 12, 0, 0)},
		{"@every 90m", schedule.Spec{Cron: "@every 90m"}, at(time.UTC, 2026, 1, 10, 7, 30, 0)},
		{"@every 1m minimum", schedule.Spec{Cron: "@every 1m"}, at(time.UTC, 2026, 1, 10, 7, 14, 0)},
		{"@every with stagger", schedule.Spec{Cron: "@every 6h", Stagger: 20 * time.Minute, Name: "vault"},
			at(time.UTC, 2026, 1, 10, 12, 11, 43)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, tt.spec.Validate())
			tab, err := schedule.ParseSpec(tt.spec)
			require.NoError(t, err)
			got := tab.Next(from)
			assert.True(t, tt.want.Equal(got), "Next(%s) = %s, want %s", from, got, tt.want)
			assert.Equal(t, tt.spec, tab.Spec())
		})
	}
}

func nextLocal2AM(from time.Time) time.Time {
	l := from.In(time.Local)
	d := time.Date(l.Year(), l.Month(), l.Day(), 2, 0, 0, 0, time.Local)
	if !d.After(from) {
		d = time.Date(l.Year(), l.Month(), l.Day()+1, 2, 0, 0, 0, time.Local)
	}
	return d
}

// Invalid specs: the sentinel, and a message naming the value and the fix.
func TestParseSpecInvalid(t *testing.T) {
	tests := []struct {
		name     string
		spec     schedule.Spec
		sentinel error
		field    string
		msg      []string
	}{
		{"empty cron", schedule.Spec{}, schedule.ErrBadCron, "Cron", []string{`cron "": empty`, "want 5 fields", "crontab(5)"}},
		{"blank cron", schedule.Spec{Cron: "   "}, schedule.ErrBadCron, "Cron", []string{"empty"}},
		{"four fields", schedule.Spec{Cron: "0 2 * *"}, schedule.ErrBadCron, "Cron",
			[]string{`cron "0 2 * *": got 4 fields; want 5 fields (minute hour day-of-month month day-of-week) or @yearly/@monthly/@weekly/@daily/@hourly`, "see crontab(5)"}},
		{"six fields (seconds)", schedule.Spec{Cron: "0 0 2 * * *"}, schedule.ErrBadCron, "Cron",
			[]string{`cron "0 0 2 * * *": 6 fields`, "seconds field is not supported", `drop it: "0 2 * * *"`}},
		{"seven fields", schedule.Spec{Cron: "0 0 2 * * * 2026"}, schedule.ErrBadCron, "Cron", []string{"got 7 fields"}},
		{"minute out of range", schedule.Spec{Cron: "61 2 * * *"}, schedule.ErrBadCron, "Cron", []string{`cron "61 2 * * *"`, "61", "want 5 fields"}},
		{"hour out of range", schedule.Spec{Cron: "0 24 * * *"}, schedule.ErrBadCron, "Cron", []string{"24"}},
		{"bad weekday", schedule.Spec{Cron: "0 2 * * FOO"}, schedule.ErrBadCron, "Cron", []string{"FOO"}},
		{"not a number", schedule.Spec{Cron: "x 2 * * *"}, schedule.ErrBadCron, "Cron", []string{`"x 2 * * *"`}},
		{"never matches", schedule.Spec{Cron: "0 0 30 2 *"}, schedule.ErrBadCron, "Cron", []string{"never matches a real date"}},
		{"unknown descriptor", schedule.Spec{Cron: "@reboot"}, schedule.ErrBadCron, "Cron", []string{"unknown descriptor @reboot", "@daily"}},
		{"descriptor with argument", schedule.Spec{Cron: "@daily 2"}, schedule.ErrBadCron, "Cron", []string{"@daily takes no argument"}},
		{"@every without duration", schedule.Spec{Cron: "@every"}, schedule.ErrBadCron, "Cron", []string{`"@every <duration>"`}},
		{"@every bare number", schedule.Spec{Cron: "@every 6"}, schedule.ErrBadCron, "Cron", []string{`bad duration "6"`, "@every 6h"}},
		{"@every too short", schedule.Spec{Cron: "@every 30s"}, schedule.ErrBadCron, "Cron", []string{"shorter than 1m"}},
		{"@every negative", schedule.Spec{Cron: "@every -1h"}, schedule.ErrBadCron, "Cron", []string{"shorter than 1m"}},
		{"@every two values", schedule.Spec{Cron: "@every 1h 2h"}, schedule.ErrBadCron, "Cron", []string{"@every <duration>"}},
		{"CRON_TZ prefix", schedule.Spec{Cron: "CRON_TZ=Europe/Paris 0 2 * * *"}, schedule.ErrBadCron, "Cron", []string{"time zone prefix", "Spec.TZ"}},
		{"TZ prefix", schedule.Spec{Cron: "TZ=UTC 0 2 * * *"}, schedule.ErrBadCron, "Cron", []string{"time zone prefix"}},
		{"unknown TZ", schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Pariss"}, schedule.ErrBadTimeZone, "TZ",
			[]string{`time zone "Europe/Pariss": unknown time zone`, `"Europe/Paris"`}},
		{"offset is not a TZ", schedule.Spec{Cron: "0 2 * * *", TZ: "+02:00"}, schedule.ErrBadTimeZone, "TZ", []string{`"+02:00"`}},
		{"TZ with spaces", schedule.Spec{Cron: "0 2 * * *", TZ: " UTC"}, schedule.ErrBadTimeZone, "TZ", []string{`" UTC"`}},
		{"negative stagger", schedule.Spec{Cron: "0 2 * * *", Stagger: -time.Second, Name: "n8n"}, schedule.ErrBadStagger, "Stagger",
			[]string{`stagger "-1s"`, "[0, 24h)"}},
		{"stagger of a day", schedule.Spec{Cron: "0 2 * * *", Stagger: 24 * time.Hour, Name: "n8n"}, schedule.ErrBadStagger, "Stagger",
			[]string{`stagger "24h0m0s"`, "[0, 24h)"}},
		{"stagger of two days", schedule.Spec{Cron: "0 2 * * *", Stagger: 48 * time.Hour, Name: "n8n"}, schedule.ErrBadStagger, "Stagger", []string{"48h"}},
		{"stagger without name", schedule.Spec{Cron: "0 2 * * *", Stagger: 20 * time.Minute}, schedule.ErrBadStagger, "Stagger",
			[]string{`stagger "20m0s"`, "project name", "Spec.Name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := schedule.ParseSpec(tt.spec)
			require.Error(t, err)
			assert.Nil(t, tab)
			assert.ErrorIs(t, err, tt.sentinel)
			for _, other := range []error{schedule.ErrBadCron, schedule.ErrBadTimeZone, schedule.ErrBadStagger} {
				if other != tt.sentinel {
					assert.NotErrorIs(t, err, other)
				}
			}
			var se *schedule.SpecError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.field, se.Field)
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.NotContains(t, err.Error(), "gocron", "the user never wrote gocron")
			for _, m := range tt.msg {
				assert.Contains(t, err.Error(), m)
			}
			assert.Equal(t, err.Error(), tt.spec.Validate().Error())
		})
	}
}

// The error the sidecar shows for the example, whole.
func TestSpecErrorMessage(t *testing.T) {
	err := schedule.Spec{Cron: "0 2 * *"}.Validate()
	assert.EqualError(t, err, `schedule: cron "0 2 * *": got 4 fields; want 5 fields (minute hour day-of-month month day-of-week) `+
		`or @yearly/@monthly/@weekly/@daily/@hourly or @every <duration>; see crontab(5)`)
	assert.True(t, errors.Is(err, schedule.ErrBadCron))
}

// Next is strictly after its argument: from a run time, the following run.
func TestTimetableNextChains(t *testing.T) {
	paris := mustLoc(t, "Europe/Paris")
	tab, err := schedule.ParseSpec(schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris", Stagger: 20 * time.Minute, Name: "mattermost"})
	require.NoError(t, err)
	first := tab.Next(at(paris, 2026, 1, 10, 0, 0, 0))
	assert.Equal(t, at(paris, 2026, 1, 10, 2, 15, 51), first)
	assert.Equal(t, at(paris, 2026, 1, 11, 2, 15, 51), tab.Next(first))
	// Between the cron time and the staggered time, the run is still ahead.
	assert.Equal(t, first, tab.Next(at(paris, 2026, 1, 10, 2, 5, 0)))
	assert.Equal(t, paris, first.Location())

	// 02:00 does not exist in Paris on 2026-03-29: the run goes at the
	// jump (03:00 CEST), plus the offset.
	got := tab.Next(at(paris, 2026, 3, 28, 3, 0, 0))
	assert.Equal(t, at(paris, 2026, 3, 29, 3, 15, 51), got)
	assert.Equal(t, at(paris, 2026, 3, 30, 2, 15, 51), tab.Next(got))

	every, err := schedule.ParseSpec(schedule.Spec{Cron: "@every 6h", Stagger: 20 * time.Minute, Name: "n8n"})
	require.NoError(t, err)
	r1 := every.Next(at(time.UTC, 2026, 1, 10, 0, 11, 27))
	assert.Equal(t, at(time.UTC, 2026, 1, 10, 6, 11, 27), r1)
	assert.Equal(t, at(time.UTC, 2026, 1, 10, 12, 11, 27), every.Next(r1))
	assert.Equal(t, time.UTC, every.Location())
	assert.Equal(t, 6*time.Hour, every.Interval())
}

func TestTimetableString(t *testing.T) {
	for spec, want := range map[schedule.Spec]string{
		{Cron: "0 2 * * *", TZ: "Europe/Paris"}:                                   "0 2 * * * Europe/Paris",
		{Cron: " 0  2 * * * ", TZ: "UTC", Stagger: 20 * time.Minute, Name: "n8n"}: "0 2 * * * UTC +11m27s",
		{Cron: "@daily", TZ: "UTC"}:                                               "0 0 * * * UTC",
		{Cron: "@every 6h", Stagger: 20 * time.Minute, Name: "vault"}:             "@every 6h0m0s +11m43s",
	} {
		tab, err := schedule.ParseSpec(spec)
		require.NoError(t, err)
		assert.Equal(t, want, tab.String())
	}
}

// The offsets the docs show; they must never change between releases, or
// every stack's backup time moves.
func TestStaggerOffsetGolden(t *testing.T) {
	stagger := 20 * time.Minute
	want := map[string]time.Duration{
		"mattermost": 15*time.Minute + 51*time.Second,
		"n8n":        11*time.Minute + 27*time.Second,
		"vault":      11*time.Minute + 43*time.Second,
	}
	seen := map[time.Duration]string{}
	for name, w := range want {
		got := schedule.StaggerOffset(name, stagger)
		assert.Equal(t, w, got, name)
		assert.Equal(t, got, schedule.StaggerOffset(name, stagger), "deterministic")
		if prev, dup := seen[got]; dup {
			t.Errorf("%s and %s share offset %s", prev, name, got)
		}
		seen[got] = name
	}
}

func TestStaggerOffsetRange(t *testing.T) {
	for _, stagger := range []time.Duration{time.Second, 90 * time.Second, 20 * time.Minute, time.Hour, 24*time.Hour - time.Second} {
		for i := range 500 {
			name := fmt.Sprintf("project-%d", i)
			off := schedule.StaggerOffset(name, stagger)
			require.GreaterOrEqual(t, off, time.Duration(0), "%s %s", name, stagger)
			require.Less(t, off, stagger, "%s %s", name, stagger)
			require.Zero(t, off%time.Second, "whole seconds: %s %s", name, off)
		}
	}
	assert.Zero(t, schedule.StaggerOffset("n8n", 0))
	assert.Zero(t, schedule.StaggerOffset("n8n", 500*time.Millisecond), "below one second")
	assert.Zero(t, schedule.StaggerOffset("n8n", -time.Minute))

	// Many names use the whole range: every 2-minute bucket of a 20m
	// stagger gets some of 500 projects.
	buckets := map[time.Duration]int{}
	for i := range 500 {
		buckets[schedule.StaggerOffset(fmt.Sprintf("project-%d", i), 20*time.Minute)/(2*time.Minute)]++
	}
	assert.Len(t, buckets, 10)
}

// Around daylight-saving changes cron expressions follow the wall clock as
// cron(8) does: a skipped time runs at the jump, a repeated time runs once.
func TestTimetableDaylightSaving(t *testing.T) {
	// Paris: 2026-03-29 01:00 UTC clocks jump 02:00 CET -> 03:00 CEST;
	// 2026-10-25 01:00 UTC they go back 03:00 CEST -> 02:00 CET.
	// New York: 2026-03-08 07:00 UTC, 02:00 EST -> 03:00 EDT.
	utc := func(m time.Month, d, hh, mm int) time.Time { return at(time.UTC, 2026, m, d, hh, mm, 0) }
	tests := []struct {
		name  string
		spec  schedule.Spec
		after time.Time
		want  []time.Time // successive runs
	}{
		{"daily 02:00 on spring-forward night runs at the jump",
			schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris"}, utc(3, 28, 12, 0),
			[]time.Time{utc(3, 29, 1, 0), utc(3, 30, 0, 0)}},
		{"daily 02:30 on spring-forward night runs at the jump",
			schedule.Spec{Cron: "30 2 * * *", TZ: "Europe/Paris"}, utc(3, 28, 12, 0),
			[]time.Time{utc(3, 29, 1, 0), utc(3, 30, 0, 30)}},
		{"skipped times collapse into one run",
			schedule.Spec{Cron: "*/20 * * * *", TZ: "Europe/Paris"}, utc(3, 29, 0, 50),
			[]time.Time{utc(3, 29, 1, 0), utc(3, 29, 1, 20), utc(3, 29, 1, 40)}},
		{"staggered run on spring-forward night",
			schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris", Stagger: 20 * time.Minute, Name: "n8n"}, utc(3, 28, 12, 0),
			[]time.Time{utc(3, 29, 1, 11).Add(27 * time.Second), utc(3, 30, 0, 11).Add(27 * time.Second)}},
		{"New York spring-forward",
			schedule.Spec{Cron: "30 2 * * *", TZ: "America/New_York"}, utc(3, 7, 12, 0),
			[]time.Time{utc(3, 8, 7, 0), utc(3, 9, 6, 30)}},
		{"daily 02:30 on fall-back night runs once",
			schedule.Spec{Cron: "30 2 * * *", TZ: "Europe/Paris"}, utc(10, 24, 12, 0),
			[]time.Time{utc(10, 25, 0, 30), utc(10, 26, 1, 30)}},
		{"started in the repeated hour after the time passed",
			schedule.Spec{Cron: "30 2 * * *", TZ: "Europe/Paris"}, utc(10, 25, 1, 15), // 02:15 CET, second pass
			[]time.Time{utc(10, 26, 1, 30)}},
		{"hourly across fall-back runs each wall time once",
			schedule.Spec{Cron: "0 * * * *", TZ: "Europe/Paris"}, utc(10, 24, 23, 30), // 01:30 CEST
			[]time.Time{utc(10, 25, 0, 0), utc(10, 25, 2, 0), utc(10, 25, 3, 0)}},
		{"UTC has no changes",
			schedule.Spec{Cron: "30 2 * * *", TZ: "UTC"}, utc(3, 28, 12, 0),
			[]time.Time{utc(3, 29, 2, 30), utc(3, 30, 2, 30)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := schedule.ParseSpec(tt.spec)
			require.NoError(t, err)
			from := tt.after
			for i, w := range tt.want {
				got := tab.Next(from)
				require.True(t, w.Equal(got), "run %d: Next(%s) = %s, want %s", i, from.UTC(), got.UTC(), w)
				from = got
			}
		})
	}
}

// Prev is the last run strictly before an instant: the mirror of Next,
// stagger, intervals and daylight-saving changes included.
func TestTimetablePrev(t *testing.T) {
	paris := mustLoc(t, "Europe/Paris")
	utc := func(y int, m time.Month, d, hh, mm, ss int) time.Time { return at(time.UTC, y, m, d, hh, mm, ss) }
	tests := []struct {
		name   string
		spec   schedule.Spec
		before time.Time
		want   time.Time
	}{
		{"daily", schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"}, utc(2026, 1, 10, 7, 13, 0), utc(2026, 1, 10, 2, 0, 0)},
		{"strictly before: at a run, the one before", schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"}, utc(2026, 1, 10, 2, 0, 0), utc(2026, 1, 9, 2, 0, 0)},
		{"a nanosecond after a run, that run", schedule.Spec{Cron: "0 2 * * *", TZ: "UTC"}, utc(2026, 1, 10, 2, 0, 0).Add(time.Nanosecond), utc(2026, 1, 10, 2, 0, 0)},
		{"weekdays over a weekend", schedule.Spec{Cron: "0 2 * * 1-5", TZ: "UTC"}, utc(2026, 1, 11, 12, 0, 0), utc(2026, 1, 9, 2, 0, 0)},
		{"monthly across February", schedule.Spec{Cron: "0 2 1 * *", TZ: "UTC"}, utc(2026, 3, 1, 1, 0, 0), utc(2026, 2, 1, 2, 0, 0)},
		{"December only, in June", schedule.Spec{Cron: "0 2 * 12 *", TZ: "UTC"}, utc(2026, 6, 15, 0, 0, 0), utc(2025, 12, 31, 2, 0, 0)},
		{"@yearly", schedule.Spec{Cron: "@yearly", TZ: "UTC"}, utc(2026, 1, 1, 0, 0, 0), utc(2025, 1, 1, 0, 0, 0)},
		{"leap day, three years back", schedule.Spec{Cron: "0 0 29 2 *", TZ: "UTC"}, utc(2027, 3, 1, 0, 0, 0), utc(2024, 2, 29, 0, 0, 0)},
		{"no run in the eight years before (2100 is no leap year)", schedule.Spec{Cron: "0 0 29 2 *", TZ: "UTC"}, utc(2104, 2, 28, 0, 0, 0), time.Time{}},
		{"every minute", schedule.Spec{Cron: "* * * * *", TZ: "UTC"}, utc(2026, 1, 10, 7, 13, 30), utc(2026, 1, 10, 7, 13, 0)},
		{"stagger: between the cron time and the staggered run", schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris", Stagger: 20 * time.Minute, Name: "mattermost"},
			at(paris, 2026, 1, 11, 2, 10, 0), at(paris, 2026, 1, 10, 2, 15, 51)},
		{"stagger: just after the staggered run", schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris", Stagger: 20 * time.Minute, Name: "mattermost"},
			at(paris, 2026, 1, 11, 2, 15, 52), at(paris, 2026, 1, 11, 2, 15, 51)},
		{"@every", schedule.Spec{Cron: "@every 6h"}, utc(2026, 1, 10, 7, 13, 0), utc(2026, 1, 10, 6, 0, 0)},
		{"@every at a run", schedule.Spec{Cron: "@every 6h"}, utc(2026, 1, 10, 6, 0, 0), utc(2026, 1, 10, 0, 0, 0)},
		{"@every 90m", schedule.Spec{Cron: "@every 90m"}, utc(2026, 1, 10, 1, 30, 0), utc(2026, 1, 10, 0, 0, 0)},
		{"@every with stagger, at a run", schedule.Spec{Cron: "@every 6h", Stagger: 20 * time.Minute, Name: "n8n"}, utc(2026, 1, 10, 6, 11, 27), utc(2026, 1, 10, 0, 11, 27)},
		{"@every with stagger, after a run", schedule.Spec{Cron: "@every 6h", Stagger: 20 * time.Minute, Name: "n8n"}, utc(2026, 1, 10, 6, 11, 28), utc(2026, 1, 10, 6, 11, 27)},
		// Paris: 2026-03-29 01:00 UTC 02:00 CET -> 03:00 CEST; 2026-10-25
		// 01:00 UTC 03:00 CEST -> 02:00 CET.
		{"spring-forward: the run at the jump", schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris"}, utc(2026, 3, 30, 0, 0, 0), utc(2026, 3, 29, 1, 0, 0)},
		{"spring-forward: collapsed runs count once", schedule.Spec{Cron: "*/20 * * * *", TZ: "Europe/Paris"}, utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 29, 0, 40, 0)},
		{"fall-back: a repeated time ran at its first occurrence", schedule.Spec{Cron: "30 2 * * *", TZ: "Europe/Paris"}, utc(2026, 10, 25, 1, 35, 0), utc(2026, 10, 25, 0, 30, 0)},
		{"fall-back: hourly skips the repeated hour", schedule.Spec{Cron: "0 * * * *", TZ: "Europe/Paris"}, utc(2026, 10, 25, 2, 0, 0), utc(2026, 10, 25, 0, 0, 0)},
		{"New York spring-forward", schedule.Spec{Cron: "30 2 * * *", TZ: "America/New_York"}, utc(2026, 3, 9, 6, 30, 0), utc(2026, 3, 8, 7, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := schedule.ParseSpec(tt.spec)
			require.NoError(t, err)
			got := tab.Prev(tt.before)
			assert.True(t, tt.want.Equal(got), "Prev(%s) = %s, want %s", tt.before.UTC(), got.UTC(), tt.want.UTC())
			if !got.IsZero() {
				assert.Equal(t, tab.Location(), got.Location())
			}
		})
	}
}

// Prev and Next agree everywhere: Prev(t) is a run before t and no run lies
// between it and t.
func TestTimetablePrevMirrorsNext(t *testing.T) {
	specs := []schedule.Spec{
		{Cron: "0 2 * * *", TZ: "Europe/Paris", Stagger: 20 * time.Minute, Name: "mattermost"},
		{Cron: "*/20 * * * *", TZ: "Europe/Paris"},
		{Cron: "0 * * * *", TZ: "America/New_York"},
		{Cron: "30 2 * * 1-5", TZ: "Europe/Paris"},
		{Cron: "@every 90m", Stagger: time.Hour, Name: "vault"},
	}
	// Instants every 7m13.5s across both 2026 daylight-saving changes of
	// Paris and New York.
	var instants []time.Time
	for _, start := range []time.Time{at(time.UTC, 2026, 3, 7, 22, 0, 0), at(time.UTC, 2026, 3, 28, 22, 0, 0), at(time.UTC, 2026, 10, 24, 22, 0, 0)} {
		for i := range 300 {
			instants = append(instants, start.Add(time.Duration(i)*(7*time.Minute+13*time.Second+500*time.Millisecond)))
		}
	}
	for _, spec := range specs {
		tab, err := schedule.ParseSpec(spec)
		require.NoError(t, err)
		for _, x := range instants {
			p := tab.Prev(x)
			require.True(t, p.Before(x), "%s: Prev(%s) = %s", tab, x, p)
			require.False(t, tab.Next(p).Before(x), "%s: a run between Prev(%s) = %s and it", tab, x, p)
			require.True(t, tab.Next(tab.Prev(p)).Equal(p), "%s: Prev(%s) = %s is not a run", tab, x, p)
			require.False(t, tab.Prev(tab.Next(x)).After(x), "%s: Prev(Next(%s))", tab, x)
		}
	}
}
