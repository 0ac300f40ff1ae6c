package vaultcreds

// Keeping every secret value out of errors and logs.

import (
	"sort"
)

// addSecret remembers a secret string to scrub from messages.
func (c *Client) addSecret(s string) {
	if s == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.secrets {
		if x == s {
			return
		}
	}
	c.secrets = append(c.secrets, s)
	sort.Slice(c.secrets, func(i, j int) bool { return len(c.secrets[i]) > len(c.secrets[j]) })
}

// scrub replaces every known secret string in s.
func (c *Client) scrub(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return redactAll(s, c.secrets)
}

// vaultError is an error of this package with a scrubbed message, matching
// its sentinels with errors.Is.
type vaultError struct {
	sentinels []error
	msg       string
}

func (e *vaultError) Error() string { return e.msg }

func (e *vaultError) Is(target error) bool {
	for _, s := range e.sentinels {
		if target == s {
			return true
		}
	}
	return false
}
