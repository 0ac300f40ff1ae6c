package vaultcreds

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/platback/platback/internal/redact"
)

// The environment variable names restic and the S3 backend read, which the
// default field map fills.
const (
	EnvResticPassword   = "RESTIC_PASSWORD"
	EnvResticRepository = "RESTIC_REPOSITORY"
	EnvAWSAccessKeyID   = "AWS_ACCESS_KEY_ID"
	EnvAWSSecretKey     = "AWS_SECRET_ACCESS_KEY"
)

// The variables of the second copy (the sidecar's COPY_REPOSITORY): a Vault
// field map may fill them, and the plain variables read
// COPY_RESTIC_PASSWORD(_FILE).
const (
	EnvCopyResticPassword = "COPY_RESTIC_PASSWORD"
	EnvCopyRepository     = "COPY_REPOSITORY"
)

// Redacted is what every printed or logged credential value is replaced with.
const Redacted = redact.Marker

// Credentials is a set of environment-style variables (RESTIC_PASSWORD,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally RESTIC_REPOSITORY,
// or whatever the field map names) held in memory only.
//
// A Credentials value redacts itself wherever it can be printed: String,
// GoString, every fmt verb, JSON and slog show the variable names with
// "***" values. Nested in an unexported struct field, fmt prints only
// an address. Use Env, Get or Environ to hand the values to a subprocess.
// The zero value holds nothing.
type Credentials struct {
	// A pointer, so that fmt walking an enclosing struct's unexported field
	// prints an address instead of the map.
	p *credData
}

type credData struct {
	env map[string]string
}

// NewCredentials returns Credentials holding a copy of env. It is meant for
// other Source implementations and tests.
func NewCredentials(env map[string]string) Credentials {
	m := make(map[string]string, len(env))
	for k, v := range env {
		m[k] = v
	}
	return Credentials{p: &credData{env: m}}
}

// IsZero reports whether c holds no variable.
func (c Credentials) IsZero() bool { return c.p == nil || len(c.p.env) == 0 }

// Get returns the value of the variable name, or "" when it is not set.
func (c Credentials) Get(name string) string {
	if c.p == nil {
		return ""
	}
	return c.p.env[name]
}

// Lookup returns the value of the variable name and whether it is set.
func (c Credentials) Lookup(name string) (string, bool) {
	if c.p == nil {
		return "", false
	}
	v, ok := c.p.env[name]
	return v, ok
}

// Env returns a copy of the variables as a map.
func (c Credentials) Env() map[string]string {
	m := map[string]string{}
	if c.p != nil {
		for k, v := range c.p.env {
			m[k] = v
		}
	}
	return m
}

// Environ returns the variables as sorted "NAME=value" strings, ready to be
// appended to an exec.Cmd's Env.
func (c Credentials) Environ() []string {
	names := c.Names()
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, n+"="+c.p.env[n])
	}
	return out
}

// Names returns the sorted names of the variables held.
func (c Credentials) Names() []string {
	if c.p == nil {
		return nil
	}
	names := make([]string, 0, len(c.p.env))
	for k := range c.p.env {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// SecretValues returns the non-empty values that must never appear in logs or
// error messages, longest first, so a caller (the backup engine filtering
// restic's stderr) can redact them. RESTIC_REPOSITORY and COPY_REPOSITORY
// are not included: they name where the backup goes and are needed in error
// messages (keep passwords out of repository URLs).
func (c Credentials) SecretValues() []string {
	if c.p == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for k, v := range c.p.env {
		if k == EnvResticRepository || k == EnvCopyRepository || v == "" || seen[v] {
			continue
		}
		seen[v] = true
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] < out[j]
	})
	return out
}

// Redact returns s with every secret value of c replaced by "***".
func (c Credentials) Redact(s string) string {
	return redactAll(s, c.SecretValues())
}

// redactAll replaces each of secrets (longest first is best) in s.
func redactAll(s string, secrets []string) string {
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, Redacted)
		}
	}
	return s
}

// String returns the variable names with redacted values, for example
// "Credentials{AWS_ACCESS_KEY_ID=*** RESTIC_PASSWORD=***}".
func (c Credentials) String() string {
	var b strings.Builder
	b.WriteString("Credentials{")
	for i, n := range c.Names() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n + "=" + Redacted)
	}
	b.WriteByte('}')
	return b.String()
}

// GoString implements fmt.GoStringer (%#v) with redacted values.
func (c Credentials) GoString() string { return "vaultcreds." + c.String() }

// Format implements fmt.Formatter: every verb prints the redacted form.
func (c Credentials) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(c.GoString()))
		return
	}
	_, _ = f.Write([]byte(c.String()))
}

// MarshalJSON implements json.Marshaler with redacted values.
func (c Credentials) MarshalJSON() ([]byte, error) {
	m := make(map[string]string, len(c.Names()))
	for _, n := range c.Names() {
		m[n] = Redacted
	}
	return json.Marshal(m)
}

// LogValue implements slog.LogValuer: a group of the variable names with
// redacted values.
func (c Credentials) LogValue() slog.Value {
	names := c.Names()
	attrs := make([]slog.Attr, 0, len(names))
	for _, n := range names {
		attrs = append(attrs, slog.String(n, Redacted))
	}
	return slog.GroupValue(attrs...)
}
