package schedule

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
)

// Errors callers can test with errors.Is. ParseSpec and Spec.Validate return
// them as a *SpecError that names the value and the fix.
var (
	// ErrBadCron marks a Spec.Cron that is not a 5-field cron expression, a
	// known descriptor or a valid "@every" interval.
	ErrBadCron = errors.New("schedule: invalid cron expression")

	// ErrBadTimeZone marks a Spec.TZ that is not a known IANA time zone.
	ErrBadTimeZone = errors.New("schedule: invalid time zone")

	// ErrBadStagger marks a Spec.Stagger outside [0, 24h), or a stagger
	// without the project name it is derived from.
	ErrBadStagger = errors.New("schedule: invalid stagger")
)

// MaxStagger bounds Spec.Stagger: it must be less than one day.
const MaxStagger = 24 * time.Hour

// MinInterval is the shortest "@every" interval accepted.
const MinInterval = time.Minute

const cronHelp = "want 5 fields (minute hour day-of-month month day-of-week) or " +
	"@yearly/@monthly/@weekly/@daily/@hourly or @every <duration>; see crontab(5)"

// Spec says when a job runs. The zero Spec is invalid (Cron is required).
type Spec struct {
	// Cron is a 5-field cron expression ("0 2 * * *"), a descriptor
	// ("@daily") or an interval ("@every 6h"); see the package doc.
	Cron string
	// TZ is the IANA time zone the cron expression is read in, e.g.
	// "Europe/Paris"; "" means time.Local. Intervals ignore it.
	TZ string
	// Stagger, when positive, delays every run by StaggerOffset(Name,
	// Stagger). It must be in [0, 24h).
	Stagger time.Duration
	// Name is the project name the stagger offset is derived from; it is
	// required when Stagger > 0 and also names the job in logs.
	Name string
}

// SpecError is a Spec value that cannot be used: which field, its value,
// what is wrong and what to do. It matches ErrBadCron, ErrBadTimeZone or
// ErrBadStagger with errors.Is.
type SpecError struct {
	// Field is the Spec field at fault: "Cron", "TZ" or "Stagger".
	Field string
	// Value is the offending value as given.
	Value string
	// Problem says what is wrong and how to fix it.
	Problem string
	// Err is ErrBadCron, ErrBadTimeZone or ErrBadStagger.
	Err error
}

// Error implements error, e.g.
//
//	schedule: cron "0 2 * *": got 4 fields; want 5 fields (minute hour …); see crontab(5)
func (e *SpecError) Error() string {
	label := map[string]string{"Cron": "cron", "TZ": "time zone", "Stagger": "stagger"}[e.Field]
	if label == "" {
		label = e.Field
	}
	return fmt.Sprintf("schedule: %s %q: %s", label, e.Value, e.Problem)
}

// Unwrap returns the sentinel error (ErrBadCron, ErrBadTimeZone or
// ErrBadStagger).
func (e *SpecError) Unwrap() error { return e.Err }

// Validate reports whether the Spec can be scheduled; the error is a
// *SpecError. It does not depend on the current time.
func (s Spec) Validate() error {
	_, err := ParseSpec(s)
	return err
}

// StaggerOffset is the delay applied to every run of the project name for a
// stagger: the 64-bit FNV-1a hash of name modulo stagger, in whole seconds,
// so 0 <= offset < stagger. It is 0 when stagger is below one second
// (or negative). The
// result depends on nothing but its arguments; for a 20m stagger,
// "mattermost" gets 15m51s, "n8n" 11m27s and "vault" 11m43s.
func StaggerOffset(name string, stagger time.Duration) time.Duration {
	if stagger < time.Second {
		return 0
	}
	slots := uint64(stagger / time.Second)
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return time.Duration(h.Sum64()%slots) * time.Second
}

// Timetable is a validated Spec: it says when runs fire. It is safe for
// concurrent use.
type Timetable struct {
	spec   Spec
	expr   string        // canonical 5-field expression; "" for an interval
	every  time.Duration // interval, 0 for a cron expression
	loc    *time.Location
	offset time.Duration
	cron   gocron.Cron // validated, for a cron expression
}

