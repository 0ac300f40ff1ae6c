package vaultcreds

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
)

// Source gives the credentials for one backup run. Both *Client (Vault) and
// *EnvSource (plain variables) implement it, so the sidecar can use either.
type Source interface {
	// Credentials returns the credentials to use for a run.
	Credentials(ctx context.Context) (Credentials, error)
	// Close releases what the source holds (Vault: revokes the token).
	Close(ctx context.Context) error
}

var (
	_ Source = (*Client)(nil)
	_ Source = (*EnvSource)(nil)
)

// SourceFromEnv returns a Vault *Client when Vault is configured (see
// ConfigFromEnv) and an *EnvSource reading plain variables otherwise: it is
// SettingsFromEnv then NewSource. A program that checks its configuration
// before it builds the source keeps the Settings and calls NewSource.
func SourceFromEnv(getenv func(string) string, opts ...Option) (Source, error) {
	s, err := SettingsFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return NewSource(s, opts...)
}

// PlainConfig is where the plain variables come from, as stack-back reads
// them: each value set directly (NAME) or in a file (NAME_FILE, a Docker
// secret) read at each run, never both. Each field names its variable.
//
// PlainConfig redacts the values (not the file paths) when printed or
// logged.
type PlainConfig struct {
	// ResticPassword (RESTIC_PASSWORD) or ResticPasswordFile
	// (RESTIC_PASSWORD_FILE): one is required.
	ResticPassword     string
	ResticPasswordFile string
	// The S3 key (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or their
	// _FILE variants) comes whole or not at all: a local or REST repository
	// needs none.
	AWSAccessKeyID         string
	AWSAccessKeyIDFile     string
	AWSSecretAccessKey     string
	AWSSecretAccessKeyFile string
	// ResticRepository (RESTIC_REPOSITORY) or ResticRepositoryFile
	// (RESTIC_REPOSITORY_FILE), optional.
	ResticRepository     string
	ResticRepositoryFile string
	// CopyResticPassword (COPY_RESTIC_PASSWORD) or CopyResticPasswordFile
	// (COPY_RESTIC_PASSWORD_FILE), optional: the password of the second
	// copy's repository, when it is not RESTIC_PASSWORD.
	CopyResticPassword     string
	CopyResticPasswordFile string
}

// envVar is one variable EnvSource reads, from NAME or from the file NAME_FILE.
type envVar struct {
	name  string
	value string // from NAME
	file  string // from NAME_FILE
}

// vars lists p's variables: password, access key, secret key, repository,
// the copy's password.
func (p PlainConfig) vars() []envVar {
	return []envVar{
		{EnvResticPassword, p.ResticPassword, p.ResticPasswordFile},
		{EnvAWSAccessKeyID, p.AWSAccessKeyID, p.AWSAccessKeyIDFile},
		{EnvAWSSecretKey, p.AWSSecretAccessKey, p.AWSSecretAccessKeyFile},
		{EnvResticRepository, p.ResticRepository, p.ResticRepositoryFile},
		{EnvCopyResticPassword, p.CopyResticPassword, p.CopyResticPasswordFile},
	}
}

// plainConfigFromEnv reads each plain variable and its _FILE once.
func plainConfigFromEnv(getenv func(string) string) PlainConfig {
	get := func(name string) (string, string) { return getenv(name), strings.TrimSpace(getenv(name + "_FILE")) }
	var p PlainConfig
	p.ResticPassword, p.ResticPasswordFile = get(EnvResticPassword)
	p.AWSAccessKeyID, p.AWSAccessKeyIDFile = get(EnvAWSAccessKeyID)
	p.AWSSecretAccessKey, p.AWSSecretAccessKeyFile = get(EnvAWSSecretKey)
	p.ResticRepository, p.ResticRepositoryFile = get(EnvResticRepository)
	p.CopyResticPassword, p.CopyResticPasswordFile = get(EnvCopyResticPassword)
	return p
}

