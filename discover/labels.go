package discover

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Backup label names, after Options.LabelPrefix ("stack-back.").
const (
	LabelVolumes          = "volumes"
	LabelVolumesInclude   = "volumes.include"
	LabelVolumesExclude   = "volumes.exclude"
	LabelStopDuringBackup = "volumes.stop-during-backup"
	LabelPostgres         = "postgres"
	LabelMySQL            = "mysql"
	LabelMariaDB          = "mariadb"
)

// engineLabels in stack-back's order of precedence when a container carries
// more than one.
var engineLabels = []struct {
	label string
	kind  Kind
}{{LabelMariaDB, KindMariaDB}, {LabelMySQL, KindMySQL}, {LabelPostgres, KindPostgres}}

// labelSet is what a container's backup labels say.
type labelSet struct {
	volumes       bool
	volumesFalse  bool // set and false: a reason to show when skipping
	stop          bool
	include       []string
	exclude       []string
	engine        Kind
	engineFalse   []string // engine labels set to false
	anyBackupable bool     // volumes or engine
}

// parseBool accepts what compose writes for YAML booleans and what people
// type: true/false/1/0 in any case, surrounded by spaces or not.
func parseBool(v string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

// parseList splits a comma list, trimming spaces and dropping empty items.
// (stack-back does not trim; "a, b" there only matches " b". Trimming keeps
// every label that worked there working here.)
func parseList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseLabels reads the backup labels of one container, returning warnings
// for values it does not understand.
func parseLabels(container string, labels map[string]string, prefix string) (labelSet, []Warning) {
	var ls labelSet
	var warns []Warning
	warn := func(key, value, msg string) {
		warns = append(warns, Warning{Container: container, Label: key, Value: value, Message: msg})
	}
	boolLabel := func(name string) (value, set bool) {
		key := prefix + name
		v, ok := labels[key]
		if !ok {
			return false, false
		}
		b, ok := parseBool(v)
		if !ok {
			warn(key, v, "not a boolean: use true or false (1/0 and any case work too); the label is ignored")
			return false, false
		}
		return b, true
	}

	var set bool
	ls.volumes, set = boolLabel(LabelVolumes)
	ls.volumesFalse = set && !ls.volumes
	ls.stop, _ = boolLabel(LabelStopDuringBackup)

	var engines []string
	for _, e := range engineLabels {
		on, set := boolLabel(e.label)
		switch {
		case on:
			engines = append(engines, prefix+e.label)
			if ls.engine == "" {
				ls.engine = e.kind
			}
		case set:
			ls.engineFalse = append(ls.engineFalse, prefix+e.label)
		}
	}
	if len(engines) > 1 {
		warn(engines[1], "true", fmt.Sprintf("a container is dumped as one engine: %s wins over %s (stack-back's order mariadb, mysql, postgres); remove the other label",
			engines[0], strings.Join(engines[1:], ", ")))
	}

	inc, hasInc := labels[prefix+LabelVolumesInclude]
	exc, hasExc := labels[prefix+LabelVolumesExclude]
	ls.include, ls.exclude = parseList(inc), parseList(exc)
	if hasInc && len(ls.include) == 0 {
		warn(prefix+LabelVolumesInclude, inc, "empty list: no mount is filtered by it")
	}
	if hasExc && len(ls.exclude) == 0 {
		warn(prefix+LabelVolumesExclude, exc, "empty list: no mount is filtered by it")
	}
	if len(ls.include) > 0 && len(ls.exclude) > 0 {
		warn(prefix+LabelVolumesExclude, exc, "ignored because "+prefix+LabelVolumesInclude+" is set (include wins, as in stack-back)")
		ls.exclude = nil
	}
	if (len(ls.include) > 0 || len(ls.exclude) > 0) && !ls.volumes {
		key, v := prefix+LabelVolumesInclude, inc
		if len(ls.include) == 0 {
			key, v = prefix+LabelVolumesExclude, exc
		}
		warn(key, v, "has no effect without "+prefix+LabelVolumes+"=true")
	}
	if ls.stop && ls.engine != "" {
		warn(prefix+LabelStopDuringBackup, labels[prefix+LabelStopDuringBackup],
			"ignored on a database container (a dump needs it running), as in stack-back")
		ls.stop = false
	}

	names := knownNames(prefix)
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	var unknown []string
	for k := range labels {
		if strings.HasPrefix(k, prefix) && !known[k] && !isHookLabel(k, prefix) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		msg := "unknown label, ignored"
		if s := closestLabel(k, names); s != "" {
			msg += "; did you mean " + s + "?"
		} else if rest, ok := strings.CutPrefix(k, prefix+"hook."); ok {
			msg += "; did you mean " + prefix + LabelHooks + "." + rest + "?"
		}
		warn(k, labels[k], msg+" (known: "+strings.Join(names, ", ")+", "+prefix+LabelHooks+".<pre|post|error|finally>.<N>.cmd|context|on-error)")
	}
	// A misspelt prefix (stack_back.volumes, stackback.volumes) is not
	// under the prefix at all: say so rather than skip the container
	// silently.
	var near []string
	for k := range labels {
		if !strings.HasPrefix(k, prefix) && closestLabel(k, names) != "" {
			near = append(near, k)
		}
	}
	sort.Strings(near)
	for _, k := range near {
		warn(k, labels[k], "not a backup label, ignored; did you mean "+closestLabel(k, names)+"? (the backup labels start with "+quote(prefix)+", see PLATBACK_LABEL_PREFIX)")
	}

	ls.anyBackupable = ls.volumes || ls.engine != ""
	return ls, warns
}

// closestLabel returns the known label (from names) most probably meant by
// key, or "": the nearest one at most two edits away (a transposition is
// one edit; case and _ for - cost none), whether the slip is in the name or
// in the prefix. A key that is a known label returns "".
func closestLabel(key string, names []string) string {
	const maxEdits = 2
	var lower string // key normalised, made only when a name is near in length
	best, bestDist := "", maxEdits+1
	for _, name := range names {
		if name == key {
			return ""
		}
		if abs(len(name)-len(key)) >= bestDist {
			continue // cheap: most labels are nowhere near in length
		}
		if lower == "" {
			lower = normaliseLabel(key)
		}
		if d := editDistance(lower, normaliseLabel(name), bestDist); d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

// normaliseLabel folds the slips that cost nothing: case, and _ for -.
func normaliseLabel(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// editDistance is the Levenshtein distance of a and b, counted in bytes
// (label keys are ASCII), with a transposition of neighbours counted as one
// edit (optimal string alignment). Once every alignment costs at least
// limit it returns limit: the caller only wants nearer strings.
func editDistance(a, b string, limit int) int {
	var buf [3 * 64]int // label keys are short: no allocation
	rows := buf[:]
	if n := 3 * (len(b) + 1); n > len(buf) {
		rows = make([]int, n)
	}
	prev2, prev, cur := rows[:len(b)+1], rows[len(b)+1:2*(len(b)+1)], rows[2*(len(b)+1):]
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
			rowMin = min(rowMin, cur[j])
		}
		// A transposition reaches back two rows: stop only when both
		// rows are past the limit.
		if rowMin >= limit && slices.Min(prev) >= limit {
			return limit
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(b)], limit)
}

func knownNames(prefix string) []string {
	return []string{prefix + LabelVolumes, prefix + LabelVolumesInclude, prefix + LabelVolumesExclude,
		prefix + LabelStopDuringBackup, prefix + LabelPostgres, prefix + LabelMySQL, prefix + LabelMariaDB}
}

// hasEngineLabel reports whether any database label is present (whatever
// its value): such containers are inspected for their environment.
func hasEngineLabel(labels map[string]string, prefix string) bool {
	for _, e := range engineLabels {
		if _, ok := labels[prefix+e.label]; ok {
			return true
		}
	}
	return false
}

// hasBackupLabel reports whether any label has the backup prefix.
func hasBackupLabel(labels map[string]string, prefix string) bool {
	for k := range labels {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// filterMount applies include/exclude to a mount source the way stack-back
// does: include keeps a mount whose source contains any pattern; exclude
// drops it. It returns a reason when the mount is filtered out.
func (ls labelSet) filterMount(source, prefix string) (keep bool, reason string) {
	if len(ls.include) > 0 {
		for _, p := range ls.include {
			if strings.Contains(source, p) {
				return true, ""
			}
		}
		return false, "source matches none of " + prefix + LabelVolumesInclude + "=" + strconv.Quote(strings.Join(ls.include, ","))
	}
	for _, p := range ls.exclude {
		if strings.Contains(source, p) {
			return false, "source contains " + strconv.Quote(p) + " from " + prefix + LabelVolumesExclude
		}
	}
	return true, ""
}

func quote(s string) string { return strconv.Quote(s) }
