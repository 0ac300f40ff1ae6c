package vaultcreds

import (
	"fmt"
	"regexp"
	"strings"
)

// FieldMapping maps one field of the Vault secret to one environment
// variable.
type FieldMapping struct {
	// Field is the key inside the secret, for example "password".
	Field string
	// Env is the variable it fills, for example "RESTIC_PASSWORD".
	Env string
	// Optional fields may be absent from the secret; required ones that are
	// absent or empty make the read fail with ErrMissingField.
	Optional bool
}

// FieldMap is the list of fields read from the secret.
type FieldMap []FieldMapping

// DefaultFieldMap matches the user's Ansible template:
// password → RESTIC_PASSWORD, access_key → AWS_ACCESS_KEY_ID,
// secret_key → AWS_SECRET_ACCESS_KEY, and the optional
// repository → RESTIC_REPOSITORY.
func DefaultFieldMap() FieldMap {
	return FieldMap{
		{Field: "password", Env: EnvResticPassword},
		{Field: "access_key", Env: EnvAWSAccessKeyID},
		{Field: "secret_key", Env: EnvAWSSecretKey},
		{Field: "repository", Env: EnvResticRepository, Optional: true},
	}
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseFieldMap parses VAULT_FIELD_MAP: comma-separated field=VARIABLE pairs;
// a field name ending in "?" is optional. The result replaces the default map
// entirely:
//
//	password=RESTIC_PASSWORD,access_key=AWS_ACCESS_KEY_ID,secret_key=AWS_SECRET_ACCESS_KEY,repository?=RESTIC_REPOSITORY
func ParseFieldMap(s string) (FieldMap, error) {
	var m FieldMap
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		field, env, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q has no '=': want field=VARIABLE", part)
		}
		fm := FieldMapping{Field: strings.TrimSpace(field), Env: strings.TrimSpace(env)}
		if strings.HasSuffix(fm.Field, "?") {
			fm.Optional = true
			fm.Field = strings.TrimSpace(strings.TrimSuffix(fm.Field, "?"))
		}
		m = append(m, fm)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m FieldMap) validate() error {
	if len(m) == 0 {
		return fmt.Errorf("no field=VARIABLE pair")
	}
	fields, envs := map[string]bool{}, map[string]bool{}
	required := 0
	for _, fm := range m {
		switch {
		case fm.Field == "":
			return fmt.Errorf("empty field name before =%s", fm.Env)
		case !envNameRE.MatchString(fm.Env):
			return fmt.Errorf("%q is not a valid environment variable name (for field %q)", fm.Env, fm.Field)
		case fields[fm.Field]:
			return fmt.Errorf("field %q is mapped twice", fm.Field)
		case envs[fm.Env]:
			return fmt.Errorf("variable %s is the target of two fields", fm.Env)
		}
		fields[fm.Field], envs[fm.Env] = true, true
		if !fm.Optional {
			required++
		}
	}
	if required == 0 {
		return fmt.Errorf("every field is optional: at least one (the password) must be required")
	}
	return nil
}

// String formats the map the way ParseFieldMap reads it.
func (m FieldMap) String() string {
	parts := make([]string, len(m))
	for i, fm := range m {
		opt := ""
		if fm.Optional {
			opt = "?"
		}
		parts[i] = fm.Field + opt + "=" + fm.Env
	}
	return strings.Join(parts, ",")
}