// ParseSpec validates a Spec and returns its Timetable. Errors are
// *SpecError values naming the field, the value and the fix. ParseSpec does
// not depend on the current time.
func ParseSpec(spec Spec) (*Timetable, error) {
	t := &Timetable{spec: spec}

	if spec.Stagger < 0 || spec.Stagger >= MaxStagger {
		return nil, &SpecError{Field: "Stagger", Value: spec.Stagger.String(), Err: ErrBadStagger,
			Problem: "want a duration in [0, 24h), e.g. 20m; 0 disables the stagger"}
	}
	if spec.Stagger > 0 && strings.TrimSpace(spec.Name) == "" {
		return nil, &SpecError{Field: "Stagger", Value: spec.Stagger.String(), Err: ErrBadStagger,
			Problem: "the offset is derived from the project name, which is empty; set Spec.Name (the compose project) or set the stagger to 0"}
	}
	t.offset = StaggerOffset(spec.Name, spec.Stagger)

	loc, err := loadLocation(spec.TZ)
	if err != nil {
		return nil, err
	}
	t.loc = loc

	expr := strings.TrimSpace(spec.Cron)
	bad := func(problem string) error {
		return &SpecError{Field: "Cron", Value: spec.Cron, Err: ErrBadCron, Problem: problem}
	}
	switch {
	case expr == "":
		return nil, bad("empty; " + cronHelp)
	case strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ="):
		return nil, bad("a time zone prefix is not supported here; set the time zone separately (Spec.TZ) and keep only the 5 fields")
	case strings.HasPrefix(expr, "@"):
		fields := strings.Fields(expr)
		name := strings.ToLower(fields[0])
		if name == "@every" {
			return t.parseEvery(fields, bad)
		}
		if len(fields) != 1 {
			return nil, bad(fmt.Sprintf("%s takes no argument; %s", fields[0], cronHelp))
		}
		std, ok := descriptors[name]
		if !ok {
			return nil, bad("unknown descriptor " + fields[0] + "; " + cronHelp)
		}
		expr = std
	default:
		fields := strings.Fields(expr)
		switch len(fields) {
		case 5:
			expr = strings.Join(fields, " ")
		case 6:
			return nil, bad(fmt.Sprintf("6 fields: a leading seconds field is not supported (backups are scheduled to the minute); drop it: %q", strings.Join(fields[1:], " ")))
		default:
			return nil, bad(fmt.Sprintf("got %d fields; %s", len(fields), cronHelp))
		}
	}

	// The expression is evaluated on wall-clock times, represented as UTC
	// times (see cronNext), so the parser works in UTC. The reference time
	// only serves to detect expressions that never match a date
	// ("0 0 30 2 *"); any instant gives the same answer.
	c := gocron.NewDefaultCron(false)
	if err := c.IsValid(expr, time.UTC, referenceTime); err != nil {
		if errors.Is(err, gocron.ErrCronJobInvalid) {
			return nil, bad("never matches a real date (e.g. February 30); check day-of-month and month")
		}
		return nil, bad(cronDetail(err) + "; " + cronHelp)
	}
	t.expr, t.cron = expr, c
	return t, nil
}

var referenceTime = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// descriptors maps the accepted @names to the 5-field expressions they mean
// in crontab(5).
var descriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

func (t *Timetable) parseEvery(fields []string, bad func(string) error) (*Timetable, error) {
	const form = `want "@every <duration>" with a Go duration of at least 1m, e.g. "@every 6h" or "@every 90m"`
	if len(fields) != 2 {
		return nil, bad(form)
	}
	d, err := time.ParseDuration(fields[1])
	if err != nil {
		return nil, bad(fmt.Sprintf("bad duration %q; %s", fields[1], form))
	}
	if d < MinInterval {
		return nil, bad(fmt.Sprintf("interval %s is shorter than 1m; %s", d, form))
	}
	t.every = d
	t.loc = time.UTC // intervals are counted in absolute time
	return t, nil
}

func loadLocation(tz string) (*time.Location, error) {
	if tz == "" {
		return time.Local, nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, &SpecError{Field: "TZ", Value: tz, Err: ErrBadTimeZone,
			Problem: `unknown time zone; want an IANA name such as "Europe/Paris" or "UTC" (the binary needs tzdata: import time/tzdata or install zoneinfo)`}
	}
	return loc, nil
}

// cronDetail extracts the parser's own message from gocron's joined error.
func cronDetail(err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e != nil && !errors.Is(e, gocron.ErrCronJobParse) {
				return e.Error()
			}
		}
	}
	return err.Error()
}

// Next returns the first run time strictly after the given instant, offset
// included, in the Timetable's location. It returns the zero time only for
// a cron expression that matches no date within five years.
//
// Cron expressions follow the wall clock of the location, as cron(8) does
// around daylight-saving changes: a time skipped when clocks jump forward
// (02:30 on the spring-forward night in Europe) runs at the jump, and a time
// repeated when clocks go back runs once, at its first occurrence.
func (t *Timetable) Next(after time.Time) time.Time {
	if t.every > 0 {
		// Multiples of the interval since Go's zero time (a midnight UTC),
		// shifted by the offset.
		base := after.Add(-t.offset)
		return base.Truncate(t.every).Add(t.every).Add(t.offset).In(time.UTC)
	}
	next := t.cronNext(after.Add(-t.offset))
	if next.IsZero() {
		return next
	}
	return next.Add(t.offset).In(t.loc)
}

