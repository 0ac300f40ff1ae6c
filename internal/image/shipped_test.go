package image

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/platback/platback/internal/toolpath"
)

// TestShippedCommandsDoNotLinkTesting checks that no command of this module
// (the sidecar in the image, and build-image behind make image) links the
// testing package: test helpers such as internal/testbed stay in tests.
func TestShippedCommandsDoNotLinkTesting(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH:", err)
	}
	root, err := toolpath.Root()
	if err != nil {
		t.Fatal(err)
	}
	goList := func(args ...string) []string {
		t.Helper()
		cmd := exec.Command(gobin, append([]string{"list"}, args...)...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return strings.Fields(string(out))
	}

	// Every main package under cmd/, so a command added later is checked too.
	commands := goList("-f", "{{if eq .Name \"main\"}}{{.ImportPath}}{{end}}", "./cmd/...")
	for _, want := range []string{"github.com/platback/platback/cmd/sidecar", "github.com/platback/platback/cmd/build-image"} {
		if !slices.Contains(commands, want) {
			t.Errorf("go list ./cmd/... does not list %s (found %v)", want, commands)
		}
	}
	for _, cmd := range commands {
		for _, dep := range goList("-deps", cmd) {
			if dep == "testing" || strings.HasPrefix(dep, "testing/") ||
				strings.HasPrefix(dep, "github.com/platback/platback/internal/testbed") {
				t.Errorf("%s links %s", cmd, dep)
			}
		}
	}
}
