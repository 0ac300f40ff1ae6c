package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// goal is issue 12's goal for a case: the platback/restic time ratio at
// most maxRatio; throughput goals are shown as restic/platback (the
// throughput ratio) at least 1/maxRatio.
type goal struct {
	maxRatio   float64 // 0: no goal
	throughput bool
}

func (g goal) String() string {
	if g.maxRatio == 0 {
		return ""
	}
	if g.throughput {
		return fmt.Sprintf("≥ %.2f× throughput", 1/g.maxRatio)
	}
	return fmt.Sprintf("≤ %.2f×", g.maxRatio)
}

// caseResult is one row of the table: one duration per round on each side.
type caseResult struct {
	name     string
	platback []time.Duration
	restic   []time.Duration
	goal     goal
}

// ratios are the rounds' platback/restic ratios (each round's pair).
func (c *caseResult) ratios() []float64 {
	var r []float64
	for i := range min(len(c.platback), len(c.restic)) {
		if c.restic[i] > 0 {
			r = append(r, float64(c.platback[i])/float64(c.restic[i]))
		}
	}
	return r
}

// verdict says whether the median ratio meets the goal.
func (c *caseResult) verdict() string {
	if c.goal.maxRatio == 0 {
		return ""
	}
	r := c.ratios()
	if len(r) == 0 {
		return c.goal.String()
	}
	m := median(r)
	state := "met"
	if m > c.goal.maxRatio {
		state = "**missed**"
	}
	if c.goal.throughput {
		return fmt.Sprintf("%s: %.2f× — %s", c.goal, 1/m, state)
	}
	return fmt.Sprintf("%s: %s", c.goal, state)
}

// report is what the bench prints.
type report struct {
	title  string
	header []string // machine, date, commit, load
	cases  []*caseResult
	extra  [][3]string // measure, value, goal
	notes  []string
}

func (r *report) addCase(name string, g goal) *caseResult {
	c := &caseResult{name: name, goal: g}
	r.cases = append(r.cases, c)
	return c
}

func (r *report) addExtra(measure, value, goal string) {
	r.extra = append(r.extra, [3]string{measure, value, goal})
}

// print writes the report as Markdown (readable as it is in a terminal).
func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n## %s\n\n", r.title)
	for _, h := range r.header {
		fmt.Fprintf(w, "- %s\n", h)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | platback min | platback median | restic min | restic median | ratio min | ratio median | goal (median) |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, c := range r.cases {
		ratios := c.ratios()
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", c.name,
			seconds(minOf(c.platback)), seconds(median(c.platback)), seconds(minOf(c.restic)), seconds(median(c.restic)),
			times(minOf(ratios)), times(median(ratios)), c.verdict())
	}
	fmt.Fprintln(w)
	if len(r.extra) > 0 {
		fmt.Fprintln(w, "| measure | value | goal |")
		fmt.Fprintln(w, "| --- | --- | --- |")
		for _, e := range r.extra {
			fmt.Fprintf(w, "| %s | %s | %s |\n", e[0], e[1], e[2])
		}
		fmt.Fprintln(w)
	}
	for _, n := range r.notes {
		fmt.Fprintf(w, "%s\n", n)
	}
}

// median of the values (the mean of the middle two for an even count);
// the zero value when there are none.
func median[T time.Duration | float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf[T time.Duration | float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	return slices.Min(v)
}

func seconds(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func times(r float64) string {
	if r == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", r)
}

// kbMB formats a KB (KiB, as /proc and getrusage report) count in MB.
func kbMB(kb int64) string {
	if kb == 0 {
		return "not seen"
	}
	return fmt.Sprintf("%.1f MB", float64(kb)*1024/1e6)
}

// intsSummary is "1" when all are the same, else "min–max".
func intsSummary(v []int) string {
	if len(v) == 0 {
		return "–"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d–%d", lo, hi)
}

// joinNonEmpty joins the non-empty parts with sep.
func joinNonEmpty(sep string, parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), sep)
}
