package vaultcreds_test

import (
	"context"
	"fmt"

	"github.com/platback/platback/vaultcreds"
)

// VAULT_SECRET_PATH as community.hashi_vault writes it (the HTTP API path).
func ExampleParseSecretPath() {
	for _, p := range []string{
		"ansible/data/stackback_mattermost", // KV v2
		"team/kv/data/apps/mattermost",      // KV v2 on a nested mount
		"kv1/stackback_mattermost",          // no "data": Vault is asked the version
		"ansible/metadata/stackback_mattermost",
	} {
		loc, err := vaultcreds.ParseSecretPath(p)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("mount %q path %q version %d\n", loc.Mount, loc.Path, loc.KVVersion)
	}
	// Output:
	// mount "ansible" path "stackback_mattermost" version 2
	// mount "team/kv" path "apps/mattermost" version 2
	// mount "kv1" path "stackback_mattermost" version 0
	// this is a KV v2 metadata path, which holds no values: use ansible/data/stackback_mattermost
}

// VAULT_FIELD_MAP renames the secret's fields; "?" marks an optional one.
func ExampleParseFieldMap() {
	m, err := vaultcreds.ParseFieldMap("restic_pw=RESTIC_PASSWORD,s3_key=AWS_ACCESS_KEY_ID,s3_secret=AWS_SECRET_ACCESS_KEY,repo?=RESTIC_REPOSITORY")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m)
	_, err = vaultcreds.ParseFieldMap("password")
	fmt.Println(err)
	// Output:
	// restic_pw=RESTIC_PASSWORD,s3_key=AWS_ACCESS_KEY_ID,s3_secret=AWS_SECRET_ACCESS_KEY,repo?=RESTIC_REPOSITORY
	// "password" has no '=': want field=VARIABLE
}

// Without Vault, the plain stack-back variables; every bad one is reported
// at once.
func ExampleFromEnv() {
	env := map[string]string{"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}
	_, err := vaultcreds.FromEnv(func(k string) string { return env[k] })
	fmt.Println(err)

	env["RESTIC_PASSWORD"] = "correct horse battery staple"
	env["AWS_SECRET_ACCESS_KEY"] = "s3cr3t"
	src, err := vaultcreds.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		fmt.Println(err)
		return
	}
	creds, err := src.Credentials(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(creds)
	// Output:
	// vaultcreds: RESTIC_PASSWORD: not set (nor RESTIC_PASSWORD_FILE) (set RESTIC_PASSWORD_FILE to a Docker secret, or use Vault with VAULT_ROLE_ID_FILE, VAULT_SECRET_ID_FILE and VAULT_SECRET_PATH)
	// vaultcreds: AWS_SECRET_ACCESS_KEY: not set (nor AWS_SECRET_ACCESS_KEY_FILE) while its pair is (set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for an S3 repository, or neither)
	// Credentials{AWS_ACCESS_KEY_ID=*** AWS_SECRET_ACCESS_KEY=*** RESTIC_PASSWORD=***}
}
