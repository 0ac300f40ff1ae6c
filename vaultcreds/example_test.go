package vaultcreds_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/platback/platback/vaultcreds"
)

// The sidecar's wiring: Vault when VAULT_* are set, plain variables
// otherwise; fresh credentials for each run, passed to restic through its
// environment only; the token revoked at shutdown.
func Example() {
	src, err := vaultcreds.SourceFromEnv(os.Getenv, vaultcreds.WithLogger(slog.Default()))
	if err != nil {
		log.Fatal(err) // names the variable to fix, e.g. an empty VAULT_SECRET_ID_FILE
	}
	defer src.Close(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	creds, err := src.Credentials(ctx)
	if err != nil {
		log.Fatal(err) // errors.Is(err, vaultcreds.ErrInvalidSecretID), ErrUnavailable, …
	}
	slog.Info("credentials ready", "creds", creds) // values are redacted

	cmd := exec.CommandContext(ctx, "restic", "snapshots")
	cmd.Env = append(os.Environ(), creds.Environ()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Println(creds.Redact(string(out)))
	}
}

// Credentials print their variable names only.
func ExampleCredentials() {
	creds := vaultcreds.NewCredentials(map[string]string{
		"RESTIC_PASSWORD":   "correct horse battery staple",
		"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
	})
	fmt.Println(creds)
	fmt.Printf("%+v\n", creds)
	fmt.Println(creds.Redact("Fatal: wrong password correct horse battery staple"))
	// Output:
	// Credentials{AWS_ACCESS_KEY_ID=*** RESTIC_PASSWORD=***}
	// Credentials{AWS_ACCESS_KEY_ID=*** RESTIC_PASSWORD=***}
	// Fatal: wrong password ***
}

// The Vault configuration as the user's sidecar sets it.
func ExampleConfigFromEnv() {
	env := map[string]string{
		"VAULT_ADDR":        "https://vault.internal:8200",
		"VAULT_ROLE_ID":     "role-id-from-ansible",
		"VAULT_SECRET_ID":   "secret-id-from-ansible",
		"VAULT_SECRET_PATH": "ansible/data/stackback_mattermost",
	}
	cfg, err := vaultcreds.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Secret.Mount, cfg.Secret.Path, cfg.Secret.KVVersion)
	fmt.Println(cfg.Fields)
	// Output:
	// ansible stackback_mattermost 2
	// password=RESTIC_PASSWORD,access_key=AWS_ACCESS_KEY_ID,secret_key=AWS_SECRET_ACCESS_KEY,repository?=RESTIC_REPOSITORY
}

// Check the credentials' variables at start-up, with the rest of a
// program's configuration, and build the source later from what was
// checked: the variables are read once, a secret file again only when used.
func ExampleNewSource() {
	env := map[string]string{"RESTIC_PASSWORD": "correct horse battery staple", "RESTIC_REPOSITORY": "/srv/restic"}
	settings, err := vaultcreds.SettingsFromEnv(func(k string) string { return env[k] })
	if err != nil {
		log.Fatal(err) // every bad variable, each with its fix
	}
	fmt.Println(settings.UsesVault(), settings)

	src, err := vaultcreds.NewSource(settings, vaultcreds.WithLogger(slog.Default()))
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close(context.Background())
	creds, err := src.Credentials(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(creds.Names())
	// Output:
	// false vaultcreds.Settings{Plain: vaultcreds.PlainConfig{RESTIC_PASSWORD=*** RESTIC_REPOSITORY=***}}
	// [RESTIC_PASSWORD RESTIC_REPOSITORY]
}
