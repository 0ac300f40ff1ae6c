package vaultcreds

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// Option configures a Client.
type Option func(*options)

type options struct {
	logger         *slog.Logger
	initialBackoff time.Duration
	maxBackoff     time.Duration
	renew          bool
}

// WithLogger sets the logger (default slog.Default()). Nothing secret is
// ever logged: not the secret_id, the token nor any value read.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithBackoff sets the first and the longest wait between retries (defaults
// DefaultInitialBackoff and DefaultMaxBackoff). Waits grow ×2 with ±50% jitter.
func WithBackoff(initial, max time.Duration) Option {
	return func(o *options) {
		if initial > 0 {
			o.initialBackoff = initial
		}
		if max > 0 {
			o.maxBackoff = max
		}
	}
}

// WithoutRenewal turns off the background token renewal: each Fetch then
// reuses the token only while its first TTL lasts, and logs in again after.
func WithoutRenewal() Option { return func(o *options) { o.renew = false } }

// Client logs in to Vault with AppRole and reads the backup secret. Its
// methods are safe for concurrent use; Fetch calls are serialized.
//
// Each Fetch reads the secret again, so a rotated password or key takes
// effect at the next run. The token of the last login is kept and renewed
// in the background with vault/api's LifetimeWatcher while the sidecar runs;
// Fetch reuses it while it is valid and logs in again when it expired, reached
// its max TTL or was revoked. Close revokes it.
type Client struct {
	cfg  Config
	opts options
	log  *slog.Logger
	base *api.Client // no token; cloned for each login

	runMu  sync.Mutex // serializes Fetch and Close
	closed bool

	// The fields below are also touched by the renewal goroutine.
	mu      sync.Mutex
	sess    *session
	loc     SecretLocation // resolved: KVVersion known after the first read
	secrets []string       // secret strings to scrub from messages

	// A response-wrapped secret_id is unwrapped once; the secret_id is kept
	// until the wrapping token in the file changes.
	wrapHash     [32]byte
	wrapSecretID string
}

// New returns a Client for cfg after validating it (see Config.Validate,
// which reads the role_id and secret_id files once). It does not contact
// Vault: the first Fetch logs in. A Config already checked (VaultSettings,
// SettingsFromEnv) is built without a second check by NewSource.
func New(cfg Config, opts ...Option) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newClient(cfg, opts...)
}

// newClient returns a Client for cfg, defaults applied and checked.
func newClient(cfg Config, opts ...Option) (*Client, error) {
	o := options{
		logger:         slog.Default(),
		initialBackoff: DefaultInitialBackoff,
		maxBackoff:     DefaultMaxBackoff,
		renew:          true,
	}
	for _, opt := range opts {
		opt(&o)
	}
	base, err := newAPIClient(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:  cfg,
		opts: o,
		log:  o.logger.With(slog.String("component", "vaultcreds")),
		base: base,
		loc:  cfg.Secret,
	}
	if cfg.RoleID != "" {
		c.addSecret(cfg.RoleID)
	}
	if cfg.SecretID != "" {
		c.addSecret(cfg.SecretID)
	}
	return c, nil
}

