package observability_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/metrics"
)

// prometheusOwn are the series Prometheus writes itself for every scrape
// target, not the sidecar; the kit may name them too. `up` is used by
// PlatbackSidecarDown; its `project` label is the target label the README's
// scrape configuration sets.
var prometheusOwn = catalog{
	"up": {"job": true, "instance": true, "project": true},
}

// scrapeLabels are added by Prometheus to every scraped series.
var scrapeLabels = []string{"job", "instance"}

// catalog maps a metric name to the names of the labels it carries.
type catalog map[string]map[string]bool

// exported is every metric the sidecar really exports, with its labels:
// each vector is given a child first, since Gather leaves empty ones out.
func exported(t *testing.T) catalog {
	t.Helper()
	m := metrics.New("demo", "v", "0.19.1")
	start := time.Unix(1_700_000_000, 0)
	for _, p := range []metrics.Phase{
		{Target: "/volumes/data", Kind: "volume", Phase: metrics.PhaseBackup, HasFiles: true, BytesAdded: 10, FilesNew: 1, FilesChanged: 2},
		{Target: "postgres", Kind: "postgres", Phase: metrics.PhaseDump, HasFiles: true, BytesAdded: 5, FilesNew: 1},
		{Target: "/volumes/data", Kind: "volume", Phase: metrics.PhaseForget},
		{Target: "repository", Kind: "repository", Phase: metrics.PhaseCheck, Err: errors.New("pack damaged")},
	} {
		p.Start, p.Duration = start, time.Minute
		m.Record(p)
	}
	m.Snapshots("/volumes/data", "volume", 3)
	m.Run(start.Add(time.Hour), time.Hour, true)
	m.Lifecycle(1, nil)
	m.StartupCheck(start, nil)
	m.Check(metrics.Check{End: start, Duration: time.Minute, Part: 1, Parts: 12, Err: errors.New("pack damaged")})
	m.Check(metrics.Check{End: start.Add(time.Hour), Duration: time.Minute, Part: 1, Parts: 12})
	m.CheckSkipped()
	m.Verify(metrics.Verify{Target: "/volumes/data", End: start, SnapshotAge: time.Hour})
	m.Copy(metrics.Copy{End: start, Duration: time.Minute, Snapshots: 3})
	m.Hook(metrics.Hook{Service: "app", Stage: "pre", Duration: time.Second, Failed: true})
	m.NextRun(start.Add(24 * time.Hour))
	m.Skipped()

	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	c := catalog{}
	add := func(name string, labelNames map[string]bool, extra ...string) {
		set := map[string]bool{}
		for l := range labelNames {
			set[l] = true
		}
		for _, l := range append(extra, scrapeLabels...) {
			set[l] = true
		}
		c[name] = set
	}
	for _, mf := range mfs {
		names := map[string]bool{}
		for _, metric := range mf.GetMetric() {
			for _, lp := range metric.GetLabel() {
				names[lp.GetName()] = true
			}
		}
		name := mf.GetName()
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			add(name+"_bucket", names, "le")
			add(name+"_sum", names)
			add(name+"_count", names)
		case dto.MetricType_SUMMARY:
			add(name, names, "quantile")
			add(name+"_sum", names)
			add(name+"_count", names)
		default:
			add(name, names)
		}
	}
	for name, ls := range prometheusOwn {
		c[name] = ls
	}
	return c
}

// exprUse is what one expression references: metric names, __name__
// regular expressions, and the labels it names.
type exprUse struct {
	names   []string          // metric names selected by name or by __name__="…"
	regexps []*labels.Matcher // __name__=~"…" matchers
	labels  map[string][]string
	grouped []string // labels of by/without/on/ignoring clauses
}

// inspect parses a PromQL expression and collects what it references.
func inspect(expr string) (exprUse, error) {
	u := exprUse{labels: map[string][]string{}}
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return u, err
	}
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			name := n.Name
			var own []string
			for _, lm := range n.LabelMatchers {
				if lm.Name != labels.MetricName {
					own = append(own, lm.Name)
					continue
				}
				switch lm.Type {
				case labels.MatchEqual:
					name = lm.Value
				case labels.MatchRegexp:
					u.regexps = append(u.regexps, lm)
				}
			}
			if name != "" {
				u.names = append(u.names, name)
				u.labels[name] = append(u.labels[name], own...)
			}
		case *parser.AggregateExpr:
			u.grouped = append(u.grouped, n.Grouping...)
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				u.grouped = append(u.grouped, n.VectorMatching.MatchingLabels...)
				u.grouped = append(u.grouped, n.VectorMatching.Include...)
			}
		}
		return nil
	})
	return u, nil
}

