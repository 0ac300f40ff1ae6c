// Command demo is make demo: it runs examples/mattermost/docker-compose.yml
// with real docker-compose against a throwaway MinIO and Vault (images built
// here, nothing pulled), provisions them as examples/provisioning does, and
// then does what a user does: sidecar plan, run-once, snapshots, a wipe of
// the whole stack and a restore, checked byte for byte and row for row.
// Everything it starts is removed at the end (PLATBACK_DEMO_KEEP=1 keeps a
// failed demo's containers for a look).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/toolpath"
)

// prefix names the demo's compose projects and network: <prefix>-platform,
// <prefix>-mattermost and <prefix>. They are not the example's own name
// (mattermost), so the demo never touches a real stack of that name.
// PLATBACK_DEMO_PREFIX changes it (the demo's test runs under its own).
func prefix() string {
	if p := os.Getenv("PLATBACK_DEMO_PREFIX"); p != "" {
		return p
	}
	return "platback-demo"
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runDemo(ctx, os.Getenv("PLATBACK_DEMO_KEEP") == "1"); err != nil {
		os.Exit(1)
	}
}

// runDemo runs the demo and cleans up after it; a failure is reported on
// standard error with the step and where to look, and returned.
func runDemo(ctx context.Context, keep bool) error {
	d := &demo{keep: keep}
	err := d.run(ctx)
	d.teardown(err != nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED at step %d (%s):\n  %v\n", d.step, d.stepName, indent(err.Error(), "  "))
		if d.stackUp {
			fmt.Fprintf(os.Stderr, "  look at the sidecar's log: %s logs backup\n", d.stack.display())
		}
		return err
	}
	fmt.Println("\ndemo: OK — the stack was wiped and brought back from the backup, every file and row identical.")
	return nil
}

// demo is the state of one demo run.
type demo struct {
	root, dir string
	cli       *client.Client
	platform  compose
	stack     compose
	keep      bool

	step     int
	stepName string

	platformUp, stackUp, imagesBuilt bool
}

func (d *demo) begin(name string) {
	d.step++
	d.stepName = name
	fmt.Printf("\n%d. %s\n", d.step, name)
}

