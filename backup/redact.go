package backup

import (
	"regexp"
	"sort"
	"strings"
)

// userinfo matches the user:password@ (or token@) part of a URL, and of
// restic's scheme-less s3:host/bucket form.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://|\bs3:)[^/\s]*@`)

// RedactURL returns s with the user:password@ (or token@) part of every URL
// in it replaced by ***@, e.g. "s3:https://KEY:SECRET@minio.internal/bucket"
// becomes "s3:https://***@minio.internal/bucket", "rest:https://TOKEN@host/"
// becomes "rest:https://***@host/". Use it before printing a repository URL.
func RedactURL(s string) string { return userinfo.ReplaceAllString(s, "${1}***@") }

// redactURL is RedactURL, for the package's own callers.
func redactURL(s string) string { return RedactURL(s) }

// minSecretLen is the shortest value the redactor replaces: shorter values
// would mangle ordinary text.
const minSecretLen = 4

// redactor removes known secret values and URL credentials from text.
type redactor struct{ secrets []string }

// newRedactor redacts every value of env whose name is not in public.
func newRedactor(env map[string]string) redactor {
	var r redactor
	for name, v := range env {
		if publicEnv[name] || len(v) < minSecretLen {
			continue
		}
		r.secrets = append(r.secrets, v)
	}
	// Longest first, so a secret containing another is removed whole.
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

// publicEnv are environment names whose values are not secret.
var publicEnv = map[string]bool{
	"AWS_DEFAULT_REGION": true, "AWS_REGION": true, "RESTIC_CACHE_DIR": true, "RESTIC_REPOSITORY": true,
	"RESTIC_HOST": true, "RESTIC_COMPRESSION": true, "RESTIC_PACK_SIZE": true,
}

func (r redactor) String(s string) string {
	s = redactURL(s)
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, v, "***")
	}
	return s
}
