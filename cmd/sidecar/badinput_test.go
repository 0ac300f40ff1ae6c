package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/mount"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/runner"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// sidecarRun is what one run of the built binary did.
type sidecarRun struct {
	code           int
	stdout, stderr string
}

// runSidecar runs the sidecar binary with only env (and the Docker
// variables of the test's own environment) in dir.
func runSidecar(t *testing.T, bin, dir string, env map[string]string, args ...string) sidecarRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin"}
	for _, k := range []string{"DOCKER_HOST", "DOCKER_API_VERSION", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return sidecarRun{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// entries lists what dir holds (names only).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return names
}

// The bad day's bad input, through the real binary: a pile of bad
// variables is refused at start-up in one error naming every one with its
// value and fix, the sidecar exits non-zero and creates nothing; label
// typos are warnings in plan and run results; restore refuses paths and
// directories no target can have before anything runs.
func TestBadInput(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sidecar")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	t.Run("start-up", func(t *testing.T) {
		dir := t.TempDir()
		missing := filepath.Join(dir, "missing-secret")
		unreadable := filepath.Join(dir, "secret-dir") // a directory: open works, read fails
		require.NoError(t, os.Mkdir(unreadable, 0o700))
		repo, cache := filepath.Join(dir, "repo"), filepath.Join(dir, "cache")
		piles := []struct {
			name string
			env  map[string]string
			want []string // each in the one error
		}{{
			name: "plain credentials",
			env: map[string]string{
				"RESTIC_REPOSITORY": repo, "RESTIC_PASSWORD_FILE": missing,
				"BACKUP_CRON": "61 * * * *", "RETENTION_CRON": "every day", "BACKUP_STAGGER": "10", "BACKUP_TZ": "Mars/Olympus",
				"RESTIC_KEEP_DAILY": "seven", "KEEP_LAST": "-1", "METRICS_LISTEN": "9095", "STOP_TIMEOUT": "30",
			},
			want: []string{
				`BACKUP_CRON="61 * * * *": end of range (61) above maximum (59)`,
				`RETENTION_CRON="every day": got 2 fields`, `write "@daily"`,
				`BACKUP_STAGGER="10": `, "write 10m for minutes or 10s for seconds",
				`BACKUP_TZ="Mars/Olympus": unknown time zone`,
				`RESTIC_KEEP_DAILY="seven": want a whole number`, `KEEP_LAST="-1": want a whole number`,
				`METRICS_LISTEN="9095": `, "a bare port needs a colon: write :9095",
				`STOP_TIMEOUT="30": `,
				`RESTIC_PASSWORD_FILE="` + missing + `": cannot open`, "no such file",
			},
		}, {
			name: "Vault without VAULT_ADDR",
			env: map[string]string{
				"RESTIC_REPOSITORY": "s3:", "VAULT_ROLE_ID_FILE": unreadable, "VAULT_SECRET_ID_FILE": missing,
				"VAULT_SECRET_PATH": "ansible/data/stackback_app", "BACKUP_CRON": "every day", "LOG_LEVEL": "loud",
				"METRICS_LISTEN": "http://0.0.0.0:9095",
			},
			want: []string{
				`RESTIC_REPOSITORY="s3:": `, "no S3 endpoint",
				`BACKUP_CRON="every day": `, `write "@daily"`,
				`LOG_LEVEL="loud": want debug, info, warn or error`,
				`METRICS_LISTEN="http://0.0.0.0:9095": `, "not a URL",
				"VAULT_ADDR: not set, while VAULT_ROLE_ID_FILE, VAULT_SECRET_ID_FILE, VAULT_SECRET_PATH turn Vault on",
				`VAULT_ROLE_ID_FILE="` + unreadable + `": cannot read the role_id file`,
				`VAULT_SECRET_ID_FILE="` + missing + `": cannot open the secret_id file`,
			},
		}}
		before := entries(t, dir)
		for _, pile := range piles {
			for _, command := range []string{"run", "run-once"} {
				t.Run(pile.name+"/"+command, func(t *testing.T) {
					env := map[string]string{"PLATBACK_PROJECT": "badinput", "PLATBACK_CACHE_DIR": cache}
					for k, v := range pile.env {
						env[k] = v
					}
					res := runSidecar(t, bin, dir, env, command)
					assert.NotZero(t, res.code, "exit status")
					assert.Empty(t, res.stdout)
					assert.Equal(t, 1, strings.Count(res.stderr, "sidecar: configuration:"), "one error:\n%s", res.stderr)
					for _, w := range pile.want {
						assert.Contains(t, res.stderr, w)
					}
					assert.NotContains(t, res.stderr, "level=", "nothing ran before the error:\n%s", res.stderr)
					assert.Equal(t, before, entries(t, dir), "no repository, cache or other file was created")
				})
			}
		}
		for _, repo := range []string{"s3:", "ftp://x/y", ""} {
			res := runSidecar(t, bin, dir, map[string]string{"RESTIC_REPOSITORY": repo, "RESTIC_PASSWORD": "p",
				"PLATBACK_PROJECT": "badinput", "PLATBACK_CACHE_DIR": cache}, "run")
			assert.NotZero(t, res.code, "RESTIC_REPOSITORY=%q", repo)
			assert.Contains(t, res.stderr, "RESTIC_REPOSITORY")
			if repo != "" {
				assert.Contains(t, res.stderr, `RESTIC_REPOSITORY="`+repo+`": `)
			}
			assert.Equal(t, before, entries(t, dir))
		}
	})

	t.Run("label typos", func(t *testing.T) {
		cli := dockerbed.Client(t)
		project := dockerbed.UniqueName("badlabels")
		compose := func(service string, labels map[string]string) dockerbed.ContainerSpec {
			labels["com.docker.compose.project"], labels["com.docker.compose.service"] = project, service
			labels["com.docker.compose.container-number"] = "1"
			return dockerbed.ContainerSpec{Name: project + "-" + service + "-1", Labels: dockerbed.Labels(labels)}
		}
		dockerbed.RunAll(t, cli,
			compose("app", map[string]string{"stack-back.volume": "true"}),
			compose("files", map[string]string{"stack-back.volumes": "yes"}),
			compose("db", map[string]string{"stack_back.postgres": "true"}))
		dir := t.TempDir()
		env := map[string]string{"PLATBACK_PROJECT": project, "RESTIC_REPOSITORY": filepath.Join(dir, "repo"), "RESTIC_PASSWORD": "p",
			"PLATBACK_CACHE_DIR": filepath.Join(dir, "cache"), "PLATBACK_RESTIC": testbed.Tool(t, "restic")}
		want := []string{
			"container " + project + "-app-1: label stack-back.volume=\"true\": unknown label, ignored; did you mean stack-back.volumes?",
			"container " + project + "-files-1: label stack-back.volumes=\"yes\": not a boolean: use true or false",
			"container " + project + "-db-1: label stack_back.postgres=\"true\": not a backup label, ignored; did you mean stack-back.postgres?",
		}
		plan := runSidecar(t, bin, dir, env, "plan")
		for _, w := range want {
			assert.Contains(t, plan.stdout+plan.stderr, w)
		}
		once := runSidecar(t, bin, dir, env, "run-once", "--json")
		assert.NotZero(t, once.code, "nothing to back up is a failure")
		for _, w := range want {
			assert.Contains(t, once.stdout, strings.ReplaceAll(w, `"`, `\"`), "the run's result carries the warning")
		}
	})

	t.Run("restore", func(t *testing.T) {
		restic := testbed.Tool(t, "restic")
		// A stack with one volume target, so refusals list it.
		cli := dockerbed.Client(t)
		host := dockerbed.UniqueName("badrestore") // the project, and restic's --host
		vol := dockerbed.Volume(t, cli, host+"_data", nil)
		dockerbed.Run(t, cli, dockerbed.ContainerSpec{Name: host + "-app-1", Labels: dockerbed.Labels(map[string]string{
			"com.docker.compose.project": host, "com.docker.compose.service": "app", "com.docker.compose.container-number": "1",
			"stack-back.volumes": "true"}),
			Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol.Name, Target: "/data"}}})
		const target = "/volumes/app/data"
		dir := t.TempDir()
		repo := filepath.Join(dir, "repo")
		const dump = "/databases/db/all_databases.sql"
		resticEnv := append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD=p", "RESTIC_CACHE_DIR="+filepath.Join(dir, "restic-cache"))
		for _, args := range [][]string{
			{"init", "-q"},
			{"backup", "-q", "--host", host, "--stdin-from-command", "--stdin-filename", dump, "--", "echo", "dump of db"},
			{"backup", "-q", "--host", "another-host", "--stdin-from-command", "--stdin-filename", "/databases/other/all_databases.sql", "--", "echo", "x"},
		} {
			c := exec.Command(restic, args...)
			c.Env = resticEnv
			out, err := c.CombinedOutput()
			require.NoError(t, err, "restic %v: %s", args, out)
		}
		work := t.TempDir()
		cache, into := filepath.Join(work, "cache"), filepath.Join(work, "restored")
		env := map[string]string{"PLATBACK_PROJECT": host, "RESTIC_REPOSITORY": repo, "RESTIC_PASSWORD": "p",
			"PLATBACK_CACHE_DIR": cache, "PLATBACK_RESTIC": restic, "METRICS_LISTEN": ""}

		// Refused before anything runs: no lock, no cache, no directory.
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"--path", "../../etc", "--into", into}, []string{`--path "../../etc": not a snapshot path of a target: a snapshot path is absolute`, "; the stack's targets: " + target}},
			{[]string{"--path", "/", "--into", into}, []string{`--path "/": not a snapshot path of a target: the stack's snapshots are under /volumes/ and /databases/`, target}},
			{[]string{"--path", "/etc", "--into", into}, []string{`--path "/etc": not a snapshot path`}},
			{[]string{"--path", "/volumes/../etc/passwd", "--into", into}, []string{`has no ".." segment`}},
			{[]string{"--path", "volumes/app/data", "--into", into}, []string{"a snapshot path is absolute"}},
			{[]string{"--path", "/volumes", "--to-volume", "--mode", "merge"}, []string{"/volumes holds every target: give one target's path; the stack's targets: " + target}},
			{[]string{"--path", "../../etc", "--to-database"}, []string{`--path "../../etc": not a snapshot path`}},
			// A path without snapshots: should --into ever be let through,
			// nothing is written to this machine's root.
			{[]string{"--path", "/databases/nope/x.sql", "--into", "restored"}, []string{`--into "restored": want an absolute directory`}},
			{[]string{"--path", "/databases/nope/x.sql", "--into", "/"}, []string{`--into "/": the files would land at /volumes/… and /databases/…`}},
			{[]string{"--path", "/databases/nope/x.sql", "--into", "/.."}, []string{`--into "/..": the files would land`}},
		} {
			res := runSidecar(t, bin, work, env, append([]string{"restore"}, tc.args...)...)
			assert.NotZero(t, res.code, "%v", tc.args)
			for _, w := range tc.want {
				assert.Contains(t, res.stderr, w, "%v", tc.args)
			}
			assert.Empty(t, entries(t, work), "%v: nothing created", tc.args)
		}

		// A path with no snapshot (here, or only on another host) lists the
		// paths that have one; --into is not created.
		for _, p := range []string{"/databases/nope/all_databases.sql", "/databases/other/all_databases.sql"} {
			res := runSidecar(t, bin, work, env, "restore", "--path", p, "--into", into)
			assert.NotZero(t, res.code)
			assert.Contains(t, res.stderr, "no snapshot of "+p+" on host "+host+"; paths with snapshots on host "+host+": "+dump)
			assert.NoDirExists(t, into)
		}

		// The same repository restores a good path (a clean-able one too).
		res := runSidecar(t, bin, work, env, "restore", "--path", "/databases/db//all_databases.sql/", "--into", into+"/")
		require.Zero(t, res.code, "%s", res.stderr)
		got, err := os.ReadFile(filepath.Join(into, dump))
		require.NoError(t, err)
		assert.Equal(t, "dump of db\n", string(got))
	})
}

func TestCheckRestorePath(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" = refused
	}{
		{"/volumes/app/data", "/volumes/app/data"},
		{"/volumes/app//data/", "/volumes/app/data"},
		{"/volumes/app/./data", "/volumes/app/data"},
		{"/databases/db/all_databases.sql", "/databases/db/all_databases.sql"},
		{"/volumes/app", "/volumes/app"},
		{"", ""}, {" ", ""}, {"/", ""}, {"//", ""}, {"/volumes", ""}, {"/volumes/", ""}, {"/databases", ""},
		{"../../etc", ""}, {"volumes/app/data", ""}, {"./volumes/app", ""}, {"/etc", ""}, {"/etc/passwd", ""},
		{"/volumes/../etc", ""}, {"/volumes/app/../../etc", ""}, {"/volumes/app/..", ""}, {"/volumesx/app", ""},
		{"/cache/platback-run.lock", ""},
	} {
		got, err := runner.CheckRestorePath(tc.in)
		if tc.want == "" {
			assert.ErrorIs(t, err, runner.ErrBadRestorePath, "%q", tc.in)
			continue
		}
		assert.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
}
