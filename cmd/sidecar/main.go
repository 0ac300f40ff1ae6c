// Command sidecar backs up the Docker Compose stack it runs in with restic.
// See the README for its environment variables and commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	_ "time/tzdata" // the FROM-scratch image has no zoneinfo of its own
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

// exitError carries an exit status through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	root := &cobra.Command{
		Use:           "sidecar",
		Short:         "Back up a Docker Compose stack with restic",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(newRunCmd(), newRunOnceCmd(), newPlanCmd(), newSnapshotsCmd(), newRestoreCmd(),
		newCheckCmd(), newUnlockCmd(), newHealthCmd(), newVersionCmd(), newWorkerCmd(), newDumpCmd(), newDoctorCmd())
	root.AddCommand(newVerifyCmd())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := root.ExecuteContext(ctx)
	stop()
	var ee exitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "sidecar:", err)
		os.Exit(1)
	}
}
