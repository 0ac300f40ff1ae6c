package vaultcreds

// Token renewal and revocation.

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/vault/api"
)

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
