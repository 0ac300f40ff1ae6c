package vaultcreds

import (
	"context"
	"errors"
	"fmt"
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
// ConfigFromEnv) and an *EnvSource reading plain variables otherwise.
func SourceFromEnv(getenv func(string) string, opts ...Option) (Source, error) {
	cfg, err := ConfigFromEnv(getenv)
	if errors.Is(err, ErrNotConfigured) {
		return FromEnv(getenv)
	}
	if err != nil {
		return nil, err
	}
	return New(cfg, opts...)
}

// envVar is one variable EnvSource reads, from NAME or from the file NAME_FILE.
type envVar struct {
	name  string
	value string // from NAME
	file  string // from NAME_FILE
}

// EnvSource reads credentials from plain environment variables, as
// stack-back does: RESTIC_PASSWORD, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// RESTIC_REPOSITORY, each also as NAME_FILE naming a file that holds the
// value (Docker secrets). Files are read again at each run.
type EnvSource struct {
	vars []envVar
}

// FromEnv reads the plain variables through getenv and checks them:
// RESTIC_PASSWORD or RESTIC_PASSWORD_FILE is required, AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY come together or not at all (a local or REST
// repository needs none), and each _FILE must be readable and not empty.
func FromEnv(getenv func(string) string) (*EnvSource, error) {
	s := &EnvSource{}
	var errs []error
	for _, name := range []string{EnvResticPassword, EnvAWSAccessKeyID, EnvAWSSecretKey, EnvResticRepository} {
		v := envVar{name: name, value: getenv(name), file: strings.TrimSpace(getenv(name + "_FILE"))}
		if v.value != "" && v.file != "" {
			errs = append(errs, &ConfigError{Var: name, Problem: "set together with " + name + "_FILE", Fix: "set only one"})
		} else if v.file != "" {
			if _, err := readValueFile(name+"_FILE", v.file); err != nil {
				errs = append(errs, err)
			}
		}
		s.vars = append(s.vars, v)
	}
	set := func(i int) bool { return s.vars[i].value != "" || s.vars[i].file != "" }
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
	if err := joinProblems(errs); err != nil {
		return nil, err
	}
	return s, nil
}

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
	var names []string
	for _, v := range s.vars {
		switch {
		case v.file != "":
			names = append(names, v.name+"_FILE="+v.file)
		case v.value != "":
			names = append(names, v.name+"="+Redacted)
		}
	}
	return "vaultcreds.EnvSource{" + strings.Join(names, " ") + "}"
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