// Validate checks p: a password is required, the S3 key comes whole or not
// at all, no variable is set both as NAME and NAME_FILE, and each file is
// read once to fail at start-up when it is missing, unreadable or empty
// (its content is not kept). Every problem is reported, each a *ConfigError.
func (p PlainConfig) Validate() error {
	vars := p.vars()
	var errs []error
	for _, v := range vars {
		if v.value != "" && v.file != "" {
			errs = append(errs, &ConfigError{Var: v.name, Problem: "set together with " + v.name + "_FILE", Fix: "set only one"})
		} else if v.file != "" {
			if _, err := readValueFile(v.name+"_FILE", v.file); err != nil {
				errs = append(errs, err)
			}
		}
	}
	set := func(i int) bool { return vars[i].value != "" || vars[i].file != "" }
	if !set(0) {
		errs = append(errs, &ConfigError{Var: EnvResticPassword, Problem: "not set (nor " + EnvResticPassword + "_FILE)",
			Fix: "set " + EnvResticPassword + "_FILE to a Docker secret, or use Vault with " + EnvRoleIDFile + ", " + EnvSecretIDFile + " and " + EnvSecretPath})
	}
	if set(1) != set(2) {
		missing := EnvAWSSecretKey
		if !set(1) {
			missing = EnvAWSAccessKeyID
		}
		errs = append(errs, &ConfigError{Var: missing, Problem: "not set (nor " + missing + "_FILE) while its pair is",
			Fix: "set both " + EnvAWSAccessKeyID + " and " + EnvAWSSecretKey + " for an S3 repository, or neither"})
	}
	return joinProblems(errs)
}

// describeVars names the variables set, with file paths and redacted values.
func describeVars(vars []envVar) []string {
	var names []string
	for _, v := range vars {
		switch {
		case v.file != "":
			names = append(names, v.name+"_FILE="+v.file)
		case v.value != "":
			names = append(names, v.name+"="+Redacted)
		}
	}
	return names
}

// String describes p with file paths and redacted values.
func (p PlainConfig) String() string {
	return "vaultcreds.PlainConfig{" + strings.Join(describeVars(p.vars()), " ") + "}"
}

// GoString implements fmt.GoStringer (%#v) without values.
func (p PlainConfig) GoString() string { return p.String() }

// Format implements fmt.Formatter: every verb prints String.
func (p PlainConfig) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(p.String())) }

// redactedMap is p as NAME(_FILE) → path or "***".
func (p PlainConfig) redactedMap() map[string]string {
	m := map[string]string{}
	for _, d := range describeVars(p.vars()) {
		k, v, _ := strings.Cut(d, "=")
		m[k] = v
	}
	return m
}

// LogValue implements slog.LogValuer with file paths and redacted values.
func (p PlainConfig) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, d := range describeVars(p.vars()) {
		k, v, _ := strings.Cut(d, "=")
		attrs = append(attrs, slog.String(k, v))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON implements json.Marshaler with file paths and redacted values.
func (p PlainConfig) MarshalJSON() ([]byte, error) { return json.Marshal(p.redactedMap()) }

// EnvSource reads credentials from plain environment variables, as
// stack-back does: RESTIC_PASSWORD, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// RESTIC_REPOSITORY (and COPY_RESTIC_PASSWORD), each also as NAME_FILE naming a file that holds the
// value (Docker secrets). Files are read again at each run.
type EnvSource struct {
	vars []envVar
}

// FromEnv reads the plain variables through getenv and checks them (see
// PlainConfig.Validate): RESTIC_PASSWORD or RESTIC_PASSWORD_FILE is required,
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY come together or not at all (a
// local or REST repository needs none), and each _FILE must be readable and
// not empty.
func FromEnv(getenv func(string) string) (*EnvSource, error) {
	p := plainConfigFromEnv(getenv)
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return newEnvSource(p), nil
}

// newEnvSource returns the source of p, already checked.
func newEnvSource(p PlainConfig) *EnvSource { return &EnvSource{vars: p.vars()} }

// Credentials implements Source: it returns the variables, reading the
// _FILE variants again.
func (s *EnvSource) Credentials(ctx context.Context) (Credentials, error) {
	env := map[string]string{}
	for _, v := range s.vars {
		switch {
		case v.file != "":
			val, err := readValueFile(v.name+"_FILE", v.file)
			if err != nil {
				return Credentials{}, err
			}
			env[v.name] = val
		case v.value != "":
			env[v.name] = v.value
		}
	}
	return NewCredentials(env), nil
}

// Close implements Source; there is nothing to release.
func (s *EnvSource) Close(context.Context) error { return nil }

// String describes the source without values.
func (s *EnvSource) String() string {
	return "vaultcreds.EnvSource{" + strings.Join(describeVars(s.vars), " ") + "}"
}

// readValueFile reads a Docker-secret style file; only a trailing newline is
// removed, as restic does for --password-file.
func readValueFile(varName, path string) (string, error) {
	s, err := readSecretFileRaw(varName, path, "value")
	if err != nil {
		return "", err
	}
	s = strings.TrimRight(s, "\r\n")
	if s == "" {
		return "", &ConfigError{Var: varName, Value: path, Problem: "the file is empty", Fix: "write the value into it"}
	}
	return s, nil
}

// GoString implements fmt.GoStringer (%#v) without values.
func (s *EnvSource) GoString() string { return s.String() }

// Format implements fmt.Formatter: every verb prints String.
func (s *EnvSource) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }
