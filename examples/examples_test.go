package examples

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
	"go.yaml.in/yaml/v3"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/vaultbed"
	"github.com/platback/platback/schedule"
	"github.com/platback/platback/vaultcreds"
)

// sidecarImage is the image every example's backup service runs.
const sidecarImage = "platback/sidecar"

// wantStack is what an example stack is known to back up, and how.
type wantStack struct {
	targets    []string // snapshot paths of the plan, sorted
	cron       string   // the sidecar's BACKUP_CRON (or CRON_SCHEDULE)
	secretPath string   // VAULT_SECRET_PATH; "" for plain variables
	repository string   // RESTIC_REPOSITORY with the .env.example values
}

// wantStacks are the stacks whose plan and settings are known. Other
// examples' compose files get the generic checks only.
var wantStacks = map[string]wantStack{
	"mattermost": {
		targets: []string{
			"/databases/postgres/all_databases.sql",
			"/volumes/mattermost/mattermost/client/plugins",
			"/volumes/mattermost/mattermost/config",
			"/volumes/mattermost/mattermost/data",
			"/volumes/mattermost/mattermost/plugins",
		},
		cron:       "0 2 * * *",
		secretPath: "ansible/data/stackback_mattermost",
		repository: "s3:https://minio.internal/restic-stackback-mattermost-bucket",
	},
	"n8n": {
		targets: []string{
			"/databases/postgres/all_databases.sql",
			"/volumes/n8n/home/node/.n8n",
		},
		cron:       "20 2 * * *",
		secretPath: "ansible/data/stackback_n8n",
		repository: "s3:https://minio.internal/restic-stackback-n8n-bucket",
	},
	"stack-back-migration": {
		targets: []string{
			"/databases/mariadb/all_databases.sql",
			"/databases/postgres/all_databases.sql",
			"/volumes/web/srv/media",
		},
		cron:       "0 2 * * *",
		repository: "/restic_data",
	},
}

// TestComposeFiles loads every examples/*/docker-compose.yml as a user runs
// it (the directory copied, each *.example file in place) with
// docker-compose 1.29 and with Compose v2's loader, then checks its sidecar
// the way the sidecar itself would: platback's planner on the services'
// labels and mounts (no warning, the known targets), and platback's
// configuration on the sidecar's environment (every variable valid, secret
// files on a mount, the Docker socket where DOCKER_HOST says, a local
// repository on a mount).
func TestComposeFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("*", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Dir(f))
	}
	for name := range wantStacks {
		if !slices.Contains(names, name) {
			t.Errorf("examples/%s/docker-compose.yml is missing", name)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			s := copyStack(t, name, nil)
			composeV1Config(t, s)
			p := loadV2(t, s)
			checkStack(t, s, p)
		})
	}
}

// stack is an example's directory as a user has it on the host.
type stack struct {
	name string // the example's directory name, used as the compose project name
	dir  string // the copy
}

func (s stack) file() string { return filepath.Join(s.dir, "docker-compose.yml") }

// copyStack copies examples/<name> into a directory of its own and puts
// every *.example file in place without its suffix (.env.example as .env,
// stack-back.env.example as stack-back.env), as the example's comments tell
// the user to. env is appended to .env (the user's overrides).
func copyStack(t *testing.T, name string, env map[string]string) stack {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dir, os.DirFS(name)); err != nil {
		t.Fatalf("copy examples/%s: %v", name, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".example")
		if !ok || e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, base), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if len(env) > 0 {
		f, err := os.OpenFile(filepath.Join(dir, ".env"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range slices.Sorted(maps.Keys(env)) {
			fmt.Fprintf(f, "\n%s=%s\n", k, env[k])
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return stack{name: name, dir: dir}
}

// composeV1Config runs `docker-compose config -q`, the check docker-compose
// 1.29 does before `up`; a variable the .env.example leaves unset fails it
// too (docker-compose only warns and uses an empty string).
func composeV1Config(t *testing.T, s stack) {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("docker-compose not found (%v): the examples are checked with docker-compose 1.29 (apt-get install docker-compose)", err)
	}
	cmd := exec.Command(bin, "-p", s.name, "-f", s.file(), "config", "-q")
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose refuses examples/%s/docker-compose.yml: %v\n%s", s.name, err, out)
	}
	if bytes.Contains(out, []byte("variable is not set")) {
		t.Errorf("docker-compose: examples/%s/docker-compose.yml uses a variable .env.example does not set:\n%s", s.name, out)
	}
}

// loadV2 loads the stack with Compose v2's own loader (compose-go: schema
// validation, interpolation from .env, normalisation, env_file resolved into
// each service's environment).
func loadV2(t *testing.T, s stack) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{s.file()},
		cli.WithName(s.name), cli.WithWorkingDirectory(s.dir), cli.WithEnvFiles(), cli.WithDotEnv)
	if err != nil {
		t.Fatalf("compose v2 options for %s: %v", s.name, err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("Compose v2's loader refuses examples/%s/docker-compose.yml: %v", s.name, err)
	}
	return p
}

// isSidecar reports whether a service runs platback's sidecar.
func isSidecar(svc types.ServiceConfig) bool {
	return svc.Image == sidecarImage || strings.HasPrefix(svc.Image, sidecarImage+":")
}

// sidecarOf returns the stack's one sidecar service, failing the test when
// there is none (while services carry backup labels) or more than one.
func sidecarOf(t *testing.T, p *types.Project) (types.ServiceConfig, bool) {
	t.Helper()
	var sidecars []types.ServiceConfig
	labelled := false
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		svc := p.Services[name]
		if isSidecar(svc) {
			sidecars = append(sidecars, svc)
		}
		if strings.Contains(svc.Image, "stack-back") {
			t.Errorf("service %s still runs stack-back's image %s: use %s", name, svc.Image, sidecarImage)
		}
		for k := range svc.Labels {
			labelled = labelled || strings.HasPrefix(k, discover.DefaultLabelPrefix)
		}
	}
	switch {
	case len(sidecars) > 1:
		t.Fatalf("%d services run %s; one sidecar per stack", len(sidecars), sidecarImage)
	case len(sidecars) == 0 && labelled:
		t.Fatalf("services carry %s labels but no service runs image %s", discover.DefaultLabelPrefix, sidecarImage)
	case len(sidecars) == 0:
		return types.ServiceConfig{}, false
	}
	return sidecars[0], true
}

// checkStack checks a loaded stack's sidecar, its plan and its settings.
func checkStack(t *testing.T, s stack, p *types.Project) {
	side, ok := sidecarOf(t, p)
	if !ok {
		if _, known := wantStacks[s.name]; known {
			t.Fatalf("examples/%s has no %s service", s.name, sidecarImage)
		}
		t.Logf("no backup sidecar in examples/%s: only validated", s.name)
		return
	}
	checkLabels(t, p)
	plan := planOf(t, p, side)
	var table bytes.Buffer
	_ = plan.WriteTable(&table)
	t.Logf("sidecar plan of examples/%s:\n%s", s.name, table.String())
	for _, w := range plan.Warnings {
		t.Errorf("plan warning: %s", w)
	}
	var paths []string
	for _, tg := range plan.Targets {
		paths = append(paths, tg.Path)
	}
	slices.Sort(paths)
	want, known := wantStacks[s.name]
	if known && !slices.Equal(paths, want.targets) {
		t.Errorf("targets:\n got %q\nwant %q", paths, want.targets)
	}
	if len(paths) == 0 {
		t.Errorf("the plan backs up nothing")
	}

	env := environment(side)
	cfg := loadSidecarConfig(t, side, env)
	checkDockerSocket(t, side, env)
	if filepath.IsAbs(cfg.Repository) {
		if _, ok := mountHolding(side, cfg.Repository); !ok {
			t.Errorf("RESTIC_REPOSITORY=%s is on no volume of the sidecar: platback refuses the run", cfg.Repository)
		}
	}
	if !known {
		return
	}
	if cfg.Schedule.Cron != want.cron {
		t.Errorf("BACKUP_CRON %q, want %q", cfg.Schedule.Cron, want.cron)
	}
	if cfg.Repository != want.repository {
		t.Errorf("RESTIC_REPOSITORY %q, want %q", cfg.Repository, want.repository)
	}
	if cfg.Credentials.UsesVault() != (want.secretPath != "") {
		t.Errorf("credentials from Vault: %v, want %v", cfg.Credentials.UsesVault(), want.secretPath != "")
	}
	if want.secretPath == "" {
		return
	}
	if got := env[vaultcreds.EnvSecretPath]; got != want.secretPath {
		t.Errorf("VAULT_SECRET_PATH %q, want %q", got, want.secretPath)
	}
	// approle.sh and the Ansible snippet write role_id and secret_id into
	// /etc/platback/<app>: the sidecar must mount that directory (not the
	// files: a renamed file would not be seen).
	app := strings.TrimPrefix(want.secretPath, "ansible/data/stackback_")
	for _, v := range []string{vaultcreds.EnvRoleIDFile, vaultcreds.EnvSecretIDFile} {
		m, ok := mountHolding(side, env[v])
		switch {
		case !ok:
			t.Errorf("%s=%s is on no mount of the sidecar", v, env[v])
		case m.Type != types.VolumeTypeBind || m.Source != "/etc/platback/"+app || m.Target == env[v] || !m.ReadOnly:
			t.Errorf("%s=%s: the sidecar should mount the directory /etc/platback/%s read-only (got %s %s:%s, read-only %v)",
				v, env[v], app, m.Type, m.Source, m.Target, m.ReadOnly)
		case path.Base(env[v]) != strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(v, "VAULT_"), "_FILE")):
			t.Errorf("%s=%s: approle.sh and the Ansible snippet write %s", v, env[v], strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(v, "VAULT_"), "_FILE")))
		}
	}
}

// knownLabels are the backup labels discover understands, without prefix.
var knownLabels = []string{discover.LabelVolumes, discover.LabelVolumesInclude, discover.LabelVolumesExclude,
	discover.LabelStopDuringBackup, discover.LabelPostgres, discover.LabelMySQL, discover.LabelMariaDB}

// checkLabels fails for a stack-back.* label discover does not know.
func checkLabels(t *testing.T, p *types.Project) {
	t.Helper()
	for name, svc := range p.Services {
		for k := range svc.Labels {
			if rest, ok := strings.CutPrefix(k, discover.DefaultLabelPrefix); ok && !slices.Contains(knownLabels, rest) {
				t.Errorf("service %s: label %s is not one platback knows (%s)", name, k, strings.Join(knownLabels, ", "))
			}
		}
	}
}

// planOf builds the plan the sidecar would print for the stack running:
// every service a running container (number 1) with compose's labels, its
// named volumes under /var/lib/docker/volumes/<project>_<name>/_data.
func planOf(t *testing.T, p *types.Project, side types.ServiceConfig) discover.Plan {
	t.Helper()
	var cs []discover.Container
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		svc := p.Services[name]
		labels := map[string]string{
			discover.ComposeProjectLabel:         p.Name,
			discover.ComposeServiceLabel:         name,
			discover.ComposeContainerNumberLabel: "1",
			discover.ComposeOneoffLabel:          "False",
		}
		maps.Copy(labels, svc.Labels)
		c := discover.Container{ID: "id-" + name, Name: p.Name + "-" + name + "-1", State: "running", Labels: labels}
		for _, v := range svc.Volumes {
			switch v.Type {
			case types.VolumeTypeVolume:
				vol := p.Volumes[v.Source].Name
				if vol == "" {
					t.Fatalf("service %s: volume %q is not declared", name, v.Source)
				}
				c.Mounts = append(c.Mounts, discover.Mount{Type: "volume", Name: vol,
					Source: "/var/lib/docker/volumes/" + vol + "/_data", Destination: v.Target, ReadOnly: v.ReadOnly})
			case types.VolumeTypeBind:
				c.Mounts = append(c.Mounts, discover.Mount{Type: "bind", Source: v.Source, Destination: v.Target, ReadOnly: v.ReadOnly})
			}
		}
		for k, v := range environment(svc) {
			c.Env = append(c.Env, k+"="+v)
		}
		cs = append(cs, c)
	}
	self := discover.Identity{ContainerID: "id-" + side.Name, ContainerName: p.Name + "-" + side.Name + "-1", Project: p.Name, FoundBy: "mountinfo", ProjectFrom: "label"}
	return discover.BuildPlan(discover.Options{}, self, cs)
}