// newAPIClient builds a vault/api client from cfg alone (not from the
// process environment), with vault/api's own retries off.
func newAPIClient(cfg Config) (*api.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.TLSHandshakeTimeout = 10 * time.Second
	ac := &api.Config{
		Address: cfg.Address,
		HttpClient: &http.Client{
			Transport: tr,
			// vault/api follows Vault's redirects itself.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Timeout:    cfg.RequestTimeout,
		MaxRetries: 0, // retry owns the policy; see (*Client).retry
	}
	tlsCfg := cfg.TLS
	if err := ac.ConfigureTLS(&tlsCfg); err != nil {
		v := EnvCACert
		if cfg.TLS.ClientCert != "" {
			v = EnvClientCert
		}
		return nil, &ConfigError{Var: v, Problem: "cannot configure TLS", Err: err}
	}
	cl, err := api.NewClient(ac)
	if err != nil {
		return nil, &ConfigError{Var: EnvVaultAddr, Value: cfg.Address, Problem: "cannot create the Vault client", Err: err}
	}
	cl.ClearToken() // NewClient reads VAULT_TOKEN from the process environment
	if cfg.Namespace != "" {
		cl.SetNamespace(cfg.Namespace)
	} else {
		cl.ClearNamespace()
	}
	return cl, nil
}

// newAPI returns a clone of the base client without a token.
func (c *Client) newAPI() (*api.Client, error) {
	cl, err := c.base.CloneWithHeaders()
	if err != nil {
		return nil, err
	}
	cl.ClearToken()
	return cl, nil
}

// Credentials implements Source: it is Fetch.
func (c *Client) Credentials(ctx context.Context) (Credentials, error) { return c.Fetch(ctx) }

// Fetch logs in (or reuses the still-valid, renewed token of the previous
// login), reads the secret and returns the mapped credentials. Transient
// failures are retried with backoff and jitter until ctx's deadline or
// Config.RetryTimeout, whichever is sooner, then ErrUnavailable. A rejected
// login (ErrInvalidSecretID), a denied read (ErrPermissionDenied), a missing
// secret (ErrSecretNotFound) or field (ErrMissingField) fail at once.
func (c *Client) Fetch(ctx context.Context) (Credentials, error) {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.closed {
		return Credentials{}, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RetryTimeout)
	defer cancel()
	var creds Credentials
	err := c.retry(ctx, func(ctx context.Context) error {
		var err error
		creds, err = c.fetchOnce(ctx)
		return err
	})
	if err != nil {
		return Credentials{}, c.public(err)
	}
	return creds, nil
}

// public makes sure an error leaving the package carries no secret: errors
// of this package are built scrubbed; anything else is described anew.
func (c *Client) public(err error) error {
	if perr := c.configProblem(err); perr != nil {
		return perr
	}
	var ce *ConfigError
	var ve *vaultError
	switch {
	case errors.As(err, &ce), errors.As(err, &ve), errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed):
		return err
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("vaultcreds: %s: %w", c.describe(err), context.Canceled)
	}
	return fmt.Errorf("vaultcreds: %s", c.describe(err))
}

// errStaleToken marks a 403 with a reused token: log in again and retry once.
var errStaleToken = errors.New("vaultcreds: token no longer accepted")

func (c *Client) fetchOnce(ctx context.Context) (Credentials, error) {
	s, reused, err := c.session(ctx)
	if err != nil {
		return Credentials{}, err
	}
	creds, err := c.read(ctx, s, reused)
	if errors.Is(err, errStaleToken) {
		c.log.Info("vault: the kept token is no longer accepted (revoked or expired); logging in again")
		c.dropSession(ctx, false)
		if s, _, err = c.session(ctx); err != nil {
			return Credentials{}, err
		}
		creds, err = c.read(ctx, s, false)
	}
	return creds, err
}

// Close stops the token renewal and revokes the token. Fetch fails with
// ErrClosed afterwards. It returns an error only when Vault could not be
// asked to revoke the token (the token then expires with its TTL).
func (c *Client) Close(ctx context.Context) error {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.dropSession(ctx, true)
}

// String describes the client without secrets.
func (c *Client) String() string {
	return fmt.Sprintf("vaultcreds.Client{addr=%s approle_mount=%s secret=%s}", c.cfg.Address, c.cfg.AuthMount, c.cfg.Secret)
}

// GoString implements fmt.GoStringer (%#v) without secrets.
func (c *Client) GoString() string { return c.String() }

// Format implements fmt.Formatter: every verb prints String.
func (c *Client) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue implements slog.LogValuer without secrets.
func (c *Client) LogValue() slog.Value { return c.cfg.LogValue() }
