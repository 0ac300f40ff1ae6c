// Package vaultbed starts a real Vault (or OpenBao) dev server on 127.0.0.1
// for tests, set up as the user's platform has it: AppRole enabled, a KV v2
// mount "ansible" holding stackback_mattermost, a KV v1 mount "kv1", a
// read-only policy and a role with a short token TTL.
//
// The server is HashiCorp Vault (.tools/bin/vault) unless PLATBACK_VAULT is
// "openbao" (.tools/bin/bao); scripts/tools.sh builds both.
package vaultbed

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/platback/platback/internal/testbed"
)

// What Start sets up.
const (
	// RoleName is the AppRole role Start creates, allowed to read the secret.
	RoleName = "stackback"
	// Policy is the read-only policy of RoleName.
	Policy = "stackback-read"
	// KV2Mount is the KV v2 mount the user's Ansible lookups read.
	KV2Mount = "ansible"
	// KV1Mount is a KV version 1 mount.
	KV1Mount = "kv1"
	// SecretName is the secret Start writes in KV2Mount.
	SecretName = "stackback_mattermost"
	// SecretPath is the secret's API path, the form VAULT_SECRET_PATH takes.
	SecretPath = KV2Mount + "/data/" + SecretName
	// TokenTTL and TokenMaxTTL are RoleName's token lifetimes: short, so
	// renewal happens within a test.
	TokenTTL    = 3 * time.Second
	TokenMaxTTL = 60 * time.Second
)

// PolicyHCL is the body of Policy: read on stackback_* in both mounts.
const PolicyHCL = `
path "ansible/data/stackback_*" { capabilities = ["read"] }
path "kv1/stackback_*" { capabilities = ["read"] }
`

// Server is a running dev server.
type Server struct {
	// Kind is "vault" or "openbao".
	Kind string
	// Addr is the server's address, for VAULT_ADDR.
	Addr string
	// RootToken is the dev root token.
	RootToken string
	// Root is a client holding the root token.
	Root *api.Client
	// Secret is what Start wrote at SecretPath (password, access_key,
	// secret_key), random per server so tests can search logs for it.
	Secret map[string]string
	// RoleID and SecretID log in as RoleName.
	RoleID, SecretID string
	// CACert is the CA file that signed the server's certificate (StartTLS
	// only; empty for plain HTTP).
	CACert string

	proc *testbed.Process
}

// Kind returns the server kind PLATBACK_VAULT selects: "vault" (default) or
// "openbao".
func Kind() (string, error) {
	switch k := strings.ToLower(strings.TrimSpace(os.Getenv("PLATBACK_VAULT"))); k {
	case "", "vault", "hashicorp":
		return "vault", nil
	case "openbao", "bao":
		return "openbao", nil
	default:
		return "", fmt.Errorf("vaultbed: PLATBACK_VAULT=%q: want vault (default) or openbao", k)
	}
}

// Start starts a dev server, stopped when tb ends, and sets it up (see the
// package doc). It fails tb when the pinned binary is missing: run
// scripts/tools.sh vault (or openbao).
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, false)
}

// StartTLS is Start with the server's -dev-tls mode: HTTPS on 127.0.0.1
// with a certificate signed by a generated CA (Server.CACert).
func StartTLS(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, true)
}

