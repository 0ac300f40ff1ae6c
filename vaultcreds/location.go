package vaultcreds

import (
	"fmt"
	"strings"
)

// SecretLocation says where the backup secret lives in a KV secrets engine.
type SecretLocation struct {
	// Mount is the KV engine's mount path, for example "ansible".
	Mount string
	// Path is the secret's path inside the mount, for example
	// "stackback_mattermost".
	Path string
	// KVVersion is 1 or 2; 0 means "ask Vault" (sys/internal/ui/mounts) on
	// the first read.
	KVVersion int
}

// ParseSecretPath parses VAULT_SECRET_PATH in the form community.hashi_vault's
// lookups use (the HTTP API path):
//
//	ansible/data/stackback_mattermost   KV v2: mount "ansible", path "stackback_mattermost"
//	team/kv/data/apps/mattermost        KV v2: mount "team/kv", path "apps/mattermost"
//
// A path without a "data" segment ("kv1/stackback_mattermost" for KV v1, or
// "ansible/stackback_mattermost" in the form `vault kv get` takes) leaves
// KVVersion 0: the client asks Vault which version the mount is and where the
// mount ends. A "metadata" segment is refused: it holds no secret values.
func ParseSecretPath(p string) (SecretLocation, error) {
	segs, err := splitPath(p)
	if err != nil {
		return SecretLocation{}, err
	}
	if len(segs) < 2 {
		return SecretLocation{}, fmt.Errorf("want <mount>/data/<path> for KV v2 or <mount>/<path> for KV v1")
	}
	for i := 1; i < len(segs); i++ {
		switch segs[i] {
		case "data":
			if i == len(segs)-1 {
				return SecretLocation{}, fmt.Errorf("nothing after %q: want <mount>/data/<path>", "data/")
			}
			return SecretLocation{
				Mount:     strings.Join(segs[:i], "/"),
				Path:      strings.Join(segs[i+1:], "/"),
				KVVersion: 2,
			}, nil
		case "metadata":
			return SecretLocation{}, fmt.Errorf("this is a KV v2 metadata path, which holds no values: use %s",
				strings.Join(segs[:i], "/")+"/data/"+strings.Join(segs[i+1:], "/"))
		}
	}
	return SecretLocation{Mount: segs[0], Path: strings.Join(segs[1:], "/")}, nil
}

// splitPath trims slashes and refuses empty, "." and ".." segments.
func splitPath(p string) ([]string, error) {
	p = strings.Trim(strings.TrimSpace(p), "/")
	if p == "" {
		return nil, fmt.Errorf("empty path")
	}
	segs := strings.Split(p, "/")
	for _, s := range segs {
		switch s {
		case "":
			return nil, fmt.Errorf("empty segment (double slash)")
		case ".", "..":
			return nil, fmt.Errorf("%q segments are not allowed", s)
		}
	}
	return segs, nil
}

// apiPath is the HTTP API path to read: <mount>/data/<path> for KV v2,
// <mount>/<path> for KV v1.
func (l SecretLocation) apiPath() string {
	if l.KVVersion == 2 {
		return l.Mount + "/data/" + l.Path
	}
	return l.Mount + "/" + l.Path
}

// String returns the API path when the version is known (the form
// VAULT_SECRET_PATH takes), else "<mount>/<path>".
func (l SecretLocation) String() string { return l.apiPath() }

// validate checks a location built by hand (VAULT_KV_MOUNT + VAULT_KV_PATH or
// a Config literal).
func (l SecretLocation) validate() error {
	if _, err := splitPath(l.Mount); err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	if _, err := splitPath(l.Path); err != nil {
		return fmt.Errorf("path: %w", err)
	}
	if l.KVVersion < 0 || l.KVVersion > 2 {
		return fmt.Errorf("KV version %d: want 1, 2 or 0 (detect)", l.KVVersion)
	}
	return nil
}

// normalized trims slashes from the mount and path.
func (l SecretLocation) normalized() SecretLocation {
	l.Mount = strings.Trim(strings.TrimSpace(l.Mount), "/")
	l.Path = strings.Trim(strings.TrimSpace(l.Path), "/")
	return l
}
