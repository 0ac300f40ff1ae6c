package discover

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseBool(t *testing.T) {
	for _, tc := range []struct {
		in        string
		value, ok bool
	}{
		{"true", true, true}, {"True", true, true}, {"TRUE", true, true}, {" true ", true, true}, {"1", true, true},
		{"false", false, true}, {"False", false, true}, {"0", false, true},
		{"yes", false, false}, {"on", false, false}, {"", false, false}, {"2", false, false}, {"truee", false, false},
	} {
		v, ok := parseBool(tc.in)
		assert.Equal(t, tc.value, v, "%q", tc.in)
		assert.Equal(t, tc.ok, ok, "%q", tc.in)
	}
}

func TestParseList(t *testing.T) {
	assert.Equal(t, []string{"a", "b"}, parseList("a, b"))
	assert.Equal(t, []string{"a"}, parseList(" a ,, "))
	assert.Nil(t, parseList(""))
	assert.Nil(t, parseList(" , "))
}

func TestParseLabels(t *testing.T) {
	const p = DefaultLabelPrefix
	for _, tc := range []struct {
		name   string
		labels map[string]string
		check  func(t *testing.T, ls labelSet)
		warn   []Warning // compared by Label and Value; Message must be set
	}{
		{
			name:   "volumes true",
			labels: map[string]string{p + "volumes": "TRUE"},
			check:  func(t *testing.T, ls labelSet) { assert.True(t, ls.volumes); assert.True(t, ls.anyBackupable) },
		},
		{
			name:   "volumes false is off and remembered",
			labels: map[string]string{p + "volumes": "0"},
			check: func(t *testing.T, ls labelSet) {
				assert.False(t, ls.anyBackupable)
				assert.True(t, ls.volumesFalse)
			},
		},
		{
			name:   "bad boolean warns and counts as unset",
			labels: map[string]string{p + "volumes": "yes", p + "postgres": "maybe"},
			check:  func(t *testing.T, ls labelSet) { assert.False(t, ls.anyBackupable) },
			warn:   []Warning{{Label: p + "volumes", Value: "yes"}, {Label: p + "postgres", Value: "maybe"}},
		},
		{
			name:   "engine",
			labels: map[string]string{p + "postgres": "true"},
			check:  func(t *testing.T, ls labelSet) { assert.Equal(t, KindPostgres, ls.engine) },
		},
		{
			name:   "two engines: mariadb wins, warned",
			labels: map[string]string{p + "postgres": "true", p + "mariadb": "1"},
			check:  func(t *testing.T, ls labelSet) { assert.Equal(t, KindMariaDB, ls.engine) },
			warn:   []Warning{{Label: p + "postgres", Value: "true"}},
		},
		{
			name:   "include wins over exclude, warned",
			labels: map[string]string{p + "volumes": "true", p + "volumes.include": "a, b", p + "volumes.exclude": "c"},
			check: func(t *testing.T, ls labelSet) {
				assert.Equal(t, []string{"a", "b"}, ls.include)
				assert.Nil(t, ls.exclude)
			},
			warn: []Warning{{Label: p + "volumes.exclude", Value: "c"}},
		},
		{
			name:   "exclude without volumes has no effect",
			labels: map[string]string{p + "volumes.exclude": "c"},
			warn:   []Warning{{Label: p + "volumes.exclude", Value: "c"}},
		},
		{
			name:   "empty include",
			labels: map[string]string{p + "volumes": "true", p + "volumes.include": " , "},
			check:  func(t *testing.T, ls labelSet) { assert.Nil(t, ls.include) },
			warn:   []Warning{{Label: p + "volumes.include", Value: " , "}},
		},
		{
			name:   "stop-during-backup ignored on a database",
			labels: map[string]string{p + "mysql": "true", p + "volumes.stop-during-backup": "true"},
			check:  func(t *testing.T, ls labelSet) { assert.False(t, ls.stop) },
			warn:   []Warning{{Label: p + "volumes.stop-during-backup", Value: "true"}},
		},
		{
			name:   "unknown label under the prefix",
			labels: map[string]string{p + "volume": "true", "other.volume": "x"},
			check:  func(t *testing.T, ls labelSet) { assert.False(t, ls.anyBackupable) },
			warn:   []Warning{{Label: p + "volume", Value: "true"}},
		},
		{
			name:   "misspelt prefix",
			labels: map[string]string{"stack_back.volumes": "true", "stackback.postgres": "true", "com.docker.compose.service": "app"},
			check:  func(t *testing.T, ls labelSet) { assert.False(t, ls.anyBackupable) },
			warn:   []Warning{{Label: "stack_back.volumes", Value: "true"}, {Label: "stackback.postgres", Value: "true"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls, warns := parseLabels("c1", tc.labels, p)
			if tc.check != nil {
				tc.check(t, ls)
			}
			var got []Warning
			for _, w := range warns {
				assert.Equal(t, "c1", w.Container)
				assert.NotEmpty(t, w.Message)
				got = append(got, Warning{Label: w.Label, Value: w.Value})
			}
			assert.Equal(t, tc.warn, got)
		})
	}
}

// Typos in backup labels are warnings that name the container, the label
// and the label most probably meant.
func TestLabelTypoWarnings(t *testing.T) {
	const p = DefaultLabelPrefix
	for _, tc := range []struct {
		key, value string
		want       []string // in the warning's message
	}{
		{p + "volume", "true", []string{"unknown label", "did you mean stack-back.volumes?"}},
		{p + "volumes.includes", "data", []string{"did you mean stack-back.volumes.include?"}},
		{p + "volumes.stop_during_backup", "true", []string{"did you mean stack-back.volumes.stop-during-backup?"}},
		{p + "Volumes", "true", []string{"did you mean stack-back.volumes?"}},
		{p + "postgresql", "true", []string{"did you mean stack-back.postgres?"}},
		{p + "maria", "true", []string{"did you mean stack-back.mariadb?"}},
		{p + "mongodb", "true", []string{"unknown label", "(known: stack-back.volumes, "}},
		{"stack_back.volumes", "true", []string{"not a backup label", "did you mean stack-back.volumes?", `start with "stack-back."`}},
		{"stack-back-volumes", "true", []string{"did you mean stack-back.volumes?"}},
		{"stackback.mysql", "true", []string{"did you mean stack-back.mysql?"}},
		{p + "volumes", "yes", []string{"not a boolean: use true or false", "the label is ignored"}},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			_, warns := parseLabels("app-1", map[string]string{tc.key: tc.value}, p)
			var found *Warning
			for i, w := range warns {
				if w.Label == tc.key {
					found = &warns[i]
				}
			}
			require.NotNil(t, found, "no warning for %s in %v", tc.key, warns)
			assert.Equal(t, "app-1", found.Container)
			assert.Equal(t, tc.value, found.Value)
			for _, w := range tc.want {
				assert.Contains(t, found.Message, w)
			}
			assert.Contains(t, found.String(), "container app-1: label "+tc.key+"=")
		})
	}

	// Labels that are nobody's typo stay quiet; a custom prefix is honoured.
	for _, labels := range []map[string]string{
		{"com.docker.compose.project": "app", "com.docker.compose.volumes": "x", "traefik.enable": "true", "backup": "yes"},
		{p + "volumes": "true", p + "volumes.include": "data"},
	} {
		_, warns := parseLabels("app-1", labels, p)
		assert.Empty(t, warns, "%v", labels)
	}
	_, warns := parseLabels("app-1", map[string]string{"backup.volume": "true", "stack-back.volumes": "true"}, "backup.")
	require.Len(t, warns, 1)
	assert.Contains(t, warns[0].Message, "did you mean backup.volumes?")
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "ab", 2}, {"volumes", "volumes", 0}, {"volume", "volumes", 1},
		{"volumse", "volumes", 1}, {"kitten", "sitting", 3}, {"mysql", "mariadb", 6},
	} {
		assert.Equal(t, tc.d, editDistance(tc.a, tc.b, 100), "%q %q", tc.a, tc.b)
		assert.Equal(t, tc.d, editDistance(tc.b, tc.a, 100), "%q %q", tc.b, tc.a)
		assert.Equal(t, min(tc.d, 3), editDistance(tc.a, tc.b, 3), "%q %q, limit 3", tc.a, tc.b)
	}
}

func TestFilterMount(t *testing.T) {
	const p = DefaultLabelPrefix
	named := "/var/lib/docker/volumes/app_media/_data"
	for _, tc := range []struct {
		name             string
		include, exclude []string
		source           string
		keep             bool
	}{
		{"no filter", nil, nil, named, true},
		{"include matches a volume by its name inside the source path", []string{"media"}, nil, named, true},
		{"include misses", []string{"files"}, nil, named, false},
		{"include, any pattern", []string{"x", "files"}, nil, "/srv/files", true},
		{"exclude matches", nil, []string{"files"}, "/srv/files", false},
		{"exclude misses", nil, []string{"files"}, named, true},
		{"substring, not glob", []string{"med*"}, nil, named, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keep, reason := labelSet{include: tc.include, exclude: tc.exclude}.filterMount(tc.source, p)
			assert.Equal(t, tc.keep, keep)
			assert.Equal(t, !tc.keep, reason != "", "reason %q", reason)
		})
	}
}
