package vaultcreds

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Defaults of Config's optional fields.
const (
	DefaultAuthMount      = "approle"
	DefaultRequestTimeout = 30 * time.Second
	DefaultRetryTimeout   = 2 * time.Minute
)

// Config says how to log in to Vault and which secret to read. Each field
// names the environment variable ConfigFromEnv fills it from. Build it with
// ConfigFromEnv, or by hand and pass it to New or VaultSettings, which
// validate it.
//
// Config redacts RoleID and SecretID when printed or logged.
type Config struct {
	// Address of Vault, for example "https://vault.internal:8200" (VAULT_ADDR).
	Address string
	// Namespace for Vault Enterprise / HCP namespaces (VAULT_NAMESPACE).
	Namespace string
	// TLS is read as the Vault CLI does: VAULT_CACERT, VAULT_CAPATH,
	// VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_TLS_SERVER_NAME and
	// VAULT_SKIP_VERIFY (Insecure).
	TLS api.TLSConfig

	// RoleID is the AppRole role_id (VAULT_ROLE_ID), or RoleIDFile a file
	// holding it (VAULT_ROLE_ID_FILE). Exactly one is required.
	RoleID     string
	RoleIDFile string

	// SecretID is the AppRole secret_id (VAULT_SECRET_ID), or SecretIDFile a
	// file holding it (VAULT_SECRET_ID_FILE, preferred: Docker secrets).
	// Exactly one is required. The file is read again at each login, so a
	// rotated secret_id is picked up without a restart.
	SecretID     string
	SecretIDFile string
	// SecretIDWrapped says SecretID / SecretIDFile holds a response-wrapping
	// token that wraps the secret_id (VAULT_SECRET_ID_WRAPPED=true). It is
	// unwrapped once; the secret_id is then kept in memory until the file
	// holds a new wrapping token.
	SecretIDWrapped bool

	// AuthMount is the AppRole auth method's mount path (VAULT_APPROLE_MOUNT,
	// default "approle").
	AuthMount string

	// Secret is where the backup secret lives (VAULT_SECRET_PATH, or
	// VAULT_KV_MOUNT + VAULT_KV_PATH, with VAULT_KV_VERSION).
	Secret SecretLocation

	// Fields maps the secret's fields to variables (VAULT_FIELD_MAP, default
	// DefaultFieldMap()).
	Fields FieldMap

	// RequestTimeout bounds each HTTP request (VAULT_CLIENT_TIMEOUT, default
	// 30s).
	RequestTimeout time.Duration
	// RetryTimeout bounds all retries of one Fetch when Vault is down,
	// sealed, answers 5xx or rate-limits (VAULT_RETRY_TIMEOUT, default 2m).
	// The context's deadline, when sooner, wins.
	RetryTimeout time.Duration
}

// Environment variables read by ConfigFromEnv.
const (
	EnvVaultAddr       = "VAULT_ADDR"
	EnvNamespace       = "VAULT_NAMESPACE"
	EnvCACert          = "VAULT_CACERT"
	EnvCAPath          = "VAULT_CAPATH"
	EnvClientCert      = "VAULT_CLIENT_CERT"
	EnvClientKey       = "VAULT_CLIENT_KEY"
	EnvTLSServerName   = "VAULT_TLS_SERVER_NAME"
	EnvSkipVerify      = "VAULT_SKIP_VERIFY"
	EnvClientTimeout   = "VAULT_CLIENT_TIMEOUT"
	EnvRetryTimeout    = "VAULT_RETRY_TIMEOUT"
	EnvRoleID          = "VAULT_ROLE_ID"
	EnvRoleIDFile      = "VAULT_ROLE_ID_FILE"
	EnvSecretID        = "VAULT_SECRET_ID"
	EnvSecretIDFile    = "VAULT_SECRET_ID_FILE"
	EnvSecretIDWrapped = "VAULT_SECRET_ID_WRAPPED"
	EnvAppRoleMount    = "VAULT_APPROLE_MOUNT"
	EnvSecretPath      = "VAULT_SECRET_PATH"
	EnvKVMount         = "VAULT_KV_MOUNT"
	EnvKVPath          = "VAULT_KV_PATH"
	EnvKVVersion       = "VAULT_KV_VERSION"
	EnvFieldMap        = "VAULT_FIELD_MAP"
)

// vaultSelectors are the variables whose presence means "use Vault".
// VAULT_ADDR alone does not: it is often set for the Vault CLI.
var vaultSelectors = []string{
	EnvRoleID, EnvRoleIDFile, EnvSecretID, EnvSecretIDFile,
	EnvSecretPath, EnvKVMount, EnvKVPath,
}

