package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/minio/madmin-go/v3"

	"github.com/platback/platback/internal/toolpath"
)

// app is what the demo provisions for the Mattermost stack, with the names
// of the Platform One layout.
type app struct {
	name       string // mattermost
	bucket     string // restic-stackback-mattermost-bucket
	s3User     string // restic-mattermost-user
	vaultMount string // ansible (KV v2)
	vaultKey   string // stackback_mattermost → ansible/data/stackback_mattermost
	role       string // AppRole and policy stackback-mattermost
}

func newApp(name string) app {
	return app{
		name:       name,
		bucket:     "restic-stackback-" + name + "-bucket",
		s3User:     "restic-" + name + "-user",
		vaultMount: "ansible",
		vaultKey:   "stackback_" + name,
		role:       "stackback-" + name,
	}
}

func (a app) secretPath() string { return a.vaultMount + "/data/" + a.vaultKey }

// randomString returns n random bytes as hex.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// provisionS3 creates the app's S3 user with a policy that allows its own
// bucket only (the bucket itself is not created: the sidecar creates it on
// its first run). It returns the user's secret key.
func provisionS3(ctx context.Context, endpoint, rootUser, rootPassword string, a app, policy []byte) (string, error) {
	adm, err := madmin.New(endpoint, rootUser, rootPassword, false)
	if err != nil {
		return "", err
	}
	secret := randomString(20)
	if err := retry(ctx, 60*time.Second, func() error { return adm.AddCannedPolicy(ctx, a.s3User, policy) }); err != nil {
		return "", fmt.Errorf("add the S3 policy %s: %w", a.s3User, err)
	}
	if err := adm.AddUser(ctx, a.s3User, secret); err != nil {
		return "", fmt.Errorf("add the S3 user %s: %w", a.s3User, err)
	}
	if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{a.s3User}, User: a.s3User}); err != nil {
		return "", fmt.Errorf("attach the policy to %s: %w", a.s3User, err)
	}
	return secret, nil
}

// provisionVault does what Ansible does on Platform One: a KV v2 engine at
// ansible/ and AppRole enabled (once per Vault), and the app's secret at
// ansible/data/stackback_<app>. The policy and role come from
// examples/provisioning/approle.sh (runApproleScript).
func provisionVault(ctx context.Context, addr, rootToken string, a app, secret map[string]any) error {
	cfg := vault.DefaultConfig()
	cfg.Address = addr
	c, err := vault.NewClient(cfg)
	if err != nil {
		return err
	}
	c.SetToken(rootToken)
	if err := retry(ctx, 60*time.Second, func() error {
		h, err := c.Sys().HealthWithContext(ctx)
		if err == nil && !h.Initialized {
			err = fmt.Errorf("not initialised")
		}
		return err
	}); err != nil {
		return fmt.Errorf("Vault at %s: %w", addr, err)
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"mount KV v2 at " + a.vaultMount, func() error {
			return c.Sys().MountWithContext(ctx, a.vaultMount, &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
		}},
		{"enable AppRole", func() error {
			return c.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &vault.EnableAuthOptions{Type: "approle"})
		}},
		{"write " + a.secretPath(), func() error {
			_, err := c.KVv2(a.vaultMount).Put(ctx, a.vaultKey, secret)
			return err
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("Vault: %s: %w", s.what, err)
		}
	}
	return nil
}

// runApproleScript runs examples/provisioning/approle.sh for the app with
// the pinned vault CLI, as an operator would: it writes the policy and the
// AppRole, and the role_id and a secret_id into secretsRoot/<app>/.
func runApproleScript(ctx context.Context, root, addr, rootToken, secretsRoot string, a app) error {
	vaultBin, err := toolpath.Pinned("vault")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(root, "examples/provisioning/approle.sh"), a.name)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(vaultBin)+":"+os.Getenv("PATH"),
		"VAULT_ADDR="+addr, "VAULT_TOKEN="+rootToken, "PLATBACK_SECRETS_DIR="+secretsRoot)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("examples/provisioning/approle.sh %s: %v\n%s", a.name, err, out)
	}
	return nil
}

// retry calls f until it succeeds or d has passed.
func retry(ctx context.Context, d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// fill puts the app's name into a template of examples/provisioning, where
// Ansible's template module would ({{ app_name }}).
func fill(template string, a app) string {
	return strings.ReplaceAll(template, "{{ app_name }}", a.name)
}
