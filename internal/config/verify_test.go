package config

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// VERIFY_CRON and VERIFY_MAX_BYTES: refused at start-up with the variable,
// the value and the fix; read as a schedule and a size in bytes. A loader
// that skipped either variable, or read sizes in powers of 1000, fails.
func TestLoadVerify(t *testing.T) {
	bad := []struct{ name, value, want string }{
		{"VERIFY_CRON", "0 3 * *", "want 5 fields"},
		{"VERIFY_CRON", "@every 30s", "at least 1m"},
		{"VERIFY_MAX_BYTES", "lots", "want a size such as 500M"},
		{"VERIFY_MAX_BYTES", "-1G", "want a size such as 500M"},
	}
	for _, tt := range bad {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{"RESTIC_REPOSITORY": "/srv/repo", tt.name: tt.value}))
			require.Error(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("%s=%q: ", tt.name, tt.value))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	good := []struct {
		vars map[string]string
		cron string
		max  uint64
	}{
		{map[string]string{}, "", 0},
		{map[string]string{"VERIFY_CRON": " @weekly ", "VERIFY_MAX_BYTES": "20G"}, "@weekly", 20 << 30},
		{map[string]string{"VERIFY_CRON": "0 4 * * SUN", "VERIFY_MAX_BYTES": "1500"}, "0 4 * * SUN", 1500},
	}
	for _, tt := range good {
		t.Run(fmt.Sprint(tt.vars), func(t *testing.T) {
			vars := map[string]string{"RESTIC_REPOSITORY": "/srv/repo"}
			for k, v := range tt.vars {
				vars[k] = v
			}
			c, err := Load(env(vars))
			require.NoError(t, err)
			assert.Equal(t, tt.cron, c.VerifyCron)
			assert.Equal(t, tt.max, c.VerifyMaxBytes)
		})
	}
}