// ConfigFromEnv reads the configuration from environment variables through
// getenv (os.Getenv in the sidecar), each once, and validates it, reading the
// role_id and secret_id files once to fail at start-up when one is missing or
// empty (see Validate). Pass the result to New, or use SettingsFromEnv and
// NewSource, which also cover the plain variables.
//
// It returns ErrNotConfigured when none of VAULT_ROLE_ID(_FILE),
// VAULT_SECRET_ID(_FILE), VAULT_SECRET_PATH, VAULT_KV_MOUNT or VAULT_KV_PATH is
// set, so the caller can fall back to plain variables. Other problems are
// *ConfigError values, each naming the variable, its value when not secret,
// and the fix; every bad variable is reported (joined with errors.Join when
// there are several), not only the first.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	read := map[string]string{} // each variable is read once
	get := func(k string) string {
		v, ok := read[k]
		if !ok {
			v = strings.TrimSpace(getenv(k))
			read[k] = v
		}
		return v
	}
	var selectors []string
	for _, k := range vaultSelectors {
		if get(k) != "" {
			selectors = append(selectors, k)
		}
	}
	if len(selectors) == 0 {
		return Config{}, ErrNotConfigured
	}

	cfg := Config{
		Address:   get(EnvVaultAddr),
		Namespace: get(EnvNamespace),
		TLS: api.TLSConfig{
			CACert:        get(EnvCACert),
			CAPath:        get(EnvCAPath),
			ClientCert:    get(EnvClientCert),
			ClientKey:     get(EnvClientKey),
			TLSServerName: get(EnvTLSServerName),
		},
		RoleID:       get(EnvRoleID),
		RoleIDFile:   get(EnvRoleIDFile),
		SecretID:     get(EnvSecretID),
		SecretIDFile: get(EnvSecretIDFile),
		AuthMount:    get(EnvAppRoleMount),
	}
	var errs []error
	report := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	cfg.TLS.Insecure, err = parseBool(EnvSkipVerify, get(EnvSkipVerify))
	report(err)
	cfg.SecretIDWrapped, err = parseBool(EnvSecretIDWrapped, get(EnvSecretIDWrapped))
	report(err)
	cfg.RequestTimeout, err = parseDuration(EnvClientTimeout, get(EnvClientTimeout))
	report(err)
	cfg.RetryTimeout, err = parseDuration(EnvRetryTimeout, get(EnvRetryTimeout))
	report(err)
	if cfg.Address == "" {
		// Say why Vault is used at all: VAULT_ADDR alone does not turn it
		// on, so one of these was set on purpose (or left over).
		report(&ConfigError{Var: EnvVaultAddr, Problem: "not set, while " + strings.Join(selectors, ", ") + " turn Vault on",
			Fix: "set it to Vault's address, for example https://vault.internal:8200; or remove the VAULT_* variables to use " +
				EnvResticPassword + " and the AWS_* variables instead"})
	}

	secretOK := true
	version := 0
	if v := get(EnvKVVersion); v != "" {
		switch v {
		case "1", "2":
			version, _ = strconv.Atoi(v)
		default:
			secretOK = false
			report(&ConfigError{Var: EnvKVVersion, Value: v, Problem: "want 1 or 2", Fix: "or leave it unset to detect the mount's version"})
		}
	}
	secretPath, mount, kvPath := get(EnvSecretPath), get(EnvKVMount), get(EnvKVPath)
	switch {
	case secretPath != "" && (mount != "" || kvPath != ""):
		secretOK = false
		report(&ConfigError{Var: EnvSecretPath, Value: secretPath,
			Problem: "set together with " + EnvKVMount + "/" + EnvKVPath,
			Fix:     "use either " + EnvSecretPath + " or " + EnvKVMount + " + " + EnvKVPath})
	case secretPath != "":
		loc, err := ParseSecretPath(secretPath)
		if err != nil {
			secretOK = false
			report(&ConfigError{Var: EnvSecretPath, Value: secretPath, Problem: err.Error(),
				Fix: "for example ansible/data/stackback_mattermost (KV v2 mount \"ansible\")"})
			break
		}
		if version == 1 {
			// An explicit v1: the path is read as is, even with a "data" segment.
			segs, _ := splitPath(secretPath)
			loc = SecretLocation{Mount: segs[0], Path: strings.Join(segs[1:], "/")}
		}
		if version != 0 {
			loc.KVVersion = version
		}
		cfg.Secret = loc
	case mount != "" || kvPath != "":
		if mount == "" || kvPath == "" {
			missing := EnvKVMount
			if kvPath == "" {
				missing = EnvKVPath
			}
			secretOK = false
			report(&ConfigError{Var: missing, Problem: "not set", Fix: "set both " + EnvKVMount + " and " + EnvKVPath + ", or " + EnvSecretPath})
			break
		}
		cfg.Secret = SecretLocation{Mount: mount, Path: kvPath, KVVersion: version}
	default:
		secretOK = false
		report(&ConfigError{Var: EnvSecretPath, Problem: "not set",
			Fix: "set it to the secret's API path, for example ansible/data/stackback_mattermost"})
	}

	fieldsOK := true
	if fm := get(EnvFieldMap); fm != "" {
		m, err := ParseFieldMap(fm)
		if err != nil {
			fieldsOK = false
			report(&ConfigError{Var: EnvFieldMap, Value: fm, Problem: err.Error(),
				Fix: "for example " + DefaultFieldMap().String()})
		}
		cfg.Fields = m
	}

	cfg = cfg.withDefaults()
	for _, err := range cfg.problems() {
		// What could not be parsed was reported above, once.
		var ce *ConfigError
		if errors.As(err, &ce) {
			switch {
			case ce.Var == EnvVaultAddr && cfg.Address == "",
				ce.Var == EnvSecretPath && !secretOK,
				ce.Var == EnvFieldMap && !fieldsOK:
				continue
			}
		}
		report(err)
	}
	if err := joinProblems(errs); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// joinProblems returns nil, the one error, or all of them joined.
