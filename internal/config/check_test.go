package config

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// CHECK_CRON and CHECK_READ_DATA_PARTS: refused at start-up with the
// variable, the value and the fix; a fixed n/t or percentage in
// CHECK_READ_DATA_PARTS points to CHECK_READ_DATA_SUBSET.
func TestLoadCheckSchedule(t *testing.T) {
	bad := []struct {
		name, value string
		want        []string
	}{
		{"CHECK_CRON", "0 3 * *", []string{"got 4 fields", "want 5 fields"}},
		{"CHECK_CRON", "0 0 3 * * SUN", []string{"6 fields"}},
		{"CHECK_CRON", "every day", []string{`write "@daily"`}},
		{"CHECK_CRON", "@every 30s", []string{"at least 1m"}},
		{"CHECK_CRON", "@reboot", nil},
		{"CHECK_READ_DATA_PARTS", "-1", []string{"from 0 (structure only) to 256"}},
		{"CHECK_READ_DATA_PARTS", "257", []string{"from 0 (structure only) to 256"}},
		{"CHECK_READ_DATA_PARTS", "twelve", []string{"from 0 (structure only) to 256"}},
		{"CHECK_READ_DATA_PARTS", "1/12", []string{"the number of parts t alone", "CHECK_READ_DATA_SUBSET"}},
		{"CHECK_READ_DATA_PARTS", "5%", []string{"the number of parts t alone", "CHECK_READ_DATA_SUBSET"}},
	}
	for _, tt := range bad {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{"RESTIC_REPOSITORY": "/srv/repo", tt.name: tt.value}))
			require.Error(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("%s=%q: ", tt.name, tt.value))
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	good := []struct {
		vars        map[string]string
		cron        string
		parts       int
		afterSubset string
	}{
		{map[string]string{}, "", 12, ""}, // off by default; 12 parts once on
		{map[string]string{"CHECK_CRON": "0 3 * * SUN"}, "0 3 * * SUN", 12, ""},
		{map[string]string{"CHECK_CRON": " @weekly ", "CHECK_READ_DATA_PARTS": "0"}, "@weekly", 0, ""},
		{map[string]string{"CHECK_CRON": "@every 24h", "CHECK_READ_DATA_PARTS": "256"}, "@every 24h", 256, ""},
		{map[string]string{"CHECK_CRON": "@daily", "CHECK_READ_DATA_PARTS": "1"}, "@daily", 1, ""},
		// Both checks at once: after each run a fixed 5%, on CHECK_CRON
		// the rotation.
		{map[string]string{"CHECK_CRON": "@daily", "CHECK_AFTER_BACKUP": "true", "CHECK_READ_DATA_SUBSET": "5%", "CHECK_READ_DATA_PARTS": "7"}, "@daily", 7, "5%"},
	}
	for _, tt := range good {
		t.Run(fmt.Sprint(tt.vars), func(t *testing.T) {
			vars := map[string]string{"RESTIC_REPOSITORY": "/srv/repo"}
			for k, v := range tt.vars {
				vars[k] = v
			}
			c, err := Load(env(vars))
			require.NoError(t, err)
			assert.Equal(t, tt.cron, c.CheckCron)
			assert.Equal(t, tt.parts, c.CheckParts)
			assert.Equal(t, tt.afterSubset, c.CheckSubset)
		})
	}
}