func (d *demo) run(ctx context.Context) error {
	root, err := toolpath.Root()
	if err != nil {
		return err
	}
	d.root = root
	if d.dir, err = os.MkdirTemp("", "platback-demo-"); err != nil {
		return err
	}
	a := newApp("mattermost")
	// approle.sh writes role_id and secret_id into <secrets root>/<app>,
	// as into /etc/platback/mattermost on a real host.
	secretsRoot := filepath.Join(d.dir, "etc-platback")
	secrets := filepath.Join(secretsRoot, a.name)
	if d.cli, err = client.New(client.FromEnv); err != nil {
		return err
	}
	minioUser, minioPassword, vaultToken := "demo-root", randomString(16), randomString(16)
	env := []string{
		"DEMO_MINIO_ROOT_USER=" + minioUser, "DEMO_MINIO_ROOT_PASSWORD=" + minioPassword,
		"DEMO_VAULT_ROOT_TOKEN=" + vaultToken, "DEMO_SECRETS_DIR=" + secrets,
		"POSTGRES_PASSWORD=" + randomString(12),
		"RESTIC_REPOSITORY=s3:http://minio:9000/" + a.bucket,
		"VAULT_ADDR=http://vault:8200",
		"BACKUP_STAGGER=0",
		"DEMO_NETWORK=" + prefix(),
	}
	d.platform = newCompose(root, prefix()+"-platform", env, "scripts/demo/platform.yml")
	d.stack = newCompose(root, prefix()+"-mattermost", env, "examples/mattermost/docker-compose.yml", "scripts/demo/mattermost.demo.yml")

	fmt.Println("platback demo: the Mattermost example (examples/mattermost/docker-compose.yml) backed up to a")
	fmt.Println("throwaway MinIO with its secrets in a throwaway Vault, wiped, and restored.")
	fmt.Printf("Below, `docker-compose` stands for `%s`.\n", d.stack.display())

	d.begin("Build the images locally (nothing is pulled; the first time builds PostgreSQL from Debian packages, ~4 min)")
	d.imagesBuilt = true
	lines, err := buildImages(ctx, d.cli, root)
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Println("   " + l)
	}

	d.begin("Start the platform: MinIO and Vault (dev mode), on the network " + prefix())
	d.platformUp = true
	if _, err := d.platform.run(ctx, "up", "-d"); err != nil {
		return err
	}
	minioAddr, err := d.platform.port(ctx, "minio", "9000")
	if err != nil {
		return err
	}
	vaultAddr, err := d.platform.port(ctx, "vault", "8200")
	if err != nil {
		return err
	}
	fmt.Printf("   MinIO at http://minio:9000 on the network (127.0.0.1:%s from here), Vault at http://vault:8200 (127.0.0.1:%s)\n",
		strings.TrimPrefix(minioAddr, "127.0.0.1:"), strings.TrimPrefix(vaultAddr, "127.0.0.1:"))

	d.begin("Provision the stack as examples/provisioning says (Terraform, Ansible and approle.sh in real life)")
	policy, err := os.ReadFile(filepath.Join(root, "examples/provisioning/s3-policy.json"))
	if err != nil {
		return err
	}
	s3Secret, err := provisionS3(ctx, minioAddr, minioUser, minioPassword, a, []byte(fill(string(policy), a)))
	if err != nil {
		return err
	}
	fmt.Printf("   S3 user %s may use the bucket %s only (not created yet: the sidecar creates it)\n", a.s3User, a.bucket)
	secret := map[string]any{"password": randomString(16), "access_key": a.s3User, "secret_key": s3Secret}
	if err := provisionVault(ctx, "http://"+vaultAddr, vaultToken, a, secret); err != nil {
		return err
	}
	fmt.Printf("   Vault: %s holds password, access_key and secret_key (Ansible's vault_kv2_write)\n", a.secretPath())
	if err := runApproleScript(ctx, root, "http://"+vaultAddr, vaultToken, secretsRoot, a); err != nil {
		return err
	}
	fmt.Printf("   $ examples/provisioning/approle.sh %s   # policy and AppRole %s: read that path, nothing else\n", a.name, a.role)
	fmt.Printf("   role_id and secret_id are in %s (mode 0600); the sidecar mounts that directory at /run/secrets\n", secrets)

	d.begin("Start the Mattermost stack")
	d.stackUp = true
	if err := d.stack.quiet(ctx, "up", "-d"); err != nil {
		return err
	}
	if err := d.waitPostgres(ctx); err != nil {
		return err
	}

	d.begin("Mattermost at work: files in its volumes, posts in PostgreSQL")
	if _, err := d.stack.run(ctx, "exec", "-T", "mattermost", "sh", "-c", writeAppData); err != nil {
		return err
	}
	if _, err := d.psql(ctx, "CREATE TABLE posts (id serial PRIMARY KEY, message text NOT NULL); "+
		"INSERT INTO posts (message) SELECT 'post number ' || g FROM generate_series(1, 1000) g;"); err != nil {
		return err
	}
	before, err := d.appState(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("   %d files in config, data, plugins, client/plugins (and logs, excluded by a label); %s posts\n", before.files, before.posts)

	d.begin("What will be backed up")
	if err := d.stack.show(ctx, "exec", "-T", "backup", "sidecar", "plan"); err != nil {
		return err
	}

	d.begin("Back up now (the daemon would at 02:00, BACKUP_CRON)")
	if err := d.stack.show(ctx, "exec", "-T", "backup", "sidecar", "run-once"); err != nil {
		return err
	}
	if err := d.stack.show(ctx, "exec", "-T", "backup", "sidecar", "snapshots"); err != nil {
		return err
	}

	d.begin("Disaster: the stack and every one of its volumes are gone")
	if err := d.stack.quiet(ctx, "down", "-v"); err != nil {
		return err
	}
	if err := d.stack.quiet(ctx, "up", "-d"); err != nil {
		return err
	}
	if err := d.waitPostgres(ctx); err != nil {
		return err
	}
	empty, err := d.appState(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("   a fresh, empty stack: %d files, posts: %s; the sidecar's cache is gone too: what follows needs only S3 and Vault\n", empty.files, empty.posts)

	d.begin("Restore every target from the backup")
	targets, err := d.planTargets(ctx)
	if err != nil {
		return err
	}
	for _, t := range targets {
		args := []string{"exec", "-T", "backup", "sidecar", "restore", "--path", t.Path}
		if t.Database != nil {
			args = append(args, "--to-database")
		} else {
			args = append(args, "--to-volume", "--mode", "mirror")
		}
		if err := d.stack.show(ctx, args...); err != nil {
			return err
		}
	}

	d.begin("Check: the same files, byte for byte, and the same posts")
	after, err := d.appState(ctx)
	if err != nil {
		return err
	}
	if after.digest != before.digest {
		return fmt.Errorf("the restored volumes differ from the backed-up ones:\nbefore:\n%s\nafter:\n%s", before.digest, after.digest)
	}
	if after.posts != before.posts {
		return fmt.Errorf("%s posts before the wipe, %s after the restore", before.posts, after.posts)
	}
	fmt.Printf("   %d files identical (sha256), %s posts; the excluded logs volume starts empty, as intended\n", after.files, after.posts)
	return nil
}

// writeAppData stands in for Mattermost: its config, uploaded files,
// plugins and logs.
const writeAppData = `set -e
cd /mattermost
printf '{"ServiceSettings":{"SiteURL":"https://chat.example.org"}}\n' > config/config.json
for team in alpha beta; do
  mkdir -p data/teams/$team/channels/town-square
  for i in 1 2 3 4 5; do head -c 300000 /dev/urandom > data/teams/$team/channels/town-square/upload-$i.bin; done
done
mkdir -p plugins/com.example.poll client/plugins/com.example.poll
head -c 50000 /dev/urandom > plugins/com.example.poll/plugin.bin
printf 'console.log("poll")\n' > client/plugins/com.example.poll/main.js
printf 'started\n' > logs/mattermost.log
`

type appState struct {
	digest string
	files  int
	posts  string
}

// appState reads what the demo compares: the checksums of every file in
// the backed-up volumes and the number of posts.
func (d *demo) appState(ctx context.Context) (appState, error) {
	out, err := d.stack.run(ctx, "exec", "-T", "mattermost", "sh", "-c",
		"cd /mattermost && find config data plugins client/plugins -type f -exec sha256sum {} + | sort -k 2")
	if err != nil {
		return appState{}, err
	}
	s := appState{digest: strings.TrimSpace(out)}
	if s.digest != "" {
		s.files = strings.Count(s.digest, "\n") + 1
	}
	posts, err := d.psql(ctx, "SELECT count(*) FROM posts")
	if err != nil {
		s.posts = "no table"
		return s, nil
	}
	s.posts = strings.TrimSpace(posts)
	return s, nil
}

func (d *demo) psql(ctx context.Context, sql string) (string, error) {
	return d.stack.run(ctx, "exec", "-T", "postgres", "psql", "-U", "mmuser", "-d", "mattermost", "-v", "ON_ERROR_STOP=1", "-qtAc", sql)
}

func (d *demo) waitPostgres(ctx context.Context) error {
	return retry(ctx, 2*time.Minute, func() error {
		_, err := d.stack.run(ctx, "exec", "-T", "postgres", "pg_isready", "-U", "mmuser", "-d", "mattermost", "-h", "127.0.0.1")
		return err
	})
}

// planTarget is the part of `sidecar plan --json` the restore needs.
type planTarget struct {
	Path     string          `json:"path"`
	Database json.RawMessage `json:"database"`
}

func (d *demo) planTargets(ctx context.Context) ([]planTarget, error) {
	out, err := d.stack.run(ctx, "exec", "-T", "backup", "sidecar", "plan", "--json")
	if err != nil {
		return nil, err
	}
	var p struct {
		Targets []planTarget `json:"targets"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, fmt.Errorf("read sidecar plan --json: %w", err)
	}
	if len(p.Targets) == 0 {
		return nil, errors.New("sidecar plan --json lists no target")
	}
	return p.Targets, nil
}

// teardown removes what the demo started: both projects with their
// volumes, the network, the demo's images and its temporary directory.
func (d *demo) teardown(failed bool) {
	if failed && d.keep {
		fmt.Fprintf(os.Stderr, "PLATBACK_DEMO_KEEP=1: left running. Remove it all with:\n  %s down -v\n  %s down -v\n",
			d.stack.display(), d.platform.display())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fmt.Printf("\n%d. Clean up: both compose projects, their volumes and network, the demo images\n", d.step+1)
	var errs []error
	if d.stackUp {
		if _, err := d.stack.run(ctx, "down", "-v", "--remove-orphans"); err != nil {
			errs = append(errs, err)
		}
	}
	if d.platformUp {
		if _, err := d.platform.run(ctx, "down", "-v", "--remove-orphans"); err != nil {
			errs = append(errs, err)
		}
	}
	if d.imagesBuilt && d.cli != nil {
		errs = append(errs, removeImages(ctx, d.cli))
	}
	if d.cli != nil {
		d.cli.Close()
	}
	if d.dir != "" {
		errs = append(errs, os.RemoveAll(d.dir))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "   clean-up: %v\n   leftovers carry the label %s=1\n", err, demoLabel)
	}
}

// compose runs docker-compose for one project.
type compose struct {
	root, project string
	files, env    []string
}

func newCompose(root, project string, env []string, files ...string) compose {
	return compose{root: root, project: project, files: files, env: env}
}

func (c compose) args(extra ...string) []string {
	args := []string{"-p", c.project}
	for _, f := range c.files {
		args = append(args, "-f", f)
	}
	return append(args, extra...)
}

// display is the command as a person would type it in the checkout.
func (c compose) display() string {
	return "docker-compose " + strings.Join(c.args(), " ")
}

// run runs a docker-compose command and returns its standard output; its
// error carries the command and what it printed.
func (c compose) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker-compose", c.args(args...)...)
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), c.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker-compose %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// show prints the command as the user would type it, runs it and prints
// its output indented.
func (c compose) show(ctx context.Context, args ...string) error {
	shown := strings.Join(args, " ")
	shown = strings.Replace(shown, "exec -T ", "exec ", 1)
	fmt.Printf("   $ docker-compose %s\n", shown)
	cmd := exec.CommandContext(ctx, "docker-compose", c.args(args...)...)
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	if s := strings.TrimRight(string(out), "\n"); s != "" {
		fmt.Println(indent("     "+s, "     "))
	}
	if err != nil {
		return fmt.Errorf("docker-compose %s: %v", shown, err)
	}
	return nil
}

// quiet prints the command as the user would type it and runs it; its
// output (compose's progress lines) is shown only when it fails.
func (c compose) quiet(ctx context.Context, args ...string) error {
	fmt.Printf("   $ docker-compose %s\n", strings.Join(args, " "))
	_, err := c.run(ctx, args...)
	return err
}

// port returns the host address published for a service's port.
func (c compose) port(ctx context.Context, service, port string) (string, error) {
	out, err := c.run(ctx, "port", service, port)
	if err != nil {
		return "", err
	}
	addr := strings.TrimSpace(out)
	if addr == "" {
		return "", fmt.Errorf("no published port %s for %s", port, service)
	}
	return addr, nil
}

func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}