// check returns one error for each metric the expression names that c does
// not hold, and for each label no metric it names carries. templateLabels
// are labels named outside the expression ($labels.x in an annotation,
// {{x}} in a legend).
func (c catalog) check(where, expr string, templateLabels ...string) []error {
	u, err := inspect(expr)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", where, err)}
	}
	var errs []error
	union := map[string]bool{}
	for _, name := range u.names {
		have, ok := c[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: metric %s is not exported by the sidecar", where, name))
			continue
		}
		for l := range have {
			union[l] = true
		}
		for _, l := range u.labels[name] {
			if !have[l] {
				errs = append(errs, fmt.Errorf("%s: metric %s has no label %q", where, name, l))
			}
		}
	}
	for _, re := range u.regexps {
		matched := false
		for name, have := range c {
			if re.Matches(name) {
				matched = true
				for l := range have {
					union[l] = true
				}
			}
		}
		if !matched {
			errs = append(errs, fmt.Errorf("%s: %s matches no metric the sidecar exports", where, re))
		}
	}
	if len(union) == 0 {
		return errs // labels cannot be checked without a known metric
	}
	for _, l := range append(u.grouped, templateLabels...) {
		if !union[l] {
			errs = append(errs, fmt.Errorf("%s: no metric of %q has a label %q", where, expr, l))
		}
	}
	return errs
}

// namesIn lists the metric names an expression references (for the
// coverage log).
func namesIn(expr string) []string {
	u, _ := inspect(expr)
	return u.names
}

var annotationLabel = regexp.MustCompile(`\$labels\.(\w+)`)

// checkRules parses a rule file with Prometheus' own parser and checks every
// expression and the labels the annotations use against c.
func (c catalog) checkRules(content []byte) (*rulefmt.RuleGroups, []error) {
	groups, errs := rulefmt.Parse(content, false)
	if len(errs) > 0 {
		return nil, errs
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			where := fmt.Sprintf("group %s, rule %s%s", g.Name, r.Alert, r.Record)
			var used []string
			if !isAbsent(r.Expr) {
				for _, a := range r.Annotations {
					for _, m := range annotationLabel.FindAllStringSubmatch(a, -1) {
						used = append(used, m[1])
					}
				}
			}
			errs = append(errs, c.check(where, r.Expr, used...)...)
		}
	}
	return groups, errs
}

// isAbsent reports whether a rule's expression is absent(…): its alert has
// only the labels of the selector's equality matchers.
func isAbsent(expr string) bool {
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return false
	}
	call, ok := e.(*parser.Call)
	return ok && call.Func.Name == "absent"
}

// dashboard is the part of Grafana's JSON model the check reads.
type dashboard struct {
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int     `json:"id"`
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // of a collapsed row
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

var (
	intervalVar = regexp.MustCompile(`\$\{?__(rate_interval|interval|range)\}?`)
	numberVar   = regexp.MustCompile(`\$\{?__(interval_ms|range_s|range_ms)\}?`)
	anyVar      = regexp.MustCompile(`\$\{(\w+)(:\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)
	labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*(\w+)\s*\)\s*$`)
	legendLabel = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)
)

// substitute replaces Grafana's variables with something PromQL parses:
// durations for the interval variables, a plain word for the others (they
// only appear inside label matcher strings in the kit).
func substitute(q string) string {
	q = numberVar.ReplaceAllString(q, "300")
	q = intervalVar.ReplaceAllString(q, "5m")
	return anyVar.ReplaceAllString(q, "x")
}

