package discover

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
