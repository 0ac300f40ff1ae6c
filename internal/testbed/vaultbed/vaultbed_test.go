package vaultbed_test

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/api/auth/approle"

	"github.com/platback/platback/internal/testbed/vaultbed"
)

// TestStart proves the bed is set up as documented: the role logs in and
// reads the secret, and its token has the short TTL.
func TestStart(t *testing.T) {
	s := vaultbed.Start(t)
	c := s.TokenClient(t, "")
	auth, err := approle.NewAppRoleAuth(s.RoleID, &approle.SecretID{FromString: s.SecretID})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	login, err := c.Auth().Login(ctx, auth)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if got := login.Auth.LeaseDuration; got != int(vaultbed.TokenTTL.Seconds()) {
		t.Errorf("token TTL = %ds, want %s", got, vaultbed.TokenTTL)
	}
	kv, err := c.KVv2(vaultbed.KV2Mount).Get(ctx, vaultbed.SecretName)
	if err != nil {
		t.Fatalf("read %s: %v", vaultbed.SecretPath, err)
	}
	for k, v := range s.Secret {
		if kv.Data[k] != v {
			t.Errorf("field %s differs", k)
		}
	}
	if _, err := c.KVv1(vaultbed.KV1Mount).Get(ctx, "stackback_none"); err == nil {
		t.Errorf("reading a missing KV v1 secret succeeded")
	}
}