// checkDashboard parses a Grafana dashboard and checks the expression of
// every panel target (rows included) and every query variable against c. It
// returns the panels and expressions it checked.
func (c catalog) checkDashboard(content []byte) (panels int, exprs []string, errs []error) {
	var d dashboard
	if err := json.Unmarshal(content, &d); err != nil {
		return 0, nil, []error{err}
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			panels++
			if ids[p.ID] {
				errs = append(errs, fmt.Errorf("panel %q: id %d used twice", p.Title, p.ID))
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				errs = append(errs, fmt.Errorf("panel %q has no query", p.Title))
			}
			for i, tg := range p.Targets {
				where := fmt.Sprintf("panel %q, target %d", p.Title, i)
				if strings.TrimSpace(tg.Expr) == "" {
					errs = append(errs, fmt.Errorf("%s: no expr", where))
					continue
				}
				var legend []string
				for _, m := range legendLabel.FindAllStringSubmatch(tg.LegendFormat, -1) {
					legend = append(legend, m[1])
				}
				exprs = append(exprs, tg.Expr)
				errs = append(errs, c.check(where, substitute(tg.Expr), legend...)...)
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				errs = append(errs, fmt.Errorf("variable %s: query is neither a string nor {query}: %w", v.Name, err))
				continue
			}
			q = obj.Query
		}
		where := "variable " + v.Name
		var label []string
		if m := labelValues.FindStringSubmatch(q); m != nil {
			q, label = m[1], []string{m[2]}
		}
		exprs = append(exprs, q)
		errs = append(errs, c.check(where, substitute(q), label...)...)
	}
	return panels, exprs, errs
}

func TestAlertRules(t *testing.T) {
	c := exported(t)
	groups, errs := rulefmt.ParseFile("alerts.yml", false)
	for _, err := range errs {
		t.Error(err)
	}
	require.Empty(t, errs)
	require.Len(t, groups.Groups, 1)
	g := groups.Groups[0]
	assert.Equal(t, "platback", g.Name)

	content, err := os.ReadFile("alerts.yml")
	require.NoError(t, err)
	_, errs = c.checkRules(content)
	for _, err := range errs {
		t.Error(err)
	}

	seen := map[string]bool{}
	for _, r := range g.Rules {
		require.NotEmpty(t, r.Alert, "only alerting rules: %q", r.Expr)
		assert.False(t, seen[r.Alert], "%s: defined twice", r.Alert)
		seen[r.Alert] = true
		assert.NotZero(t, r.For, "%s: no for:", r.Alert)
		assert.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], "%s: severity", r.Alert)
		assert.NotEmpty(t, r.Annotations["summary"], "%s: summary", r.Alert)
		assert.Contains(t, r.Annotations["description"], "docker-compose", "%s: the description says what to do", r.Alert)
		if !isAbsent(r.Expr) {
			assert.Contains(t, r.Annotations["summary"], "$labels.project", "%s: the summary names the stack", r.Alert)
		}
	}
	t.Logf("alerts.yml: %d alerting rules", len(g.Rules))
}

func TestDashboard(t *testing.T) {
	c := exported(t)
	content, err := os.ReadFile("grafana-dashboard.json")
	require.NoError(t, err)
	panels, exprs, errs := c.checkDashboard(content)
	for _, err := range errs {
		t.Error(err)
	}
	assert.NotZero(t, panels)
	assert.Contains(t, exprs, "platback_build_info", "the project variable comes from label_values(platback_build_info, project)")
	t.Logf("grafana-dashboard.json: %d panels, %d queries", panels, len(exprs))
}

// TestKitCoverage logs what the kit leaves out of the sidecar's own metrics
// (Go and process metrics aside) and fails when the kit names none at all.
func TestKitCoverage(t *testing.T) {
	c := exported(t)
	used := map[string]bool{}
	rules, errs := rulefmt.ParseFile("alerts.yml", false)
	require.Empty(t, errs)
	for _, r := range rules.Groups[0].Rules {
		for _, n := range namesIn(r.Expr) {
			used[n] = true
		}
	}
	content, err := os.ReadFile("grafana-dashboard.json")
	require.NoError(t, err)
	_, exprs, _ := c.checkDashboard(content)
	for _, e := range exprs {
		for _, n := range namesIn(substitute(e)) {
			used[n] = true
		}
	}
	var own, unused []string
	for name := range c {
		if strings.HasPrefix(name, "platback_") {
			own = append(own, name)
			if !used[name] {
				unused = append(unused, name)
			}
		}
	}
	sort.Strings(unused)
	t.Logf("the kit names %d metric names, all checked; %d of the sidecar's %d platback_* metrics; not used: %v",
		len(used), len(own)-len(unused), len(own), unused)
	assert.Less(t, len(unused), len(own))
}

