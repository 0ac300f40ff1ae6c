package vaultcreds

// Reading the secret from a KV v1 or v2 engine and mapping its fields.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"
)

// read reads the secret with the session's token and maps its fields.
func (c *Client) read(ctx context.Context, s *session, reused bool) (Credentials, error) {
	c.mu.Lock()
	loc := c.loc
	c.mu.Unlock()
	if loc.KVVersion == 0 {
		var err error
		if loc, err = c.detect(ctx, s.api, reused); err != nil {
			return Credentials{}, err
		}
		c.mu.Lock()
		c.loc = loc
		c.mu.Unlock()
	}
	secret, err := s.api.Logical().ReadWithContext(ctx, loc.apiPath())
	if err != nil {
		switch statusOf(err) {
		case 403:
			if reused {
				return Credentials{}, errStaleToken
			}
			return Credentials{}, &vaultError{sentinels: []error{ErrPermissionDenied}, msg: fmt.Sprintf(
				"%v reading %s (%s): the AppRole's policies must grant \"read\" on %s",
				ErrPermissionDenied, loc.apiPath(), c.describe(err), loc.apiPath())}
		case 404:
			return Credentials{}, c.notFound(loc, "")
		}
		return Credentials{}, err
	}
	if secret == nil {
		return Credentials{}, c.notFound(loc, "")
	}
	data := secret.Data
	if loc.KVVersion == 2 {
		inner, ok := secret.Data["data"].(map[string]any)
		if !ok {
			return Credentials{}, c.notFound(loc, "its latest version is deleted or destroyed")
		}
		data = inner
	}
	creds, err := c.mapFields(data, loc)
	if err != nil {
		return Credentials{}, err
	}
	for _, v := range creds.SecretValues() {
		c.addSecret(v)
	}
	c.log.Debug("vault: read the secret", slog.String("path", loc.apiPath()), slog.Int("kv_version", loc.KVVersion),
		slog.Any("variables", creds.Names()))
	return creds, nil
}

func (c *Client) notFound(loc SecretLocation, why string) error {
	if why == "" {
		why = "nothing is there"
	}
	return &vaultError{sentinels: []error{ErrSecretNotFound}, msg: fmt.Sprintf(
		"%v: no secret at %s (KV v%d mount %q, path %q): %s; check %s",
		ErrSecretNotFound, loc.apiPath(), loc.KVVersion, loc.Mount, loc.Path, why, EnvSecretPath)}
}

// mapFields applies the field map. A required field that is absent, empty or
// not a string is an error naming the path and the field, never an empty value.
func (c *Client) mapFields(data map[string]any, loc SecretLocation) (Credentials, error) {
	env := map[string]string{}
	for _, fm := range c.cfg.Fields {
		raw, ok := data[fm.Field]
		var v string
		var problem string
		switch x := raw.(type) {
		case nil:
			problem = "has no field"
		case string:
			v = x
			if v == "" {
				problem = "has an empty field"
			}
		case json.Number:
			v = x.String()
		default:
			problem = fmt.Sprintf("has a non-string (%T) field", raw)
		}
		if !ok {
			problem = "has no field"
		}
		if problem == "" {
			env[fm.Env] = v
			continue
		}
		if fm.Optional && (problem == "has no field" || problem == "has an empty field") {
			continue
		}
		present := make([]string, 0, len(data))
		for k := range data {
			present = append(present, k)
		}
		sort.Strings(present)
		fix := "add it to the secret"
		if loc.KVVersion == 2 {
			fix = fmt.Sprintf("add it with `vault kv patch -mount=%s %s %s=…`", loc.Mount, loc.Path, fm.Field)
		}
		return Credentials{}, &vaultError{sentinels: []error{ErrMissingField}, msg: fmt.Sprintf(
			"%v: the secret at %s %s %q (for %s; fields present: %s): %s, or change %s",
			ErrMissingField, loc.apiPath(), problem, fm.Field, fm.Env, strings.Join(present, ", "), fix, EnvFieldMap)}
	}
	return NewCredentials(env), nil
}

// detect asks Vault which KV version the mount holding the secret is, and
// where the mount ends (sys/internal/ui/mounts, as `vault kv get` does).
func (c *Client) detect(ctx context.Context, cl *api.Client, reused bool) (SecretLocation, error) {
	full := c.cfg.Secret.Mount + "/" + c.cfg.Secret.Path
	fail := func(why string) error {
		return &ConfigError{Var: EnvKVVersion, Problem: "cannot detect the KV version of the mount holding " + full + ": " + why,
			Fix: "set " + EnvKVVersion + "=1 or 2, or write " + EnvSecretPath + " as <mount>/data/<path> for KV v2"}
	}
	secret, err := cl.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+full)
	if err != nil {
		st := statusOf(err)
		if st == 403 && reused {
			return SecretLocation{}, errStaleToken
		}
		if st >= 400 && st < 500 && st != 429 && st != 412 {
			return SecretLocation{}, fail(c.describe(err))
		}
		return SecretLocation{}, err
	}
	if secret == nil || secret.Data == nil {
		return SecretLocation{}, fail("Vault gave no answer")
	}
	typ, _ := secret.Data["type"].(string)
	if typ != "kv" && typ != "generic" {
		return SecretLocation{}, fail(fmt.Sprintf("the mount is of type %q, not kv", typ))
	}
	version := 1
	if opts, ok := secret.Data["options"].(map[string]any); ok {
		if v, _ := opts["version"].(string); v == "2" {
			version = 2
		}
	}
	loc := c.cfg.Secret
	loc.KVVersion = version
	if mp, _ := secret.Data["path"].(string); mp != "" {
		mp = strings.Trim(mp, "/")
		if rel, ok := strings.CutPrefix(full, mp+"/"); ok && rel != "" {
			loc.Mount, loc.Path = mp, rel
		}
	}
	c.log.Debug("vault: detected the KV version", slog.String("mount", loc.Mount), slog.Int("kv_version", version))
	return loc, nil
}
