// Package composebed runs real docker-compose projects for tests: a compose
// file written to a temporary directory, `docker-compose up`, and
// `docker-compose down -v` when the test ends. Files should label their
// services, volumes and networks with io.platback.test: ${PLATBACK_TEST_OWNER}
// so the test bed's sweep removes what a crashed run left behind.
package composebed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// OwnerEnv is the variable compose files use for the test bed's label.
const OwnerEnv = "PLATBACK_TEST_OWNER"

// Stack is a compose project a test started.
type Stack struct {
	tb      testing.TB
	cli     *client.Client
	Project string
	Dir     string
	env     []string
}

// Up writes composeYAML to a temporary directory as docker-compose.yml and
// runs `docker-compose -p project up -d` with upArgs and env (plus
// OwnerEnv); the project is taken down, volumes included, at cleanup.
func Up(tb testing.TB, cli *client.Client, project, composeYAML string, env map[string]string, upArgs ...string) *Stack {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(composeYAML), 0o644); err != nil {
		tb.Fatal(err)
	}
	s := &Stack{tb: tb, cli: cli, Project: project, Dir: dir}
	s.env = append(os.Environ(), OwnerEnv+"="+dockerbed.Owner())
	for k, v := range env {
		s.env = append(s.env, k+"="+v)
	}
	tb.Cleanup(func() {
		if out, err := s.Compose("down", "-v", "--remove-orphans", "-t", "2"); err != nil {
			tb.Logf("composebed: down %s: %v\n%s", project, err, out)
		}
	})
	s.Must(append([]string{"up", "-d"}, upArgs...)...)
	return s
}

// SetEnv sets a variable for the following docker-compose commands.
func (s *Stack) SetEnv(name, value string) { s.env = append(s.env, name+"="+value) }

// Compose runs docker-compose with the stack's project, file and
// environment, and returns its combined output.
func (s *Stack) Compose(args ...string) (string, error) {
	return Run(context.Background(), s.Project, s.Dir, s.env, args...)
}

// Run runs docker-compose (or `docker compose`) for project with
// dir/docker-compose.yml, in dir, with env, bounded by 10 minutes, and
// returns its combined output. It needs no test (the bench uses it too).
func Run(ctx context.Context, project, dir string, env []string, args ...string) (string, error) {
	bin, pre := "docker-compose", []string(nil)
	if _, err := exec.LookPath(bin); err != nil {
		bin, pre = "docker", []string{"compose"}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append(pre, "-p", project, "-f", filepath.Join(dir, "docker-compose.yml")), args...)...)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Must is Compose that fails the test on error.
func (s *Stack) Must(args ...string) string {
	s.tb.Helper()
	out, err := s.Compose(args...)
	if err != nil {
		s.tb.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Container returns the id of container number n of service.
func (s *Stack) Container(service string, n int) string {
	s.tb.Helper()
	list, err := s.cli.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: make(client.Filters).
		Add("label", discover.ComposeProjectLabel+"="+s.Project).
		Add("label", discover.ComposeServiceLabel+"="+service).
		Add("label", discover.ComposeContainerNumberLabel+"="+strconv.Itoa(n))})
	if err != nil {
		s.tb.Fatal(err)
	}
	if len(list.Items) != 1 {
		s.tb.Fatalf("composebed: %d containers for %s/%s #%d", len(list.Items), s.Project, service, n)
	}
	return list.Items[0].ID
}

// Volume is the engine's name of the stack's volume name.
func (s *Stack) Volume(name string) string { return fmt.Sprintf("%s_%s", s.Project, name) }