// TestCheckerCatchesMistakes shows the checks are not vacuous: each bad
// input below must fail, and the good one must pass.
func TestCheckerCatchesMistakes(t *testing.T) {
	c := exported(t)
	rule := func(expr string) string {
		return fmt.Sprintf(`groups:
  - name: platback
    rules:
      - alert: Test
        expr: |
          %s
        for: 5m
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.project }}"}
`, expr)
	}
	for _, tc := range []struct {
		name, rules, want string
	}{
		{"good", rule(`platback_run_last_ok == 0`), ""},
		{"misspelt metric", rule(`time() - platback_last_sucess_timestamp_seconds > 3600`), "platback_last_sucess_timestamp_seconds is not exported"},
		{"misspelt __name__", rule(`{__name__="platback_run_last_okay"} == 0`), "platback_run_last_okay is not exported"},
		{"__name__ regexp matching nothing", rule(`{__name__=~"platback_lats_.*"} > 0`), "matches no metric"},
		{"label the metric lacks", rule(`platback_run_last_ok{target="db"} == 0`), `has no label "target"`},
		{"grouping label nobody has", rule(`sum by (stack) (platback_errors_total) > 0`), `has a label "stack"`},
		{"annotation label nobody has", strings.Replace(rule(`platback_run_last_ok == 0`), "$labels.project", "$labels.stack", 1), `has a label "stack"`},
		{"PromQL syntax error", rule(`time() - platback_last_success_timestamp_seconds{phase="backup" > 3600`), "parse error"},
		{"YAML syntax error", "groups:\n  - name: platback\n    rules:\n      - alert: Test\n       expr: up\n", "yaml"},
		{"unknown field", strings.Replace(rule(`platback_run_last_ok == 0`), "for: 5m", "for: 5m\n        fro: 5m", 1), "field fro not found"},
		{"bad annotation template", strings.Replace(rule(`platback_run_last_ok == 0`), "{{ $labels.project }}", "{{ $labels.project ", 1), "annotation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := c.checkRules([]byte(tc.rules))
			if tc.want == "" {
				assert.Empty(t, errs)
				return
			}
			require.NotEmpty(t, errs, "the check must fail")
			assert.Contains(t, fmt.Sprint(errs), tc.want)
		})
	}

	dash := func(expr, variable string) string {
		return fmt.Sprintf(`{"templating": {"list": [{"name": "project", "type": "query", "query": %q}]},
 "panels": [{"id": 1, "type": "row", "title": "row", "panels": [
   {"id": 2, "type": "stat", "title": "p", "targets": [{"expr": %q, "legendFormat": "{{target}}"}]}]}]}`, variable, expr)
	}
	good := `increase(platback_errors_total{project=~"$project"}[$__rate_interval])`
	for _, tc := range []struct {
		name, dashboard, want string
	}{
		{"good", dash(good, "label_values(platback_build_info, project)"), ""},
		{"misspelt metric in a panel in a row", dash(`platback_snapshot{project=~"${project}"}`, "label_values(platback_build_info, project)"), "platback_snapshot is not exported"},
		{"misspelt metric in label_values", dash(good, "label_values(platback_build, project)"), "platback_build is not exported"},
		{"label_values of a label the metric lacks", dash(good, "label_values(platback_build_info, stack)"), `has a label "stack"`},
		{"legend label nobody has", strings.Replace(dash(good, "label_values(platback_build_info, project)"), "{{target}}", "{{stack}}", 1), `has a label "stack"`},
		{"PromQL syntax error", dash(`rate(platback_errors_total[5m]`, "label_values(platback_build_info, project)"), "parse error"},
		{"JSON syntax error", `{"panels": [}`, "invalid character"},
	} {
		t.Run("dashboard/"+tc.name, func(t *testing.T) {
			_, _, errs := c.checkDashboard([]byte(tc.dashboard))
			if tc.want == "" {
				assert.Empty(t, errs)
				return
			}
			require.NotEmpty(t, errs, "the check must fail")
			assert.Contains(t, fmt.Sprint(errs), tc.want)
		})
	}
}

func TestSubstitute(t *testing.T) {
	for in, want := range map[string]string{
		`rate(x{project=~"$project"}[$__rate_interval])`: `rate(x{project=~"x"}[5m])`,
		`x{project=~"${project:regex}"}[${__range}]`:     `x{project=~"x"}[5m]`,
		`x{a="[[project]]"} / $__range_s`:                `x{a="x"} / 300`,
	} {
		assert.Equal(t, want, substitute(in))
	}
	assert.True(t, slices.Contains(namesIn(substitute(`rate(platback_errors_total[$__interval])`)), "platback_errors_total"))
}
