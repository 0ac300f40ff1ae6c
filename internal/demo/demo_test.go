package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/platback/platback/internal/testbed"
)

// TestDemo runs make demo's program, as the README promises it works: the
// Mattermost example under docker-compose, backed up, wiped and restored.
// It runs under its own project names and then checks that nothing of it is
// left on the engine.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo runs docker-compose stacks")
	}
	for _, tool := range []string{"restic", "minio", "vault"} {
		testbed.Tool(t, tool)
	}
	const p = "platback-demotest"
	t.Setenv("PLATBACK_DEMO_PREFIX", p)
	leftovers := func() string {
		var found []string
		for _, args := range [][]string{
			{"ps", "-aq", "--filter", "label=com.docker.compose.project=" + p + "-platform"},
			{"ps", "-aq", "--filter", "label=com.docker.compose.project=" + p + "-mattermost"},
			{"volume", "ls", "-q", "--filter", "label=com.docker.compose.project=" + p + "-platform"},
			{"volume", "ls", "-q", "--filter", "label=com.docker.compose.project=" + p + "-mattermost"},
			{"network", "ls", "-q", "--filter", "name=^" + p + "$"},
		} {
			out, err := exec.Command("docker", args...).Output()
			if err != nil {
				t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
			}
			if s := strings.TrimSpace(string(out)); s != "" {
				found = append(found, strings.Join(args[:2], " ")+": "+strings.ReplaceAll(s, "\n", " "))
			}
		}
		return strings.Join(found, "; ")
	}
	if l := leftovers(); l != "" {
		t.Logf("removing what a crashed run left: %s", l)
		d := &demo{}
		d.stackUp, d.platformUp = true, true
		root, _ := testbed.Root()
		d.stack = newCompose(root, p+"-mattermost", []string{"DEMO_NETWORK=" + p, "DEMO_SECRETS_DIR=/nonexistent", "POSTGRES_PASSWORD=x"},
			"examples/mattermost/docker-compose.yml", "scripts/demo/mattermost.demo.yml")
		d.platform = newCompose(root, p+"-platform", []string{"DEMO_NETWORK=" + p, "DEMO_MINIO_ROOT_USER=x", "DEMO_MINIO_ROOT_PASSWORD=x", "DEMO_VAULT_ROOT_TOKEN=x"},
			"scripts/demo/platform.yml")
		d.teardown(false)
	}

	// make demo leaves the product image for the user; the test removes the
	// tags of it that it made (a tag that was there before stays).
	sidecarTags := func() map[string]bool {
		out, err := exec.Command("docker", "images", "platback/sidecar", "--format", "{{.Repository}}:{{.Tag}}").Output()
		if err != nil {
			t.Fatalf("docker images: %v", err)
		}
		tags := map[string]bool{}
		for _, tag := range strings.Fields(string(out)) {
			tags[tag] = true
		}
		return tags
	}
	before := sidecarTags()
	t.Cleanup(func() {
		for tag := range sidecarTags() {
			if !before[tag] {
				if out, err := exec.Command("docker", "rmi", tag).CombinedOutput(); err != nil {
					t.Errorf("docker rmi %s: %v: %s", tag, err, out)
				}
			}
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if err := runDemo(ctx, false); err != nil {
		t.Fatalf("the demo failed: %v", err)
	}
	if l := leftovers(); l != "" {
		t.Errorf("the demo left behind: %s", l)
	}
}
