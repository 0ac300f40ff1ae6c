package doctor

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/schedule"
)

// maxRuns bounds the runs of one schedule compared within CollisionHorizon
// (an "@every 1m" schedule has 10080).
const maxRuns = 20000

// IsSidecar reports whether a container of the engine's list is a platback
// sidecar daemon: its command is `sidecar run` (the image's default) or its
// image is platback/sidecar, and it is not one of a sidecar's workers.
func IsSidecar(c container.Summary) bool {
	if c.Labels[discover.WorkerLabel] != "" {
		return false
	}
	f := strings.Fields(c.Command)
	if len(f) == 0 {
		return false
	}
	runs := len(f) == 1 || f[1] == "run"
	return runs && (path.Base(f[0]) == "sidecar" || strings.Contains(c.Image, "platback/sidecar"))
}

// SidecarSchedule is the schedule a sidecar's container environment sets,
// as the sidecar reads it (BACKUP_CRON or CRON_SCHEDULE, BACKUP_TZ or TZ,
// BACKUP_STAGGER, named after PLATBACK_PROJECT or the compose project).
// Only these variables are read.
func SidecarSchedule(env []string, labels map[string]string) (schedule.Spec, error) {
	get := func(names ...string) string {
		for _, n := range names {
			for _, kv := range env {
				if v, ok := strings.CutPrefix(kv, n+"="); ok && strings.TrimSpace(v) != "" {
					return strings.TrimSpace(v)
				}
			}
		}
		return ""
	}
	spec := schedule.Spec{
		Cron: cmpOr(get("BACKUP_CRON", "CRON_SCHEDULE"), "0 2 * * *"),
		TZ:   cmpOr(get("BACKUP_TZ", "TZ"), "UTC"),
		Name: cmpOr(get("PLATBACK_PROJECT"), labels[discover.ComposeProjectLabel]),
	}
	if s := get("BACKUP_STAGGER"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return spec, fmt.Errorf("BACKUP_STAGGER=%q: %w", s, err)
		}
		spec.Stagger = d
	}
	return spec, spec.Validate()
}

// Collision is the first pair of runs of two schedules that start within
// the window of each other.
type Collision struct {
	Ours, Theirs time.Time
}

// FirstCollision returns the first run of ours in [from, from+horizon) that
// has a run of theirs within window of it.
func FirstCollision(ours, theirs *schedule.Timetable, from time.Time, horizon, window time.Duration) (Collision, bool) {
	end := from.Add(horizon)
	a := runsBetween(ours, from, end)
	b := runsBetween(theirs, from.Add(-window), end.Add(window))
	j := 0
	for _, t := range a {
		for j < len(b) && b[j].Before(t.Add(-window)) {
			j++
		}
		if j < len(b) && b[j].Sub(t) < window {
			return Collision{Ours: t, Theirs: b[j]}, true
		}
	}
	return Collision{}, false
}

func runsBetween(tt *schedule.Timetable, from, end time.Time) []time.Time {
	var out []time.Time
	for t := tt.Next(from.Add(-time.Nanosecond)); !t.IsZero() && t.Before(end) && len(out) < maxRuns; t = tt.Next(t) {
		out = append(out, t)
	}
	return out
}

func (r *run) stagger(ctx context.Context) {
	const name = "stagger"
	switch {
	case !r.dockerOK:
		r.skip(name, "needs the Docker engine (check docker)")
		return
	case r.tt == nil:
		r.skip(name, "needs the schedule (check schedule)")
		return
	}
	ctx, cancel := r.step(ctx)
	defer cancel()
	list, err := r.o.Docker.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		r.add(Check{Name: name, Status: Warn, Detail: "could not list the engine's containers: " + err.Error(),
			Fix: "allow GET /containers/json (a socket proxy's CONTAINERS=1)"})
		return
	}
	now := r.o.Now()
	var others, collisions, unreadable []string
	for _, c := range list.Items {
		if !IsSidecar(c) || (r.self != nil && c.ID == r.self.ContainerID) {
			continue
		}
		cname := c.ID[:min(12, len(c.ID))]
		if len(c.Names) > 0 {
			cname = strings.TrimPrefix(c.Names[0], "/")
		}
		others = append(others, cname)
		ins, err := r.o.Docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil || ins.Container.Config == nil {
			unreadable = append(unreadable, fmt.Sprintf("%s (not inspected: %v)", cname, err))
			continue
		}
		spec, err := SidecarSchedule(ins.Container.Config.Env, ins.Container.Config.Labels)
		if err != nil {
			unreadable = append(unreadable, fmt.Sprintf("%s (%v)", cname, err))
			continue
		}
		theirs, err := schedule.ParseSpec(spec)
		if err != nil {
			unreadable = append(unreadable, fmt.Sprintf("%s (%v)", cname, err))
			continue
		}
		if col, ok := FirstCollision(r.tt, theirs, now, CollisionHorizon, r.o.CollisionWindow); ok {
			gap := col.Theirs.Sub(col.Ours)
			if gap < 0 {
				gap = -gap
			}
			collisions = append(collisions, fmt.Sprintf("%s (project %s, %s) starts at %s, %s from this sidecar's run at %s",
				cname, spec.Name, theirs, col.Theirs.UTC().Format(time.RFC3339), gap, col.Ours.UTC().Format(time.RFC3339)))
		}
	}
	window := r.o.CollisionWindow
	switch {
	case len(collisions) > 0:
		r.add(Check{Name: name, Status: Warn, Detail: strings.Join(collisions, "; ") + unreadableNote(unreadable),
			Fix: "set BACKUP_STAGGER (e.g. 20m) on these sidecars, or give them different BACKUP_CRON times, so that their backups do not load the disks, the network and S3 at once"})
	case len(others) == 0:
		r.add(Check{Name: name, Status: Pass, Detail: "no other platback sidecar runs on this engine"})
	default:
		r.add(Check{Name: name, Status: Pass, Detail: fmt.Sprintf("%d other sidecar(s) (%s): none starts within %s of this one's runs in the next %s",
			len(others), strings.Join(others, ", "), window, "7 days") + unreadableNote(unreadable)})
	}
}

func unreadableNote(list []string) string {
	if len(list) == 0 {
		return ""
	}
	return "; schedule unknown for " + strings.Join(list, ", ")
}