// environment is a service's resolved environment (env_file included).
func environment(svc types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// mountHolding returns the sidecar's mount that holds path p inside the
// container.
func mountHolding(svc types.ServiceConfig, p string) (types.ServiceVolumeConfig, bool) {
	var best types.ServiceVolumeConfig
	found := false
	for _, m := range svc.Volumes {
		d := path.Clean(m.Target)
		if (p == d || strings.HasPrefix(p, d+"/")) && (!found || len(d) > len(best.Target)) {
			best, found = m, true
		}
	}
	return best, found
}

// loadSidecarConfig checks the sidecar's environment with platback's own
// start-up check (config.Load). Secret files (*_FILE) must lie on a mount
// of the sidecar; for the check they are stand-in files.
func loadSidecarConfig(t *testing.T, side types.ServiceConfig, env map[string]string) config.Config {
	t.Helper()
	env = maps.Clone(env)
	files := t.TempDir()
	for k, v := range env {
		if !strings.HasSuffix(k, "_FILE") {
			continue
		}
		if _, ok := mountHolding(side, v); !ok {
			t.Errorf("%s=%s is on no mount of the sidecar: the file cannot exist in the container", k, v)
		}
		stand := filepath.Join(files, k)
		if err := os.WriteFile(stand, []byte("stand-in-"+strings.ToLower(k)), 0o600); err != nil {
			t.Fatal(err)
		}
		env[k] = stand
	}
	cfg, err := config.Load(func(name string) string { return env[name] })
	if err != nil {
		t.Fatalf("the sidecar refuses its environment at start-up:\n%v", err)
	}
	return cfg
}

// checkDockerSocket checks that the sidecar reaches Docker where its client
// looks: DOCKER_HOST, else /var/run/docker.sock, else stack-back's
// /tmp/docker.sock.
func checkDockerSocket(t *testing.T, side types.ServiceConfig, env map[string]string) {
	t.Helper()
	host := env["DOCKER_HOST"]
	if host != "" && !strings.HasPrefix(host, "unix://") {
		return // TCP, through a proxy
	}
	want := []string{"/var/run/docker.sock", discover.StackBackSocket}
	if host != "" {
		want = []string{strings.TrimPrefix(host, "unix://")}
	}
	var targets []string
	for _, m := range side.Volumes {
		if path.Base(m.Source) == "docker.sock" || path.Base(m.Target) == "docker.sock" {
			targets = append(targets, m.Target)
		}
	}
	if !slices.ContainsFunc(targets, func(t string) bool { return slices.Contains(want, t) }) {
		t.Errorf("the sidecar's Docker client connects to %s (DOCKER_HOST=%q), but the socket is mounted at %q", want, host, targets)
	}
}

// TestMigrationRefusals checks what examples/stack-back-migration/README.md
// says platback refuses or reads differently from stack-back, on the
// example's own environment with one variable changed.
func TestMigrationRefusals(t *testing.T) {
	s := copyStack(t, "stack-back-migration", nil)
	side, _ := sidecarOf(t, loadV2(t, s))
	base := environment(side)
	load := func(change map[string]string) (config.Config, error) {
		env := maps.Clone(base)
		maps.Copy(env, change)
		return config.Load(func(name string) string { return env[name] })
	}
	for _, tc := range []struct {
		name, value string
	}{
		{"LOG_LEVEL", "warning"},
		{"CRON_SCHEDULE", "0 0 2 * * *"},
		{"CRON_SCHEDULE", "@reboot"},
		{"CRON_SCHEDULE", "CRON_TZ=Europe/Berlin 0 2 * * *"},
	} {
		if _, err := load(map[string]string{tc.name: tc.value}); err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s=%q: want a start-up error naming %s, got %v", tc.name, tc.value, tc.name, err)
		}
	}
	// Without RESTIC_KEEP_*, stack-back kept 7/4/12/3; platback keeps 30 days.
	noKeep := map[string]string{}
	for k := range base {
		if strings.HasPrefix(k, "RESTIC_KEEP_") {
			noKeep[k] = ""
		}
	}
	cfg, err := load(noKeep)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.String() != backup.DefaultPolicy().String() || cfg.Policy.Within != "30d" {
		t.Errorf("policy without RESTIC_KEEP_*: %+v, want keep-within 30d", cfg.Policy)
	}
	cfg, err = load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (backup.Policy{Daily: 7, Weekly: 4, Monthly: 12, Yearly: 3}); cfg.Policy.String() != want.String() {
		t.Errorf("policy of stack-back.env.example: %+v, want %+v", cfg.Policy, want)
	}
	// stack-back's variables that platback ignores do not change anything.
	ignored, err := load(map[string]string{"EXCLUDE_BIND_MOUNTS": "true", "AUTO_BACKUP_ALL": "true", "INCLUDE_PROJECT_NAME": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if ignored.ExcludeBinds || len(ignored.Projects) > 0 {
		t.Errorf("stack-back's EXCLUDE_BIND_MOUNTS/INCLUDE_PROJECT_NAME changed the configuration: %+v", ignored)
	}
}

// scheduleRowRE matches a row of schedules.md's Platform One table.
var scheduleRowRE = regexp.MustCompile("^\\| (\\w+) \\| (Green|Blue) \\| (\\d+):(\\d\\d) AM \\| `([^`]+)` \\| `([a-z0-9-]+)` \\|$")

// staggerRowRE matches a row of schedules.md's stagger table.
var staggerRowRE = regexp.MustCompile("^\\| `([a-z0-9-]+)` \\| (\\S+) \\| (\\d\\d:\\d\\d:\\d\\d) \\|$")

// TestSchedules checks schedules.md against the schedule package: each
// BACKUP_CRON fires at the table's time, slots are twenty minutes apart in a
// resource group, the compose examples use their row's cron, and the
// stagger offsets are the ones the sidecar computes.
func TestSchedules(t *testing.T) {
	doc, err := os.ReadFile("schedules.md")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, time.March, 3, 0, 0, 0, 0, time.UTC) // a Tuesday, no DST change
	crons := map[string]string{}                                // compose project -> cron
	slots := map[string][]time.Duration{}                       // resource group -> times of day
	var staggered int
	for line := range strings.SplitSeq(string(doc), "\n") {
		if m := scheduleRowRE.FindStringSubmatch(line); m != nil {
			h, _ := strconv.Atoi(m[3])
			min, _ := strconv.Atoi(m[4])
			at := time.Duration(h)*time.Hour + time.Duration(min)*time.Minute
			tt, err := schedule.ParseSpec(schedule.Spec{Cron: m[5], TZ: "UTC"})
			if err != nil {
				t.Errorf("%s: %v", m[1], err)
				continue
			}
			if got := tt.Next(day); !got.Equal(day.Add(at)) {
				t.Errorf("%s: BACKUP_CRON %q fires at %s, the table says %s", m[1], m[5], got.Format("15:04"), day.Add(at).Format("15:04"))
			}
			crons[m[6]] = m[5]
			slots[m[2]] = append(slots[m[2]], at)
		}
		if m := staggerRowRE.FindStringSubmatch(line); m != nil {
			staggered++
			off := schedule.StaggerOffset(m[1], 20*time.Minute)
			if off.String() != m[2] {
				t.Errorf("stagger offset of %s: the table says %s, the sidecar computes %s", m[1], m[2], off)
			}
			tt, err := schedule.ParseSpec(schedule.Spec{Cron: "0 2 * * *", TZ: "UTC", Stagger: 20 * time.Minute, Name: m[1]})
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.Next(day).Format("15:04:05"); got != m[3] {
				t.Errorf("%s with BACKUP_STAGGER=20m runs at %s, the table says %s", m[1], got, m[3])
			}
		}
	}
	if len(crons) != 5 || staggered != 5 {
		t.Fatalf("schedules.md: found %d rows of the Platform One table and %d stagger rows, want 5 and 5", len(crons), staggered)
	}
	for group, times := range slots {
		slices.Sort(times)
		for i := 1; i < len(times); i++ {
			if times[i]-times[i-1] != 20*time.Minute {
				t.Errorf("resource group %s: slots %v are not twenty minutes apart", group, times)
			}
		}
	}
	for _, name := range []string{"mattermost", "n8n"} {
		side, _ := sidecarOf(t, loadV2(t, copyStack(t, name, nil)))
		if got := environment(side)["BACKUP_CRON"]; got != crons[name] {
			t.Errorf("examples/%s: BACKUP_CRON %q, schedules.md says %q", name, got, crons[name])
		}
	}
}

// appBucket is the bucket of one app, as the seed's Terraform names it.
func appBucket(app string) string { return "restic-stackback-" + app + "-bucket" }

// render fills in the app's name where a provisioning file says
// {{ app_name }}, as approle.sh, Ansible and Terraform do.
func render(t *testing.T, file, app string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("provisioning", file))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("{{ app_name }}")) {
		t.Fatalf("provisioning/%s has no {{ app_name }} to fill in", file)
	}
	return bytes.ReplaceAll(b, []byte("{{ app_name }}"), []byte(app))
}