func joinProblems(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

func parseBool(name, v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &ConfigError{Var: name, Value: v, Problem: "not a boolean", Fix: "use true or false"}
	}
	return b, nil
}

// parseDuration reads "30s", "2m" or a number of seconds, as the Vault CLI does.
func parseDuration(name, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, &ConfigError{Var: name, Value: v, Problem: "not a positive duration", Fix: "for example 30s or 2m"}
	}
	return d, nil
}

// withDefaults fills the optional fields and normalizes paths.
func (c Config) withDefaults() Config {
	c.Address = strings.TrimSpace(c.Address)
	c.AuthMount = strings.Trim(strings.TrimSpace(c.AuthMount), "/")
	c.AuthMount = strings.TrimPrefix(c.AuthMount, "auth/")
	if c.AuthMount == "" {
		c.AuthMount = DefaultAuthMount
	}
	c.Secret = c.Secret.normalized()
	if len(c.Fields) == 0 {
		c.Fields = DefaultFieldMap()
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.RetryTimeout <= 0 {
		c.RetryTimeout = DefaultRetryTimeout
	}
	return c
}

// Validate checks the configuration (after defaults are applied) and reads
// the role_id and secret_id files once, so that a missing, unreadable or
// empty file is reported at start-up; their content is not kept (the Client
// reads them again at each login, so a rotated secret_id applies). Every
// problem is reported, each a *ConfigError.
func (c Config) Validate() error {
	return joinProblems(c.withDefaults().problems())
}

// problems lists what is wrong with c (defaults applied), one *ConfigError
// per variable at fault.
func (c Config) problems() []error {
	var errs []error
	if c.Address == "" {
		errs = append(errs, &ConfigError{Var: EnvVaultAddr, Problem: "not set", Fix: "for example https://vault.internal:8200"})
	} else if u, err := url.Parse(c.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, &ConfigError{Var: EnvVaultAddr, Value: c.Address, Problem: "not an http(s) URL", Fix: "for example https://vault.internal:8200"})
	}
	if c.TLS.ClientCert != "" && c.TLS.ClientKey == "" || c.TLS.ClientCert == "" && c.TLS.ClientKey != "" {
		errs = append(errs, &ConfigError{Var: EnvClientCert, Value: c.TLS.ClientCert, Problem: "client certificate and key must be set together",
			Fix: "set both " + EnvClientCert + " and " + EnvClientKey})
	}
	for _, f := range []struct{ name, path string }{{EnvCACert, c.TLS.CACert}, {EnvClientCert, c.TLS.ClientCert}, {EnvClientKey, c.TLS.ClientKey}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, &ConfigError{Var: f.name, Value: f.path, Problem: "cannot read the file", Err: err})
		}
	}

	switch {
	case c.RoleID != "" && c.RoleIDFile != "":
		errs = append(errs, &ConfigError{Var: EnvRoleID, Problem: "set together with " + EnvRoleIDFile, Fix: "set only one"})
	case c.RoleID == "" && c.RoleIDFile == "":
		errs = append(errs, &ConfigError{Var: EnvRoleIDFile, Problem: "neither it nor " + EnvRoleID + " is set",
			Fix: "mount the AppRole role_id as a file, for example /run/secrets/role_id"})
	case c.RoleIDFile != "":
		if _, err := readSecretFile(EnvRoleIDFile, c.RoleIDFile, "role_id"); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case c.SecretID != "" && c.SecretIDFile != "":
		errs = append(errs, &ConfigError{Var: EnvSecretID, Problem: "set together with " + EnvSecretIDFile, Fix: "set only one"})
	case c.SecretID == "" && c.SecretIDFile == "":
		errs = append(errs, &ConfigError{Var: EnvSecretIDFile, Problem: "neither it nor " + EnvSecretID + " is set",
			Fix: "mount the AppRole secret_id as a file, for example /run/secrets/secret_id"})
	case c.SecretIDFile != "":
		if _, err := readSecretFile(EnvSecretIDFile, c.SecretIDFile, c.secretIDWhat()); err != nil {
			errs = append(errs, err)
		}
	}

	if err := c.Secret.validate(); err != nil {
		errs = append(errs, &ConfigError{Var: EnvSecretPath, Value: c.Secret.Mount + "/" + c.Secret.Path, Problem: err.Error()})
	}
	if err := c.Fields.validate(); err != nil {
		errs = append(errs, &ConfigError{Var: EnvFieldMap, Value: c.Fields.String(), Problem: err.Error()})
	}
	return errs
}

