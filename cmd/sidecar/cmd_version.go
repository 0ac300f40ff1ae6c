package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/platback/platback/internal/config"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the platback, restic and Go versions",
		RunE: func(cmd *cobra.Command, _ []string) error {
			restic := config.ResticBinary(os.Getenv)
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, restic, "version").Output()
			rv := strings.TrimSpace(string(out))
			if err != nil {
				rv = fmt.Sprintf("not found (%v)", err)
			}
			fmt.Printf("platback %s\n%s\n%s %s/%s\n", version, rv, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