func start(tb testing.TB, withTLS bool) *Server {
	tb.Helper()
	kind, err := Kind()
	if err != nil {
		tb.Fatal(err)
	}
	bin := "vault"
	if kind == "openbao" {
		bin = "bao"
	}
	path := testbed.Tool(tb, bin)
	port := testbed.FreePort(tb)
	s := &Server{
		Kind:      kind,
		Addr:      fmt.Sprintf("http://127.0.0.1:%d", port),
		RootToken: "root-" + Random(8),
	}
	args := []string{
		"server", "-dev",
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port),
		"-dev-root-token-id=" + s.RootToken,
	}
	if withTLS {
		dir := tb.TempDir()
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+dir)
		s.Addr = fmt.Sprintf("https://127.0.0.1:%d", port)
		s.CACert = filepath.Join(dir, "vault-ca.pem")
	}
	// HOME in a temp dir: the dev server writes its token helper file there.
	s.proc = testbed.StartProcess(tb, path, args, []string{"HOME=" + tb.TempDir()})
	if err := s.waitReady(60 * time.Second); err != nil {
		tb.Fatal(err)
	}
	s.Root = s.client(tb, s.RootToken)

	s.must(tb, "enable approle", func(ctx context.Context) error {
		return s.Root.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"})
	})
	s.must(tb, "mount KV v2 at "+KV2Mount, func(ctx context.Context) error {
		return s.Root.Sys().MountWithContext(ctx, KV2Mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
	})
	s.must(tb, "mount KV v1 at "+KV1Mount, func(ctx context.Context) error {
		return s.Root.Sys().MountWithContext(ctx, KV1Mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}})
	})
	s.Secret = map[string]string{
		"password":   "pw-" + Random(12),
		"access_key": "AK" + strings.ToUpper(Random(9)),
		"secret_key": "sk-" + Random(16),
	}
	s.PutKV2(tb, KV2Mount, SecretName, ToAny(s.Secret))
	s.WritePolicy(tb, Policy, PolicyHCL)
	s.RoleID = s.CreateRole(tb, RoleName, map[string]any{
		"token_policies": Policy,
		"token_ttl":      int(TokenTTL.Seconds()),
		"token_max_ttl":  int(TokenMaxTTL.Seconds()),
	})
	s.SecretID = s.NewSecretID(tb, RoleName)
	tb.Logf("vaultbed: %s dev server at %s (pid %d)", kind, s.Addr, s.proc.Cmd.Process.Pid)
	return s
}

