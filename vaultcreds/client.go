package vaultcreds

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
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

// session is one login: its token, kept renewed by a LifetimeWatcher.
type session struct {
	api      *api.Client // carries the token
	accessor string
	ttl      time.Duration
	expiry   time.Time // guarded by Client.mu
	watcher  *api.LifetimeWatcher
	done     chan struct{} // closed when the renewal goroutine ends
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

// startRenewal keeps the session's token renewed with a LifetimeWatcher.
func (c *Client) startRenewal(s *session, secret *api.Secret) {
	w, err := s.api.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		c.log.Warn("vault: cannot renew the token; the next run logs in again", slog.String("error", c.scrub(err.Error())))
		close(s.done)
		return
	}
	s.watcher = w
	go w.Start()
	go func() {
		defer close(s.done)
		for {
			select {
			case err := <-w.DoneCh():
				if err != nil {
					c.log.Warn("vault: token renewal stopped; the next run logs in again", slog.String("error", c.describe(err)))
				} else {
					c.log.Debug("vault: token renewal ended (stopped, or the token reached its max TTL)")
				}
				return
			case r := <-w.RenewCh():
				if r == nil || r.Secret == nil || r.Secret.Auth == nil {
					continue
				}
				ttl := time.Duration(r.Secret.Auth.LeaseDuration) * time.Second
				c.mu.Lock()
				s.expiry = expiryAfter(r.RenewedAt, ttl)
				c.mu.Unlock()
				c.log.Debug("vault: token renewed", slog.Duration("token_ttl", ttl), slog.String("token_accessor", s.accessor))
			}
		}
	}()
}

// dropSession stops renewing the kept token and, when revoke is set and the
// token may still be valid, revokes it.
func (c *Client) dropSession(ctx context.Context, revoke bool) error {
	c.mu.Lock()
	s := c.sess
	c.sess = nil
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	if s.watcher != nil {
		s.watcher.Stop()
	}
	<-s.done
	c.mu.Lock()
	expired := time.Now().After(s.expiry)
	c.mu.Unlock()
	if !revoke || expired {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := s.api.Auth().Token().RevokeSelfWithContext(rctx, "")
	switch {
	case err == nil:
		c.log.Info("vault: token revoked", slog.String("token_accessor", s.accessor))
		return nil
	case statusOf(err) >= 400 && statusOf(err) < 500:
		// Already revoked or expired, or a batch token: nothing to undo.
		c.log.Info("vault: token not revoked", slog.String("token_accessor", s.accessor), slog.String("reason", c.describe(err)))
		return nil
	}
	return fmt.Errorf("vaultcreds: revoking the token (accessor %s) at %s: %s", s.accessor, c.cfg.Address, c.describe(err))
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
