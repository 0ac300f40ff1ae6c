package daemon

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/schedule"
)

// healthState answers /healthz: unhealthy while the start-up check fails;
// otherwise healthy while the last run succeeded and no more than
// HEALTH_MAX_AGE_FACTOR schedule gaps have passed since it started (before
// the first run: since the sidecar started); see deadline. Runs of
// `sidecar run-once` count as well as the daemon's own.
type healthState struct {
	mu          sync.Mutex
	started     time.Time
	factor      float64
	table       *schedule.Timetable
	lastRun     time.Time
	lastOK      bool
	lastSuccess time.Time
	lastError   string
	// The start-up check: checkErr is the error of its last attempt while
	// it fails (empty once it passed), failingSince when it started to
	// fail, checkRetry how often it is retried.
	checkDone    bool
	checkErr     string
	failingSince time.Time
	checkRetry   time.Duration
}

func (h *healthState) finished(res runner.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if res.Start.Before(h.lastRun) {
		return // an older run read back after a newer one
	}
	h.lastRun, h.lastOK, h.lastError = res.Start, res.OK(), failure(res)
	if res.OK() {
		h.lastSuccess = res.Start
	}
}

// succeededAt records a successful run known from the last-run file, which
// may be older than the last run.
func (h *healthState) succeededAt(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.After(h.lastSuccess) {
		h.lastSuccess = t
	}
}

// failure says why a run failed, naming the failed targets; "" when it
// succeeded.
func failure(res runner.Result) string {
	if res.OK() {
		return ""
	}
	if res.Err != nil {
		return res.Err.Error()
	}
	var failed []string
	for _, t := range res.Targets {
		if t.Err != nil {
			failed = append(failed, t.Path+": "+t.Err.Error())
		}
	}
	for _, e := range res.Retention {
		failed = append(failed, "retention "+e)
	}
	if res.Check != "" {
		failed = append(failed, "check: "+res.Check)
	}
	if len(failed) == 0 {
		return "nothing was backed up"
	}
	msg := strings.Join(failed, "; ")
	if n := len(res.Targets) - countOK(res.Targets); n > 0 {
		msg = fmt.Sprintf("%d of %d target(s) failed: %s", n, len(res.Targets), msg)
	}
	return msg
}

func countOK(ts []runner.TargetResult) int {
	n := 0
	for _, t := range ts {
		if t.Err == nil {
			n++
		}
	}
	return n
}

// checked records an attempt of the start-up check, or (err nil) a
// successful run, which proves what the check checks.
func (h *healthState) checked(at time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.checkDone, h.checkErr, h.failingSince = true, "", time.Time{}
		return
	}
	if h.checkDone {
		return // a run has succeeded meanwhile: the check is moot
	}
	if h.checkErr == "" {
		h.failingSince = at
	}
	h.checkErr = err.Error()
}

// checkPassed reports whether the start-up check (or a run) has succeeded.
func (h *healthState) checkPassed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.checkDone
}

// deadline is when the sidecar turns unhealthy without a new success: the
// instant factor schedule gaps after since, where each gap between two
// consecutive scheduled runs counts as one whatever its length. Time within
// a gap counts in proportion: a factor of 2 from a success halfway through
// a 72h weekend gap ends halfway through the second 24h gap after it. On a
// regular schedule (every gap the same, e.g. "0 2 * * *" or "@every 6h")
// this is since + factor × gap; on an irregular one ("0 2 * * 1-5",
// "0 2 1 * *", "0 2 * 12 *") a long gap cannot make the sidecar unhealthy
// while no run was missed, and a short gap after it is not stretched.
// Gaps are measured in absolute time, so across a daylight-saving change a
// daily schedule has a 23h or a 25h gap. The zero time means no deadline
// (the schedule has no run ahead).
func deadline(table *schedule.Timetable, since time.Time, factor float64) time.Time {
	next := table.Next(since)
	if next.IsZero() {
		return time.Time{}
	}
	prev := table.Prev(next) // the last run at or before since
	if prev.IsZero() || prev.After(since) {
		prev = since
	}
	whole, frac := math.Modf(factor)
	// pos is how far into gap a→b the deadline falls, in gaps.
	pos := float64(since.Sub(prev))/float64(next.Sub(prev)) + frac
	steps := int(whole)
	if pos >= 1 {
		pos--
		steps++
	}
	a, b := prev, next
	for range steps {
		if a, b = b, table.Next(b); b.IsZero() {
			return time.Time{}
		}
	}
	return a.Add(time.Duration(math.Round(pos * float64(b.Sub(a)))))
}