// waitReady polls /v1/sys/health until it answers 200. With TLS it trusts
// only the generated CA, which appears once the server has started.
func (s *Server) waitReady(timeout time.Duration) error {
	if s.CACert == "" {
		return s.proc.WaitHTTP(s.Addr+"/v1/sys/health", timeout, func(st int) bool { return st == 200 })
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if pem, err := os.ReadFile(s.CACert); err == nil {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(pem) {
				hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
				if resp, err := hc.Get(s.Addr + "/v1/sys/health"); err == nil {
					resp.Body.Close()
					hc.CloseIdleConnections()
					if resp.StatusCode == 200 {
						return nil
					}
				}
			}
		}
		if s.proc.Exited() {
			return fmt.Errorf("vaultbed: %s exited before it was ready", s.Kind)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("vaultbed: %s not ready at %s after %s", s.Kind, s.Addr, timeout)
}

// client returns an API client for the server with token, ignoring the
// process's VAULT_* variables.
func (s *Server) client(tb testing.TB, token string) *api.Client {
	tb.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	if s.CACert != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CACert}); err != nil {
			tb.Fatalf("vaultbed: client TLS: %v", err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		tb.Fatalf("vaultbed: client: %v", err)
	}
	c.ClearNamespace()
	c.SetToken(token)
	return c
}

// TokenClient returns a client for the server carrying token.
func (s *Server) TokenClient(tb testing.TB, token string) *api.Client {
	tb.Helper()
	return s.client(tb, token)
}

// must runs op until it succeeds or 20 s pass: a fresh KV v2 mount answers
// "upgrading" for a moment.
func (s *Server) must(tb testing.TB, what string, op func(context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		err := op(ctx)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			tb.Fatalf("vaultbed: %s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop stops the server (by its own process id).
func (s *Server) Stop() { s.proc.Stop() }

// Exited reports whether the server process has exited.
func (s *Server) Exited() bool { return s.proc.Exited() }

// Seal seals the server: it then answers 503 until unsealed (tests that seal
// use a server of their own).
func (s *Server) Seal(tb testing.TB) {
	tb.Helper()
	if err := s.Root.Sys().Seal(); err != nil {
		tb.Fatalf("vaultbed: seal: %v", err)
	}
}

// PutKV2 writes data as the new version of mount/path in a KV v2 mount.
func (s *Server) PutKV2(tb testing.TB, mount, path string, data map[string]any) {
	tb.Helper()
	s.must(tb, "write "+mount+"/data/"+path, func(ctx context.Context) error {
		_, err := s.Root.KVv2(mount).Put(ctx, path, data)
		return err
	})
}

// PutKV1 writes data at mount/path in a KV v1 mount.
func (s *Server) PutKV1(tb testing.TB, mount, path string, data map[string]any) {
	tb.Helper()
	s.must(tb, "write "+mount+"/"+path, func(ctx context.Context) error {
		return s.Root.KVv1(mount).Put(ctx, path, data)
	})
}

// WritePolicy writes an ACL policy.
func (s *Server) WritePolicy(tb testing.TB, name, hcl string) {
	tb.Helper()
	s.must(tb, "write policy "+name, func(ctx context.Context) error {
		return s.Root.Sys().PutPolicyWithContext(ctx, name, hcl)
	})
}

// CreateRole creates (or updates) an AppRole role with params and returns
// its role_id.
func (s *Server) CreateRole(tb testing.TB, name string, params map[string]any) string {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.Root.Logical().WriteWithContext(ctx, "auth/approle/role/"+name, params); err != nil {
		tb.Fatalf("vaultbed: create role %s: %v", name, err)
	}
	sec, err := s.Root.Logical().ReadWithContext(ctx, "auth/approle/role/"+name+"/role-id")
	if err != nil || sec == nil {
		tb.Fatalf("vaultbed: read role_id of %s: %v", name, err)
	}
	id, _ := sec.Data["role_id"].(string)
	return id
}

// NewSecretID generates a secret_id for role.
func (s *Server) NewSecretID(tb testing.TB, role string) string {
	tb.Helper()
	sec, err := s.Root.Logical().WriteWithContext(context.Background(), "auth/approle/role/"+role+"/secret-id", nil)
	if err != nil || sec == nil {
		tb.Fatalf("vaultbed: new secret_id for %s: %v", role, err)
	}
	id, _ := sec.Data["secret_id"].(string)
	return id
}

// NewWrappedSecretID generates a secret_id for role and returns the
// response-wrapping token that wraps it, as a trusted orchestrator would.
func (s *Server) NewWrappedSecretID(tb testing.TB, role string, wrapTTL time.Duration) string {
	tb.Helper()
	c, err := s.Root.Clone()
	if err != nil {
		tb.Fatal(err)
	}
	c.SetToken(s.RootToken)
	c.SetWrappingLookupFunc(func(string, string) string { return wrapTTL.String() })
	sec, err := c.Logical().WriteWithContext(context.Background(), "auth/approle/role/"+role+"/secret-id", nil)
	if err != nil || sec == nil || sec.WrapInfo == nil {
		tb.Fatalf("vaultbed: wrapped secret_id for %s: %v", role, err)
	}
	return sec.WrapInfo.Token
}

// SetRateLimit creates a rate-limit quota of rate requests per interval on
// path (a mount like "ansible/") and returns a func that deletes it. The
// error is returned, not fatal, so a server without quotas can be skipped.
func (s *Server) SetRateLimit(name, path string, rate float64, interval time.Duration) (remove func(), err error) {
	_, err = s.Root.Logical().WriteWithContext(context.Background(), "sys/quotas/rate-limit/"+name, map[string]any{
		"path": path, "rate": rate, "interval": interval.String(),
	})
	if err != nil {
		return nil, fmt.Errorf("vaultbed: rate-limit quota %s: %w", name, err)
	}
	return func() { _, _ = s.Root.Logical().DeleteWithContext(context.Background(), "sys/quotas/rate-limit/"+name) }, nil
}

// Random returns n random bytes as hex.
func Random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ToAny converts a string map for the KV helpers.
func ToAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
