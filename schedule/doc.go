// Package schedule runs one job (a backup) on a cron or interval schedule,
// in a given time zone, never twice at once, optionally shifted by a
// per-project stagger so that stacks sharing a cron spread out. It wraps
// gocron v2; ParseSpec and Timetable are the pure half, usable alone.
//
// # Schedules
//
// Spec.Cron accepts:
//
//   - a 5-field crontab(5) expression: minute hour day-of-month month
//     day-of-week, e.g. "0 2 * * *" or "30 1 * * MON-FRI";
//   - a descriptor: @yearly (@annually), @monthly, @weekly, @daily
//     (@midnight), @hourly;
//   - an interval: "@every 6h" (a time.ParseDuration value of at least one
//     minute).
//
// Refused, with an error naming the value and the fix (a *SpecError that
// matches ErrBadCron): a 6-field expression (a leading seconds field, as
// gocron's withSeconds mode reads it: backups are scheduled to the minute),
// a CRON_TZ= or TZ= prefix (the time zone is Spec.TZ), @reboot, and an
// expression that matches no date such as "0 0 30 2 *". For example:
//
//	schedule: cron "0 2 * *": got 4 fields; want 5 fields (minute hour day-of-month month day-of-week) or @yearly/@monthly/@weekly/@daily/@hourly or @every <duration>; see crontab(5)
//
// # Time zone
//
// Cron expressions and descriptors are read in Spec.TZ, an IANA name such as
// "Europe/Paris"; "" means time.Local, which in a container is UTC unless
// the TZ variable is set. An unknown name is an error (ErrBadTimeZone); a
// binary built FROM scratch needs tzdata, e.g. import _ "time/tzdata" in
// its main package.
//
// Around daylight-saving changes the expression follows the wall clock as
// cron(8) does: a time that a spring-forward jump skips (02:00–02:59 on the
// last Sunday of March in Europe) runs at the jump, 03:00, instead of not
// at all; a time that a fall-back repeats runs once, at its first
// occurrence.
//
// # Intervals
//
// "@every D" differs from robfig/cron's, which counts D from the start of
// the process: runs fall on multiples of D counted from a fixed midnight UTC
// (every 6h runs at 00:00, 06:00, 12:00 and 18:00 UTC; every 90m at 00:00,
// 01:30, 03:00…). Restarting the sidecar therefore never postpones a run,
// and a container restarted more often than D still backs up. Spec.TZ does
// not apply to intervals; use a cron expression for wall-clock times.
//
// # Stagger
//
// With Spec.Stagger > 0 (less than 24h) every run fires
// StaggerOffset(Spec.Name, Stagger) after its scheduled time; Spec.Name, the
// compose project, is then required (ErrBadStagger otherwise). The offset is
// the 64-bit FNV-1a hash of the name modulo the stagger, in whole seconds:
// the same project always gets the same offset, on every machine and every
// release. Three stacks on one VM with BACKUP_CRON="0 2 * * *" and
// BACKUP_STAGGER=20m run at:
//
//	mattermost  02:15:51  (offset 15m51s)
//	n8n         02:11:27  (offset 11m27s)
//	vault       02:11:43  (offset 11m43s)
//
// A hash spreads many stacks evenly on average but guarantees no minimum gap
// between two of them (n8n and vault above start 16 s apart); stacks that
// must not overlap need distinct cron expressions.
//
// # Runs
//
// A Scheduler never runs its job twice at once: a scheduled run that comes
// due while the previous one (or a RunNow) is still going is skipped,
// counted by Skipped, logged and reported to OnSkip, and the schedule goes
// on. RunNow runs the job at once through the same guard and returns
// ErrRunning rather than overlap. NextRun reports the next run time, stagger
// offset included. The job's context is cancelled by Shutdown, which then
// waits for the job to return within the caller's context. A panic in the
// job becomes that run's error.
package schedule