// staleness is a backup gone stale: no success within what the schedule
// allows.
type staleness struct {
	since       time.Time // the last success, or the start when there was none
	lastSuccess time.Time // zero: none
	started     time.Time
	maxAge      string
	lastErr     string // why the last run failed; "" when it did not
}

// stale reports whether the last success (or, with none, the start) is
// older than HEALTH_MAX_AGE_FACTOR schedule gaps at now, as report does.
func (h *healthState) stale(now time.Time) (staleness, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	since := h.lastSuccess
	if since.IsZero() {
		since = h.started
	}
	if h.table == nil {
		return staleness{}, false
	}
	due := deadline(h.table, since, h.factor)
	if due.IsZero() || !now.After(due) {
		return staleness{}, false
	}
	st := staleness{since: since, lastSuccess: h.lastSuccess, started: h.started, maxAge: due.Sub(since).String()}
	if !h.lastRun.IsZero() && !h.lastOK {
		st.lastErr = h.lastError
	}
	return st, true
}

type HealthReport struct {
	Healthy     bool      `json:"healthy"`
	Reason      string    `json:"reason"`
	LastRun     time.Time `json:"last_run,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	MaxAge      string    `json:"max_age"`
	// Deadline is when the sidecar turns unhealthy without a new success.
	Deadline time.Time `json:"deadline,omitzero"`
}

func (h *healthState) report(now time.Time) HealthReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	since := h.lastSuccess
	if since.IsZero() {
		since = h.started
	}
	due := deadline(h.table, since, h.factor)
	overdue := !due.IsZero() && now.After(due)
	r := HealthReport{LastRun: h.lastRun, LastSuccess: h.lastSuccess, Deadline: due, MaxAge: "none: no scheduled run ahead"}
	if !due.IsZero() {
		r.MaxAge = due.Sub(since).String()
	}
	switch {
	case h.checkErr != "":
		r.Reason = fmt.Sprintf("start-up check failing since %s (retried every %s): %s",
			h.failingSince.Format(time.RFC3339), h.checkRetry, h.checkErr)
	case h.lastRun.IsZero() && !overdue && !h.checkDone:
		r.Healthy, r.Reason = true, "no run yet; start-up check in progress"
	case h.lastRun.IsZero() && !overdue:
		r.Healthy, r.Reason = true, "no run yet"
	case h.lastRun.IsZero():
		r.Reason = "no run for " + now.Sub(h.started).Round(time.Second).String()
	case !h.lastOK:
		r.Reason = "last run failed: " + h.lastError
	case overdue:
		r.Reason = "last success is older than " + r.MaxAge
	default:
		r.Healthy, r.Reason = true, "last run succeeded"
	}
	return r
}

func (h *healthState) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	r := h.report(time.Now())
	w.Header().Set("Content-Type", "application/json")
	if !r.Healthy {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(r)
}

// HealthURL is the daemon's /healthz for METRICS_LISTEN: on its host when
// it listens on one address (an IPv6 one in brackets), on 127.0.0.1 when it
// listens on all of them (host empty, 0.0.0.0 or ::).
func HealthURL(listen string) string {
	host, port, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: "/healthz"}
	return u.String()
}
