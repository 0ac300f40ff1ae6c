package backup

import "github.com/platback/platback/internal/redact"

// RedactURL returns s with the user:password@ (or token@) part of every URL
// in it replaced by ***@, e.g. "s3:https://KEY:SECRET@minio.internal/bucket"
// becomes "s3:https://***@minio.internal/bucket", "rest:https://TOKEN@host/"
// becomes "rest:https://***@host/". Use it before printing a repository URL.
func RedactURL(s string) string { return redact.URL(s) }

// redactURL is RedactURL, for the package's own callers.
func redactURL(s string) string { return redact.URL(s) }

// redactor removes known secret values and URL credentials from text.
type redactor = redact.Secrets

// newRedactor redacts every value of env whose name is not in publicEnv.
func newRedactor(env map[string]string) redactor {
	var secrets []string
	for name, v := range env {
		if !publicEnv[name] {
			secrets = append(secrets, v)
		}
	}
	return redact.NewSecrets(secrets...)
}

// publicEnv are environment names whose values are not secret.
var publicEnv = map[string]bool{
	"AWS_DEFAULT_REGION": true, "AWS_REGION": true, "RESTIC_CACHE_DIR": true, "RESTIC_REPOSITORY": true,
	"RESTIC_HOST": true, "RESTIC_COMPRESSION": true, "RESTIC_PACK_SIZE": true,
}