// addPolicyUser creates a MinIO user whose only policy is
// provisioning/s3-policy.json for app, and returns its keys.
func addPolicyUser(t *testing.T, m *testbed.MinIO, app string) (access, secret string) {
	t.Helper()
	ctx := context.Background()
	access, secret = "restic-"+app+"-user", "secret-"+vaultbed.Random(12)
	name := "restic-" + app + "-policy"
	if err := m.Admin.AddCannedPolicy(ctx, name, render(t, "s3-policy.json", app)); err != nil {
		t.Fatalf("MinIO refuses provisioning/s3-policy.json: %v", err)
	}
	if err := m.Admin.AddUser(ctx, access, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Admin.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{name}, User: access}); err != nil {
		t.Fatal(err)
	}
	return access, secret
}

// openRepo opens a repository with the pinned restic, as the sidecar does.
func openRepo(t *testing.T, url, access, secret string) *backup.Repo {
	t.Helper()
	r, err := backup.Open(context.Background(), url, backup.Options{
		Restic: testbed.Tool(t, "restic"),
		Env: map[string]string{
			"RESTIC_PASSWORD": "pw-" + vaultbed.Random(8), "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret,
		},
		Host: "mattermost", Tags: []string{"project=mattermost"},
		CacheDir: filepath.Join(t.TempDir(), "cache"), CreateBucket: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// accessDenied reports whether err is S3's Access Denied.
func accessDenied(err error) bool { return minio.ToErrorResponse(err).Code == "AccessDenied" }

// TestS3Policy puts provisioning/s3-policy.json on a real MinIO for
// mattermost and uses that user's keys as the sidecar does: the bucket is
// created and the repository initialised through backup.EnsureRepo, restic
// backs up, lists, forgets with --prune and checks; the lifecycle read
// works, and reports the seed's 30-day expiration rule but not the safe
// noncurrent-version rules. The same keys cannot purge old versions, loosen
// their own bucket (policy, lifecycle, versioning, delete) or touch n8n's
// bucket; the seed's policy, on MinIO, can make its bucket public.
func TestS3Policy(t *testing.T) {
	start := time.Now()
	m := testbed.StartMinIO(t)
	ctx := context.Background()
	access, secret := addPolicyUser(t, m, "mattermost")
	bucket := appBucket("mattermost")

	repo := openRepo(t, m.RepoURL(bucket, ""), access, secret)
	if ok, err := m.Client.BucketExists(ctx, bucket); err != nil || ok {
		t.Fatalf("bucket %s exists before the first run (%v)", bucket, err)
	}
	res, err := repo.EnsureRepo(ctx)
	if err != nil {
		t.Fatalf("EnsureRepo with the policy's keys: %v", err)
	}
	if !res.BucketCreated || !res.Initialized || res.LifecycleErr != nil || len(res.Warnings) > 0 {
		t.Fatalf("EnsureRepo: %+v, want the bucket created, the repository initialised, the lifecycle read", res)
	}

	data := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(data, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("config.json", `{"SqlSettings":{}}`)
	backupOnce := func() {
		t.Helper()
		if _, err := repo.Backup(ctx, []string{data}, backup.BackupOptions{}); err != nil {
			t.Fatalf("backup with the policy's keys: %v", err)
		}
	}
	backupOnce()
	write("upload.bin", strings.Repeat("platback ", 50_000))
	backupOnce()
	snaps, err := repo.Snapshots(ctx, backup.Filter{})
	if err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots: %d, %v; want 2", len(snaps), err)
	}
	fr, err := repo.Forget(ctx, backup.Policy{Last: 1}, backup.ForgetOptions{})
	if err != nil || fr.Removed != 1 {
		t.Fatalf("forget --prune: %+v, %v; want one snapshot removed", fr, err)
	}
	if err := repo.Check(ctx, backup.CheckOptions{ReadDataSubset: "100%"}); err != nil {
		t.Fatalf("check after prune: %v", err)
	}
	if _, err := repo.Locks(ctx); err != nil {
		t.Fatalf("listing locks (the sidecar's clean-up): %v", err)
	}

	// The lifecycle read: no rule, then the seed's rule, then the safe ones.
	if lc := repo.CheckLifecycle(ctx); lc.Err != nil || len(lc.Rules) > 0 {
		t.Fatalf("lifecycle without rules: %+v", lc)
	}
	seedRule := lifecycle.NewConfiguration()
	seedRule.Rules = []lifecycle.Rule{{ID: "delete-old-backups", Status: "Enabled",
		Expiration: lifecycle.Expiration{Days: 30}}}
	if err := m.Client.SetBucketLifecycle(ctx, bucket, seedRule); err != nil {
		t.Fatal(err)
	}
	lc := repo.CheckLifecycle(ctx)
	if lc.Err != nil || len(lc.Rules) != 1 || lc.Rules[0].ID != "delete-old-backups" ||
		len(lc.Warnings) != 1 || !strings.HasPrefix(lc.Warnings[0], backup.WarnExpirationRule) {
		t.Fatalf("the seed's 30-day rule: %+v; want it reported as %q", lc, backup.WarnExpirationRule)
	}
	t.Logf("the seed's rule, as the sidecar reports it: %s", lc.Warnings[0])

	if err := m.Client.EnableVersioning(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	safe := lifecycle.NewConfiguration()
	safe.Rules = []lifecycle.Rule{{ID: "keep-deleted-30-days", Status: "Enabled",
		NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: 30},
		Expiration:                  lifecycle.Expiration{DeleteMarker: true}}}
	if err := m.Client.SetBucketLifecycle(ctx, bucket, safe); err != nil {
		t.Fatal(err)
	}
	if lc := repo.CheckLifecycle(ctx); lc.Err != nil || len(lc.Rules) > 0 {
		t.Fatalf("noncurrent-version and delete-marker expiration reported as a danger: %+v", lc)
	}
	write("later.txt", "after versioning")
	backupOnce()
	if _, err := repo.Forget(ctx, backup.Policy{Last: 1}, backup.ForgetOptions{}); err != nil {
		t.Fatalf("forget --prune on the versioned bucket: %v", err)
	}
	if err := repo.Check(ctx, backup.CheckOptions{}); err != nil {
		t.Fatalf("check on the versioned bucket: %v", err)
	}

	app, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(access, secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	// Prune deleted packs: their old versions are kept, and the app's keys
	// cannot purge them.
	var old *minio.ObjectInfo
	for obj := range m.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{WithVersions: true, Recursive: true}) {
		if obj.Err == nil && !obj.IsLatest && !obj.IsDeleteMarker {
			old = &obj
			break
		}
	}
	if old == nil {
		t.Fatal("no noncurrent version after a prune on the versioned bucket")
	}
	err = app.RemoveObject(ctx, bucket, old.Key, minio.RemoveObjectOptions{VersionID: old.VersionID})
	if !accessDenied(err) {
		t.Errorf("the app's keys purging version %s of %s: %v, want AccessDenied", old.VersionID, old.Key, err)
	}

	// Another app's bucket: list, put, get, and the sidecar's own check.
	other := appBucket("n8n")
	m.MakeBucket(t, other)
	if _, err := m.Client.PutObject(ctx, other, "config", strings.NewReader("n8n"), 3, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	for obj := range app.ListObjects(ctx, other, minio.ListObjectsOptions{Recursive: true}) {
		if !accessDenied(obj.Err) {
			t.Errorf("listing %s with mattermost's keys: %+v, want AccessDenied", other, obj)
		}
	}
	if _, err := app.PutObject(ctx, other, "data/00/x", strings.NewReader("x"), 1, minio.PutObjectOptions{}); !accessDenied(err) {
		t.Errorf("writing into %s with mattermost's keys: %v, want AccessDenied", other, err)
	}
	if _, err := app.StatObject(ctx, other, "config", minio.StatObjectOptions{}); !accessDenied(err) {
		t.Errorf("reading %s/config with mattermost's keys: %v, want AccessDenied", other, err)
	}
	if err := app.MakeBucket(ctx, appBucket("vault"), minio.MakeBucketOptions{}); !accessDenied(err) {
		t.Errorf("creating another app's bucket with mattermost's keys: %v, want AccessDenied", err)
	}
	if _, err := openRepo(t, m.RepoURL(other, ""), access, secret).EnsureRepo(ctx); !errors.Is(err, backup.ErrAccessDenied) {
		t.Errorf("EnsureRepo on %s with mattermost's keys: %v, want backup.ErrAccessDenied", other, err)
	}

	// The app's keys cannot loosen their own bucket: no bucket policy (a
	// public bucket), no lifecycle rule, no versioning change, no delete.
	public := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::` + bucket + `/*"]}]}`
	if err := app.SetBucketPolicy(ctx, bucket, public); !accessDenied(err) {
		t.Errorf("making its own bucket public with the policy's keys: %v, want AccessDenied", err)
	}
	if err := app.SetBucketLifecycle(ctx, bucket, seedRule); !accessDenied(err) {
		t.Errorf("setting a lifecycle rule with the policy's keys: %v, want AccessDenied", err)
	}
	if err := app.SuspendVersioning(ctx, bucket); !accessDenied(err) {
		t.Errorf("suspending versioning with the policy's keys: %v, want AccessDenied", err)
	}
	if err := app.RemoveBucket(ctx, bucket); !accessDenied(err) {
		t.Errorf("deleting its own bucket with the policy's keys: %v, want AccessDenied", err)
	}

	// The seed's policy, s3:* on bucket/* only: MinIO matches bucket-level
	// actions against bucket/* too, so restic works — and the app's keys
	// can also make the bucket public (AWS S3 would grant no bucket-level
	// action: restic could not even list it).
	seedBucket := appBucket("linkwarden")
	m.MakeBucket(t, seedBucket)
	seedSecret := "seed-" + vaultbed.Random(12)
	m.AddAppUser(t, "restic-linkwarden-user", seedSecret, seedBucket)
	if _, err := openRepo(t, m.RepoURL(seedBucket, ""), "restic-linkwarden-user", seedSecret).EnsureRepo(ctx); err != nil {
		t.Errorf("EnsureRepo with the seed's policy on MinIO: %v", err)
	}
	seed, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4("restic-linkwarden-user", seedSecret, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := seed.SetBucketPolicy(ctx, seedBucket, strings.ReplaceAll(public, bucket, seedBucket)); err != nil {
		t.Errorf("the seed's policy on MinIO no longer lets the app make its bucket public (%v): update provisioning/README.md", err)
	}
	t.Logf("the policy on MinIO with restic: %s", time.Since(start).Round(time.Second))
}

// ansibleTask is one task of provisioning/ansible-snippet.yml.
type ansibleTask struct {
	Name   string
	Module string         // the module's full name, e.g. ansible.builtin.copy
	Args   map[string]any // the module's arguments
	Task   map[string]any // the whole task (no_log, when, …)
}

// ansibleTasks reads provisioning/ansible-snippet.yml.
func ansibleTasks(t *testing.T) []ansibleTask {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("provisioning", "ansible-snippet.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var raw []map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatalf("provisioning/ansible-snippet.yml is not a YAML task list: %v", err)
	}
	var tasks []ansibleTask
	for _, r := range raw {
		task := ansibleTask{Task: r}
		task.Name, _ = r["name"].(string)
		for k, v := range r {
			if strings.Count(k, ".") == 2 {
				task.Module = k
				task.Args, _ = v.(map[string]any)
			}
		}
		if task.Module == "" || task.Name == "" {
			t.Fatalf("ansible-snippet.yml: task %v has no name or no fully qualified module", r)
		}
		tasks = append(tasks, task)
	}
	return tasks
}

// ansibleTask returns the one task of module whose path (or dest) argument
// ends with suffix.
func findTask(t *testing.T, tasks []ansibleTask, module, suffix string) ansibleTask {
	t.Helper()
	var found []ansibleTask
	for _, task := range tasks {
		p, _ := task.Args["path"].(string)
		if d, ok := task.Args["dest"].(string); ok {
			p = d
		}
		if task.Module == module && strings.HasSuffix(p, suffix) {
			found = append(found, task)
		}
	}
	if len(found) != 1 {
		t.Fatalf("ansible-snippet.yml: %d %s tasks on a path ending in %q, want 1", len(found), module, suffix)
	}
	return found[0]
}

// arg is a task's string argument with {{ app_name }} filled in.
func (a ansibleTask) arg(name, app string) string {
	s, _ := a.Args[name].(string)
	return strings.ReplaceAll(s, "{{ app_name }}", app)
}

// TestAnsibleSnippet checks provisioning/ansible-snippet.yml against what
// the sidecar and the compose files expect: the secret at the path
// VAULT_SECRET_PATH names with the fields of the default VAULT_FIELD_MAP,
// role_id and secret_id root-only in the directory the sidecar mounts, and
// no secret in Ansible's output.
func TestAnsibleSnippet(t *testing.T) {
	tasks := ansibleTasks(t)
	kv := findTask(t, tasks, "community.hashi_vault.vault_kv2_write", "stackback_{{ app_name }}")
	for app, want := range wantStacks {
		if want.secretPath == "" {
			continue
		}
		if got := kv.arg("engine_mount_point", app) + "/data/" + kv.arg("path", app); got != want.secretPath {
			t.Errorf("the snippet writes %s; examples/%s reads VAULT_SECRET_PATH=%s", got, app, want.secretPath)
		}
	}
	var fields, want []string
	data, _ := kv.Args["data"].(map[string]any)
	for k := range data {
		fields = append(fields, k)
	}
	for _, f := range vaultcreds.DefaultFieldMap() {
		if !f.Optional {
			want = append(want, f.Field)
		}
	}
	slices.Sort(fields)
	slices.Sort(want)
	if !slices.Equal(fields, want) {
		t.Errorf("the secret's fields %q, the sidecar's default VAULT_FIELD_MAP reads %q", fields, want)
	}

	dir := findTask(t, tasks, "ansible.builtin.file", "/etc/platback/{{ app_name }}")
	if dir.Args["mode"] != "0700" || dir.Args["state"] != "directory" {
		t.Errorf("the secrets directory: %v, want a directory with mode 0700", dir.Args)
	}
	for _, f := range []string{"role_id", "secret_id"} {
		c := findTask(t, tasks, "ansible.builtin.copy", "/etc/platback/{{ app_name }}/"+f)
		if c.Args["mode"] != "0600" || c.Args["owner"] != "root" {
			t.Errorf("%s is written with %v, want mode 0600 owned by root", f, c.Args)
		}
	}
	for _, task := range tasks {
		onSecretID := strings.HasSuffix(task.arg("dest", "app"), "/secret_id") || strings.HasSuffix(task.arg("src", "app"), "/secret_id")
		handlesSecret := task.Module == "community.hashi_vault.vault_kv2_write" || task.Module == "community.hashi_vault.vault_write" ||
			(onSecretID && task.Module != "ansible.builtin.stat")
		if handlesSecret && task.Task["no_log"] != true {
			t.Errorf("task %q handles a secret without no_log: true", task.Name)
		}
	}
}

// TestVaultPolicy runs provisioning/approle.sh for mattermost and n8n with
// the vault CLI against a real Vault, writes each app's secret where the
// Ansible snippet does, and logs in as each app's sidecar does (its compose
// file's environment, config.Load, vaultcreds): each reads its own secret
// and is denied the other's. The role's token can read exactly its one
// path; a secret_id rotation through the snippet's paths works and the old
// secret_id no longer logs in.
func TestVaultPolicy(t *testing.T) {
	start := time.Now()
	srv := vaultbed.Start(t)
	ctx := context.Background()

	// approle.sh calls `vault`; OpenBao's CLI is `bao` with the same commands.
	bin := t.TempDir()
	cliName := map[string]string{"vault": "vault", "openbao": "bao"}[srv.Kind]
	if err := os.Symlink(testbed.Tool(t, cliName), filepath.Join(bin, "vault")); err != nil {
		t.Fatal(err)
	}
	etcPlatback := t.TempDir() // the host's /etc/platback
	apps := []string{"mattermost", "n8n"}
	for _, app := range apps {
		cmd := exec.Command("sh", filepath.Join("provisioning", "approle.sh"), app)
		cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
			"VAULT_ADDR=" + srv.Addr, "VAULT_TOKEN=" + srv.RootToken, "PLATBACK_SECRETS_DIR=" + etcPlatback}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("approle.sh %s: %v\n%s", app, err, out)
		}
		checkMode(t, filepath.Join(etcPlatback, app), 0o700|os.ModeDir)
		checkMode(t, filepath.Join(etcPlatback, app, "role_id"), 0o600)
		checkMode(t, filepath.Join(etcPlatback, app, "secret_id"), 0o600)
	}

	role, err := srv.Root.Logical().ReadWithContext(ctx, "auth/approle/role/stackback-mattermost")
	if err != nil || role == nil {
		t.Fatalf("read the role approle.sh made: %v", err)
	}
	for k, want := range map[string]string{"token_ttl": "3600", "token_max_ttl": "86400", "secret_id_num_uses": "0",
		"token_policies": "[stackback-mattermost]", "token_no_default_policy": "false"} {
		if got := fmt.Sprint(role.Data[k]); got != want {
			t.Errorf("role stackback-mattermost: %s = %s, want %s", k, got, want)
		}
	}

	// The secrets, where the Ansible snippet writes them.
	tasks := ansibleTasks(t)
	kv := findTask(t, tasks, "community.hashi_vault.vault_kv2_write", "stackback_{{ app_name }}")
	secrets := map[string]map[string]string{}
	for _, app := range apps {
		secrets[app] = map[string]string{"password": "pw-" + vaultbed.Random(8), "access_key": "AK" + vaultbed.Random(6), "secret_key": "sk-" + vaultbed.Random(10)}
		srv.PutKV2(t, kv.arg("engine_mount_point", app), kv.arg("path", app), vaultbed.ToAny(secrets[app]))
	}

	// The token of mattermost's role: read on its one path, nothing else.
	token := approleLogin(t, srv, readFile(t, etcPlatback, "mattermost", "role_id"), readFile(t, etcPlatback, "mattermost", "secret_id"))
	caps, err := srv.TokenClient(t, token).Logical().WriteWithContext(ctx, "sys/capabilities-self", map[string]any{"paths": []string{
		"ansible/data/stackback_mattermost", "ansible/metadata/stackback_mattermost", "ansible/data/stackback_n8n", "ansible/data/stackback_mattermost/x",
	}})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"ansible/data/stackback_mattermost": "[read]", "ansible/metadata/stackback_mattermost": "[deny]",
		"ansible/data/stackback_n8n": "[deny]", "ansible/data/stackback_mattermost/x": "[deny]"} {
		if got := fmt.Sprint(caps.Data[p]); got != want {
			t.Errorf("capabilities of mattermost's token on %s: %s, want %s", p, got, want)
		}
	}

	// Each sidecar, from its compose file: its own secret, not the other's.
	for i, app := range apps {
		other := apps[1-i]
		env := sidecarVaultEnv(t, app, srv.Addr, etcPlatback)
		creds, err := fetch(t, env)
		if err != nil {
			t.Fatalf("the %s sidecar's login and read: %v", app, err)
		}
		for field, envName := range map[string]string{"password": "RESTIC_PASSWORD", "access_key": "AWS_ACCESS_KEY_ID", "secret_key": "AWS_SECRET_ACCESS_KEY"} {
			if creds.Get(envName) != secrets[app][field] {
				t.Errorf("the %s sidecar's %s is not the secret's %s", app, envName, field)
			}
		}
		env[vaultcreds.EnvSecretPath] = wantStacks[other].secretPath
		if _, err := fetch(t, env); !errors.Is(err, vaultcreds.ErrPermissionDenied) {
			t.Errorf("the %s sidecar reading %s: %v, want vaultcreds.ErrPermissionDenied", app, env[vaultcreds.EnvSecretPath], err)
		}
	}

	// A secret_id rotation through the snippet's paths, as Ansible does it.
	const app = "mattermost"
	readRole := findTask(t, tasks, "community.hashi_vault.vault_read", "/role-id")
	rid, err := srv.Root.Logical().ReadWithContext(ctx, readRole.arg("path", app))
	if err != nil || rid == nil || rid.Data["role_id"] != readFile(t, etcPlatback, app, "role_id") {
		t.Fatalf("the snippet's role-id path %s: %v, %v; want approle.sh's role_id", readRole.arg("path", app), rid, err)
	}
	oldSecretID := readFile(t, etcPlatback, app, "secret_id")
	gen := findTask(t, tasks, "community.hashi_vault.vault_write", "/secret-id")
	sid, err := srv.Root.Logical().WriteWithContext(ctx, gen.arg("path", app), nil)
	if err != nil || sid == nil {
		t.Fatalf("the snippet's secret-id path %s: %v", gen.arg("path", app), err)
	}
	newFile := filepath.Join(etcPlatback, app, ".secret_id.tmp")
	if err := os.WriteFile(newFile, []byte(sid.Data["secret_id"].(string)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(newFile, filepath.Join(etcPlatback, app, "secret_id")); err != nil {
		t.Fatal(err)
	}
	destroy := findTask(t, tasks, "community.hashi_vault.vault_write", "/secret-id/destroy")
	if _, err := srv.Root.Logical().WriteWithContext(ctx, destroy.arg("path", app), map[string]any{"secret_id": oldSecretID}); err != nil {
		t.Fatalf("the snippet's destroy path %s: %v", destroy.arg("path", app), err)
	}
	if _, err := fetch(t, sidecarVaultEnv(t, app, srv.Addr, etcPlatback)); err != nil {
		t.Errorf("the sidecar's login with the rotated secret_id: %v", err)
	}
	env := sidecarVaultEnv(t, app, srv.Addr, etcPlatback)
	stale := filepath.Join(t.TempDir(), "secret_id")
	if err := os.WriteFile(stale, []byte(oldSecretID), 0o600); err != nil {
		t.Fatal(err)
	}
	env[vaultcreds.EnvSecretIDFile] = stale
	if _, err := fetch(t, env); !errors.Is(err, vaultcreds.ErrInvalidSecretID) {
		t.Errorf("login with the destroyed secret_id: %v, want vaultcreds.ErrInvalidSecretID", err)
	}
	t.Logf("approle.sh, the snippet's paths and the sidecar's logins on %s: %s", srv.Kind, time.Since(start).Round(time.Second))
}

// checkMode fails unless the file at p has exactly mode want.
func checkMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("approle.sh did not write %s: %v", p, err)
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %s, want %s", p, fi.Mode(), want)
	}
	if !fi.IsDir() && fi.Size() == 0 {
		t.Errorf("%s is empty", p)
	}
}

// readFile returns the content of <etcPlatback>/<app>/<name>.
func readFile(t *testing.T, etcPlatback, app, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(etcPlatback, app, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// approleLogin logs in with role_id and secret_id and returns the token.
func approleLogin(t *testing.T, srv *vaultbed.Server, roleID, secretID string) string {
	t.Helper()
	sec, err := srv.TokenClient(t, "").Logical().WriteWithContext(context.Background(), "auth/approle/login",
		map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil || sec == nil || sec.Auth == nil {
		t.Fatalf("AppRole login: %v", err)
	}
	return sec.Auth.ClientToken
}

// sidecarVaultEnv is the environment of app's sidecar from its compose file,
// with VAULT_ADDR set in .env as the user would, and the secret files taken
// from etcPlatback (the host's /etc/platback) through the sidecar's mount.
func sidecarVaultEnv(t *testing.T, app, addr, etcPlatback string) map[string]string {
	t.Helper()
	side, _ := sidecarOf(t, loadV2(t, copyStack(t, app, map[string]string{"VAULT_ADDR": addr})))
	env := environment(side)
	for _, v := range []string{vaultcreds.EnvRoleIDFile, vaultcreds.EnvSecretIDFile} {
		m, ok := mountHolding(side, env[v])
		rest, under := strings.CutPrefix(m.Source, "/etc/platback/")
		if !ok || m.Type != types.VolumeTypeBind || !under {
			t.Fatalf("examples/%s: %s=%s is not on a mount of /etc/platback/…", app, v, env[v])
		}
		env[v] = filepath.Join(etcPlatback, rest, strings.TrimPrefix(env[v], m.Target))
	}
	return env
}

// fetch checks env as the sidecar does at start-up and reads the
// credentials once, as a run does; the token is revoked afterwards.
func fetch(t *testing.T, env map[string]string) (vaultcreds.Credentials, error) {
	t.Helper()
	cfg, err := config.Load(func(name string) string { return env[name] })
	if err != nil {
		t.Fatalf("the sidecar refuses its environment: %v", err)
	}
	src, err := vaultcreds.NewSource(cfg.Credentials, vaultcreds.WithoutRenewal())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer src.Close(ctx)
	return src.Credentials(ctx)
}