// Prev returns the last run time strictly before the given instant, offset
// included, in the Timetable's location. It is exactly consistent with Next,
// around daylight-saving changes and for staggered or interval schedules
// too: for any instant t,
// Next(Prev(t)) is the first run at or after t, and Prev(Next(t)) is the
// last run at or before t. It returns the zero time only for a cron
// expression that matches no date within the five years before the instant.
func (t *Timetable) Prev(before time.Time) time.Time {
	if t.every > 0 {
		base := before.Add(-t.offset)
		prev := base.Truncate(t.every)
		if !prev.Before(base) {
			prev = prev.Add(-t.every)
		}
		return prev.Add(t.offset).In(time.UTC)
	}
	// ran reports whether a run falls in (x, before).
	ran := func(x time.Time) bool {
		n := t.Next(x)
		return !n.IsZero() && n.Before(before)
	}
	// Widen a window back from before until it holds a run; the last
	// window (about eight years) sees every run of the five years before.
	lo := time.Time{}
	for w := time.Minute; ; w *= 2 {
		if x := before.Add(-w); ran(x) {
			lo = x
			break
		}
		if w > prevHorizon {
			return time.Time{}
		}
	}
	// Bisect: a run is in (lo, before) and none is in [hi, before), so the
	// last run before the instant is the first run after lo once lo and hi
	// are adjacent.
	hi := before
	for hi.Sub(lo) > time.Nanosecond {
		mid := lo.Add(hi.Sub(lo) / 2)
		if ran(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return t.Next(lo)
}

// prevHorizon is how far back Prev looks for a cron run: five years, the
// horizon of the cron parser's own search.
const prevHorizon = 5 * 366 * 24 * time.Hour

// cronNext is the first instant after the given one at which the cron
// expression matches the wall clock of t.loc.
func (t *Timetable) cronNext(after time.Time) time.Time {
	w := wallClock(after, t.loc)
	for {
		// Wall-clock matches strictly increase; the instant of each is at
		// most a DST shift away, so this ends within a few iterations
		// (or at the parser's five-year horizon: zero).
		w = t.cron.Next(w)
		if w.IsZero() {
			return w
		}
		if at := instant(w, t.loc); at.After(after) {
			return at
		}
	}
}

// wallClock represents the wall clock of t in loc as a UTC time with the
// same fields.
func wallClock(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// instant is the first instant whose wall clock in loc is w (a UTC time
// holding wall-clock fields), or, when daylight saving skips w, the instant
// of the jump.
func instant(w time.Time, loc *time.Location) time.Time {
	x := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), loc)
	if xw := wallClock(x, loc); !xw.Equal(w) {
		// w does not exist; time.Date put x on one side of the jump.
		start, end := x.ZoneBounds()
		if xw.After(w) {
			return start
		}
		return end
	}
	// w may exist twice (clocks went back at the start of x's zone
	// period); take the earlier one.
	start, _ := x.ZoneBounds()
	if start.IsZero() {
		return x
	}
	_, offBefore := start.Add(-time.Nanosecond).Zone()
	_, offX := x.Zone()
	if back := time.Duration(offBefore-offX) * time.Second; back > 0 {
		if earlier := x.Add(-back); wallClock(earlier, loc).Equal(w) {
			return earlier
		}
	}
	return x
}

// Offset is the stagger offset added to every run (0 without a stagger).
func (t *Timetable) Offset() time.Duration { return t.offset }

// Location is the time zone run times are computed in (UTC for intervals).
func (t *Timetable) Location() *time.Location { return t.loc }

// Interval is the "@every" interval, or 0 for a cron expression.
func (t *Timetable) Interval() time.Duration { return t.every }

// Spec returns the Spec the Timetable was parsed from.
func (t *Timetable) Spec() Spec { return t.spec }

// String describes the schedule for logs, e.g. "0 2 * * * Europe/Paris
// +15m51s" or "@every 6h0m0s +11m27s".
func (t *Timetable) String() string {
	var b strings.Builder
	if t.every > 0 {
		b.WriteString("@every " + t.every.String())
	} else {
		b.WriteString(t.expr + " " + t.loc.String())
	}
	if t.offset > 0 {
		b.WriteString(" +" + t.offset.String())
	}
	return b.String()
}