// secretIDWhat names what the secret_id source holds, for messages.
func (c Config) secretIDWhat() string {
	if c.SecretIDWrapped {
		return "response-wrapping token of the secret_id"
	}
	return "secret_id"
}

// secretIDVar names the variable the secret_id comes from, for messages.
func (c Config) secretIDVar() string {
	if c.SecretIDFile != "" {
		return EnvSecretIDFile
	}
	return EnvSecretID
}

// maxSecretFile bounds what is read from a role_id / secret_id file.
const maxSecretFile = 64 << 10

// readSecretFile reads a small secret file, trimming surrounding white space.
// A missing, unreadable or empty file is a *ConfigError naming varName.
func readSecretFile(varName, path, what string) (string, error) {
	raw, err := readSecretFileRaw(varName, path, what)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", &ConfigError{Var: varName, Value: path, Problem: "the " + what + " file is empty",
			Fix: "write the " + what + " into it"}
	}
	return s, nil
}

// readSecretFileRaw reads at most maxSecretFile bytes of path.
func readSecretFileRaw(varName, path, what string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		fix := "mount the " + what + " there (for example as a Docker secret) or fix the path"
		if errors.Is(err, os.ErrPermission) {
			fix = "make it readable by the sidecar's user"
		}
		return "", &ConfigError{Var: varName, Value: path, Problem: "cannot open the " + what + " file", Fix: fix, Err: err}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile))
	if err != nil {
		return "", &ConfigError{Var: varName, Value: path, Problem: "cannot read the " + what + " file", Err: err}
	}
	return string(b), nil
}

// redacted returns a copy safe to print.
func (c Config) redacted() configView {
	v := configView(c)
	if v.RoleID != "" {
		v.RoleID = Redacted
	}
	if v.SecretID != "" {
		v.SecretID = Redacted
	}
	return v
}

// configView has Config's fields and none of its methods, to print them.
type configView Config

// String returns the configuration with RoleID and SecretID redacted.
func (c Config) String() string { return fmt.Sprintf("%+v", c.redacted()) }

// GoString implements fmt.GoStringer (%#v) with RoleID and SecretID redacted.
func (c Config) GoString() string { return fmt.Sprintf("vaultcreds.Config%+v", c.redacted()) }

// Format implements fmt.Formatter: every verb prints the redacted form.
func (c Config) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(c.GoString()))
		return
	}
	_, _ = f.Write([]byte(c.String()))
}

// LogValue implements slog.LogValuer with no secret in it.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Address),
		slog.String("namespace", c.Namespace),
		slog.String("approle_mount", c.AuthMount),
		slog.String("secret", c.Secret.String()),
		slog.Int("kv_version", c.Secret.KVVersion),
		slog.String("fields", c.Fields.String()),
		slog.Bool("secret_id_wrapped", c.SecretIDWrapped),
	)
}

// MarshalJSON implements json.Marshaler with RoleID and SecretID redacted.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.redacted()) }
