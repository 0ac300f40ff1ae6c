package vaultcreds

// AppRole login: a session is one login and its token.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// session is one login: its token, kept renewed by a LifetimeWatcher.
type session struct {
	api      *api.Client // carries the token
	accessor string
	ttl      time.Duration
	expiry   time.Time // guarded by Client.mu
	watcher  *api.LifetimeWatcher
	done     chan struct{} // closed when the renewal goroutine ends
}

// reuseMargin is how long a kept token must still be valid to be reused.
func reuseMargin(ttl time.Duration) time.Duration {
	return min(5*time.Second, ttl/10)
}

// session returns the kept session when its token is still valid, or logs in.
func (c *Client) session(ctx context.Context) (*session, bool, error) {
	c.mu.Lock()
	s := c.sess
	valid := s != nil && time.Until(s.expiry) > reuseMargin(s.ttl)
	c.mu.Unlock()
	if valid {
		return s, true, nil
	}
	if s != nil {
		c.dropSession(ctx, true)
	}
	s, err := c.login(ctx)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	return s, false, nil
}

// login performs the AppRole login and starts renewing the token.
func (c *Client) login(ctx context.Context) (*session, error) {
	roleID := c.cfg.RoleID
	if c.cfg.RoleIDFile != "" {
		var err error
		if roleID, err = readSecretFile(EnvRoleIDFile, c.cfg.RoleIDFile, "role_id"); err != nil {
			return nil, err
		}
		c.addSecret(roleID)
	}
	secretID, err := c.secretID(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := c.newAPI()
	if err != nil {
		return nil, err
	}
	auth, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromString: secretID}, approle.WithMountPath(c.cfg.AuthMount))
	if err != nil {
		return nil, &ConfigError{Var: EnvRoleID, Problem: "cannot set up the AppRole login", Err: errors.New(c.scrub(err.Error()))}
	}
	secret, err := cl.Auth().Login(ctx, auth)
	if err != nil {
		return nil, c.loginError(err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return nil, fmt.Errorf("vaultcreds: the AppRole login at auth/%s answered without a token", c.cfg.AuthMount)
	}
	c.addSecret(secret.Auth.ClientToken)
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	s := &session{api: cl, accessor: secret.Auth.Accessor, ttl: ttl, expiry: expiryAfter(time.Now(), ttl), done: make(chan struct{})}
	c.log.Info("vault: logged in with AppRole",
		slog.String("addr", c.cfg.Address), slog.String("approle_mount", c.cfg.AuthMount),
		slog.Duration("token_ttl", ttl), slog.Bool("renewable", secret.Auth.Renewable),
		slog.String("token_accessor", secret.Auth.Accessor))
	if c.opts.renew && secret.Auth.Renewable && ttl > 0 {
		c.startRenewal(s, secret)
	} else {
		close(s.done)
	}
	return s, nil
}

// expiryAfter returns when a token of ttl obtained at t expires; a zero TTL
// means no expiry.
func expiryAfter(t time.Time, ttl time.Duration) time.Time {
	if ttl <= 0 {
		return t.Add(100 * 365 * 24 * time.Hour)
	}
	return t.Add(ttl)
}

// loginError translates a failed login.
func (c *Client) loginError(err error) error {
	if perr := c.configProblem(err); perr != nil {
		return perr
	}
	switch statusOf(err) {
	case 400, 401:
		c.mu.Lock()
		wrappedCached := c.wrapSecretID != ""
		c.wrapSecretID = "" // the unwrapped secret_id is no good any more
		c.mu.Unlock()
		how := "generate a new one with `vault write -f auth/" + c.cfg.AuthMount + "/role/<role>/secret-id` and update " + c.cfg.secretIDVar()
		if wrappedCached || c.cfg.SecretIDWrapped {
			how = "deliver a fresh response-wrapped secret_id (`vault write -f -wrap-ttl=10m auth/" + c.cfg.AuthMount + "/role/<role>/secret-id`) into " + c.cfg.secretIDVar()
		}
		return &vaultError{sentinels: []error{ErrInvalidSecretID}, msg: fmt.Sprintf(
			"%v at auth/%s: %s: the secret_id is wrong, expired or used up (or the role_id is wrong): %s",
			ErrInvalidSecretID, c.cfg.AuthMount, c.describe(err), how)}
	case 403:
		// Vault answers 403 both for a path where no auth method is mounted
		// and for a login refused by CIDR bindings.
		return &vaultError{sentinels: []error{ErrInvalidSecretID, ErrInvalidConfig}, msg: fmt.Sprintf(
			"%v at auth/%s: %s: check %s=%q (Vault answers 403 where no AppRole auth method is mounted) and the role's CIDR bindings (secret_id_bound_cidrs, token_bound_cidrs) against the sidecar's address",
			ErrInvalidSecretID, c.cfg.AuthMount, c.describe(err), EnvAppRoleMount, c.cfg.AuthMount)}
	case 404:
		return &ConfigError{Var: EnvAppRoleMount, Value: c.cfg.AuthMount,
			Problem: "no AppRole auth method is mounted at auth/" + c.cfg.AuthMount + " (" + c.describe(err) + ")",
			Fix:     "set " + EnvAppRoleMount + " to the AppRole mount path"}
	}
	return err
}

// secretID returns the secret_id to log in with, reading the file again and
// unwrapping a response-wrapped one when it is new.
func (c *Client) secretID(ctx context.Context) (string, error) {
	raw := c.cfg.SecretID
	if c.cfg.SecretIDFile != "" {
		var err error
		if raw, err = readSecretFile(EnvSecretIDFile, c.cfg.SecretIDFile, c.cfg.secretIDWhat()); err != nil {
			return "", err
		}
	}
	c.addSecret(raw)
	if !c.cfg.SecretIDWrapped {
		return raw, nil
	}
	h := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	if c.wrapSecretID != "" && h == c.wrapHash {
		sid := c.wrapSecretID
		c.mu.Unlock()
		return sid, nil
	}
	c.mu.Unlock()

	cl, err := c.newAPI()
	if err != nil {
		return "", err
	}
	cl.SetToken(raw)
	secret, err := cl.Logical().UnwrapWithContext(ctx, "")
	if err != nil {
		switch statusOf(err) {
		case 400, 401, 403, 404:
			return "", &vaultError{sentinels: []error{ErrInvalidSecretID}, msg: fmt.Sprintf(
				"%v: the response-wrapped secret_id in %s could not be unwrapped: %s: a wrapping token works once and expires: it was already unwrapped (by this sidecar before a restart, or by someone else: investigate if not) or it expired; deliver a fresh one with `vault write -f -wrap-ttl=10m auth/%s/role/<role>/secret-id`",
				ErrInvalidSecretID, c.cfg.secretIDVar(), c.describe(err), c.cfg.AuthMount)}
		}
		return "", err
	}
	var sid string
	if secret != nil {
		sid, _ = secret.Data["secret_id"].(string)
	}
	if sid == "" {
		return "", &vaultError{sentinels: []error{ErrInvalidSecretID}, msg: fmt.Sprintf(
			"%v: the wrapping token in %s did not wrap an AppRole secret_id (it is now used up): wrap the answer of `vault write -f auth/%s/role/<role>/secret-id` and deliver it again",
			ErrInvalidSecretID, c.cfg.secretIDVar(), c.cfg.AuthMount)}
	}
	c.addSecret(sid)
	c.mu.Lock()
	c.wrapHash, c.wrapSecretID = h, sid
	c.mu.Unlock()
	c.log.Info("vault: unwrapped the response-wrapped secret_id; it is kept in memory until a new wrapping token is delivered")
	return sid, nil
}
