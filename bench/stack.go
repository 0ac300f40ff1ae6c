package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed/composebed"
	"github.com/platback/platback/internal/testbed/dockerbed"
)

// Both stacks: the sidecar as a user runs it (socket, cache volume, the
// plain variables) next to what it backs up. Its network is the host's, so
// it reaches the MinIO on 127.0.0.1 as restic on the host does; its
// workers join that network. RESTIC_REPOSITORY here names a bucket that
// does not exist (the daemon's start-up check accepts that); every timed
// run-once names its own fresh bucket.
const sidecarService = `
  backup:
    image: ${SIDECAR_IMAGE}
    network_mode: host
    environment:
      RESTIC_REPOSITORY: ${RESTIC_REPOSITORY}
      RESTIC_PASSWORD: ${RESTIC_PASSWORD}
      AWS_ACCESS_KEY_ID: ${AWS_ACCESS_KEY_ID}
      AWS_SECRET_ACCESS_KEY: ${AWS_SECRET_ACCESS_KEY}
      CRON_SCHEDULE: "0 3 1 1 *"
      METRICS_LISTEN: 127.0.0.1:${METRICS_PORT}
      LOG_FORMAT: json
    labels:
      io.platback.bench: "1"
      io.platback.test: ${BENCH_OWNER}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - cache:/cache
`

const stackTail = `
  cache: {labels: {io.platback.bench: "1", io.platback.test: "${BENCH_OWNER}"}}
networks:
  default: {labels: {io.platback.bench: "1", io.platback.test: "${BENCH_OWNER}"}}
`

// volumeStack is an application with one volume of files.
const volumeStack = `
services:
  app:
    image: ${BASE_IMAGE}
    entrypoint: ["sleep", "infinity"]
    labels:
      stack-back.volumes: "true"
      io.platback.bench: "1"
      io.platback.test: ${BENCH_OWNER}
    volumes:
      - data:/data
` + sidecarService + `
volumes:
  data: {external: true, name: "${DATA_VOLUME}"}` + stackTail

// postgresStack is a PostgreSQL server whose dump the sidecar backs up.
const postgresStack = `
services:
  db:
    image: ${POSTGRES_IMAGE}
    environment:
      POSTGRES_PASSWORD: ` + pgPassword + `
    labels:
      stack-back.postgres: "true"
      io.platback.bench: "1"
      io.platback.test: ${BENCH_OWNER}
    volumes:
      - pgdata:/var/lib/postgresql/data
` + sidecarService + `
volumes:
  pgdata: {external: true, name: "${PG_VOLUME}"}` + stackTail

// stack is a compose project the bench started.
type stack struct {
	Project string
	dir     string
	env     []string
}

// composeUp writes the compose file to dir and starts the project.
func composeUp(ctx context.Context, dir, project, yaml string, env map[string]string) (*stack, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	s := &stack{Project: project, dir: dir, env: os.Environ()}
	for k, v := range env {
		s.env = append(s.env, k+"="+v)
	}
	if out, err := s.compose(ctx, "up", "-d"); err != nil {
		return s, fmt.Errorf("docker-compose up %s: %w\n%s", project, err, out)
	}
	return s, nil
}

// setEnv changes a variable for the following compose commands.
func (s *stack) setEnv(name, value string) { s.env = append(s.env, name+"="+value) }

// compose runs docker-compose (or docker compose) on the project.
func (s *stack) compose(ctx context.Context, args ...string) (string, error) {
	return composebed.Run(ctx, s.Project, s.dir, s.env, args...)
}

// down removes the project's containers, network and own volumes (the
// external data volumes stay).
func (s *stack) down(ctx context.Context) error {
	if out, err := s.compose(ctx, "down", "-v", "--remove-orphans", "-t", "2"); err != nil {
		return fmt.Errorf("docker-compose down %s: %w\n%s", s.Project, err, out)
	}
	return nil
}

// container returns the id of the service's container.
func (s *stack) container(ctx context.Context, cli *client.Client, service string) (string, error) {
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).
		Add("label", discover.ComposeProjectLabel+"="+s.Project).
		Add("label", discover.ComposeServiceLabel+"="+service)})
	if err != nil {
		return "", err
	}
	if len(list.Items) != 1 {
		return "", fmt.Errorf("%d containers for service %s of %s", len(list.Items), service, s.Project)
	}
	return list.Items[0].ID, nil
}

// waitLog waits until the container's log holds text.
func waitLog(ctx context.Context, cli *client.Client, id, text string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		logs := containerLogs(ctx, cli, id)
		if strings.Contains(logs, text) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%q not in the log of %s after %s; log tail:\n%s", text, id[:12], timeout, tail(logs, 3000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// containerLogs returns a container's whole log, stdout and stderr.
func containerLogs(ctx context.Context, cli *client.Client, id string) string {
	r, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return err.Error()
	}
	defer r.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, r)
	return out.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// runResult is the part of `sidecar run-once --json` the bench reads.
type runResult struct {
	Duration time.Duration `json:"duration"`
	Targets  []struct {
		Path       string        `json:"path"`
		Kind       string        `json:"kind"`
		FilesNew   uint64        `json:"files_new"`
		BytesAdded uint64        `json:"bytes_added"`
		Duration   time.Duration `json:"duration"`
		Error      string        `json:"error"`
	} `json:"targets"`
	Retention []string `json:"retention_errors"`
	Error     string   `json:"error"`
}

// runOnce runs `sidecar run-once --json` in the sidecar container with
// the repository repo, as `docker exec` would, and returns its wall time
// (exec created to exit seen) and result.
func (b *bench) runOnce(ctx context.Context, sidecar, repo string) (time.Duration, runResult, error) {
	start := time.Now()
	res, err := dockerbed.TryExec(ctx, b.cli, sidecar, dockerbed.ExecOptions{Env: []string{"RESTIC_REPOSITORY=" + repo}, Timeout: 30 * time.Minute},
		"sidecar", "run-once", "--json")
	took := time.Since(start)
	if err != nil {
		return took, runResult{}, err
	}
	var r runResult
	if jerr := json.Unmarshal([]byte(res.Stdout), &r); jerr != nil || res.ExitCode != 0 {
		return took, r, fmt.Errorf("sidecar run-once: exit %d: %s\n%s", res.ExitCode, strings.TrimSpace(res.Stdout), tail(res.Stderr, 3000))
	}
	if len(r.Targets) != 1 {
		return took, r, fmt.Errorf("sidecar run-once backed up %d targets, want 1:\n%s", len(r.Targets), res.Stdout)
	}
	return took, r, nil
}
