package vaultcreds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/vault/api"
)

// Default backoff between retries of a Fetch; each wait is randomized by ±50%.
const (
	DefaultInitialBackoff = 250 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
)

// retry runs op until it succeeds, fails with a permanent error, or the next
// wait would pass ctx's deadline. Only transient errors (see transient) are
// retried, with exponential backoff and jitter. vault/api's own retries are
// off (MaxRetries 0), so this is the only retry policy.
func (c *Client) retry(ctx context.Context, op func(context.Context) error) error {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     c.opts.initialBackoff,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         c.opts.maxBackoff,
		MaxElapsedTime:      0, // the context's deadline bounds the whole
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			if attempt > 1 {
				c.log.Info("vault: request succeeded after retries", slog.Int("attempts", attempt))
			}
			return nil
		}
		if !transient(err) {
			return err
		}
		desc := c.describe(err)
		if cerr := context.Cause(ctx); cerr != nil && !errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("vaultcreds: fetching credentials from %s stopped: %w (last error: %s)", c.cfg.Address, cerr, desc)
		}
		wait := b.NextBackOff()
		deadline, ok := ctx.Deadline()
		if ctx.Err() != nil || (ok && time.Now().Add(wait).After(deadline)) {
			return fmt.Errorf("%w: Vault at %s (%s) did not answer usefully after %d attempts in %s: %s; check that Vault is running, unsealed and reachable from the sidecar",
				ErrUnavailable, c.cfg.Address, EnvVaultAddr, attempt, time.Since(start).Round(100*time.Millisecond), desc)
		}
		c.log.Warn("vault: request failed, retrying",
			slog.Int("attempt", attempt), slog.Duration("retry_in", wait.Round(time.Millisecond)), slog.String("error", desc))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// transient reports whether err is worth retrying: Vault unreachable, sealed
// or standby (503), other 5xx, rate-limited (429) or not yet consistent
// (412). Rejections (4xx) and TLS verification failures are permanent.
func transient(err error) bool {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode == 429 || re.StatusCode == 412 || re.StatusCode >= 500
	}
	for _, sentinel := range []error{ErrInvalidConfig, ErrInvalidSecretID, ErrPermissionDenied, ErrSecretNotFound, ErrMissingField, ErrUnavailable, ErrClosed} {
		if errors.Is(err, sentinel) {
			return false
		}
	}
	if isTLSVerifyError(err) || isHTTPSToHTTP(err) {
		return false
	}
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &netErr), errors.As(err, &urlErr):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return false
}

// isTLSVerifyError reports whether err is a failure to verify Vault's
// certificate or to speak TLS with it: retrying cannot help.
func isTLSVerifyError(err error) bool {
	var (
		certErr     *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidErr  x509.CertificateInvalidError
		recordErr   tls.RecordHeaderError
	)
	return errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) ||
		errors.As(err, &invalidErr) || errors.As(err, &recordErr)
}

// isHTTPSToHTTP reports whether err shows VAULT_ADDR says https:// where
// the server speaks plain HTTP.
func isHTTPSToHTTP(err error) bool {
	return strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// configProblem turns an error that shows a VAULT_ADDR or TLS setting is
// wrong into a *ConfigError naming it, or returns nil.
func (c *Client) configProblem(err error) error {
	if isTLSVerifyError(err) {
		return &ConfigError{Var: EnvCACert, Value: c.cfg.TLS.CACert,
			Problem: "Vault's TLS certificate is not trusted: " + c.describe(err),
			Fix:     "set " + EnvCACert + " to the CA that signed it; " + EnvSkipVerify + "=true only for tests"}
	}
	if isHTTPSToHTTP(err) {
		return &ConfigError{Var: EnvVaultAddr, Value: c.cfg.Address,
			Problem: "the server answers plain HTTP, not HTTPS", Fix: "write it with http://, or enable TLS on Vault"}
	}
	return nil
}

// statusOf returns the HTTP status of a Vault response error, or 0.
func statusOf(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

var (
	multiErrorHeader = regexp.MustCompile(`\d+ errors? occurred:\s*`)
	multiErrorBullet = regexp.MustCompile(`(^|\s)\*\s+`)
)

// describe turns an error from vault/api into one line without secrets.
func (c *Client) describe(err error) string {
	var (
		re *api.ResponseError
		ue *url.Error
		oe *net.OpError
		s  string
	)
	switch {
	case errors.As(err, &re):
		path := re.URL
		if u, perr := url.Parse(re.URL); perr == nil {
			path = u.Path
		}
		msgs := strings.Join(re.Errors, "; ")
		// "1 error occurred:\n\t* permission denied" → "permission denied"
		msgs = multiErrorHeader.ReplaceAllString(msgs, "")
		msgs = multiErrorBullet.ReplaceAllString(msgs, "$1")
		if msgs == "" {
			msgs = "no error text"
		}
		s = fmt.Sprintf("%s (HTTP %d from %s %s)", msgs, re.StatusCode, re.HTTPMethod, path)
	case errors.As(err, &ue):
		// The request and its network error, without the wrappers'
		// "unable to log in …" prefixes.
		s = ue.Error()
	case errors.As(err, &oe):
		s = oe.Error()
	default:
		s = err.Error()
	}
	s = strings.Join(strings.Fields(s), " ")
	return c.scrub(s)
}
