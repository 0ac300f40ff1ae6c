// Package redact is platback's one redaction policy: credentials in URLs
// and known secret values are replaced by Marker before text is logged,
// printed or returned in an error.
package redact

import (
	"regexp"
	"sort"
	"strings"
)

// Marker replaces every redacted value.
const Marker = "***"

// userinfo matches the user:password@ (or token@) part of a URL, and of
// restic's scheme-less s3:host/bucket form.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://|\bs3:)[^/\s]*@`)

// URL returns s with the userinfo of every URL in it replaced by Marker.
func URL(s string) string { return userinfo.ReplaceAllString(s, "${1}"+Marker+"@") }

// MinSecretLen is the shortest value a Secrets replaces: shorter values
// would mangle ordinary text.
const MinSecretLen = 4

// Secrets replaces known secret values (and URL credentials) in text.
type Secrets struct{ values []string }

// NewSecrets returns a Secrets for values (empty and short ones are left out).
func NewSecrets(values ...string) Secrets {
	var s Secrets
	for _, v := range values {
		if len(v) >= MinSecretLen {
			s.values = append(s.values, v)
		}
	}
	// Longest first, so a secret containing another is removed whole.
	sort.Slice(s.values, func(i, j int) bool { return len(s.values[i]) > len(s.values[j]) })
	return s
}

// String returns text with every secret value and URL credential replaced.
func (s Secrets) String(text string) string {
	text = URL(text)
	for _, v := range s.values {
		text = strings.ReplaceAll(text, v, Marker)
	}
	return text
}
