package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/dbengine"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/worker"
)

// newWorkerCmd is the entrypoint of the worker containers the sidecar starts:
// the job, credentials included, arrives on stdin.
func newWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "worker",
		Short:  "Run one job sent on stdin (started by the sidecar in a worker container)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			restic := config.ResticBinary(os.Getenv)
			return worker.Serve(cmd.Context(), os.Stdin, os.Stdout, os.Stderr, restic)
		},
	}
}

// newDumpCmd writes a database target's dump to stdout; restic runs it as
// the --stdin-from-command producer, so a non-zero exit keeps no snapshot.
func newDumpCmd() *cobra.Command {
	var target string
	cmd := &cobra.Command{
		Use:    "dump --target JSON",
		Short:  "Write a database target's dump to stdout (run by restic)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// restic starts the producer with its own environment, the
			// repository password and S3 keys included: drop them first.
			if err := reexecWithEnv(dumpEnv(os.Environ())); err != nil {
				return err
			}
			var t discover.Target
			if err := json.Unmarshal([]byte(target), &t); err != nil {
				return fmt.Errorf("--target: %w", err)
			}
			if t.Database == nil {
				return fmt.Errorf("--target: %s is not a database dump", t.Path)
			}
			cli, err := discover.NewClient()
			if err != nil {
				return err
			}
			defer cli.Close()
			db := dbengine.Database{Engine: dbengine.Engine(t.Database.Engine), ContainerID: t.Container.ID, ContainerName: t.Container.Name}
			err = dbengine.Dump(cmd.Context(), cli, db, os.Stdout)
			if path := os.Getenv(backup.StreamStderrEnv); err != nil && path != "" {
				// restic may exit before it reads our stderr: leave the
				// reason where the engine reads it too.
				if f, ferr := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); ferr == nil {
					fmt.Fprintln(f, err)
					f.Close()
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "the target, as JSON")
	return cmd
}

// dumpEnvNames is all of its environment a dump needs: the Docker client's
// settings, its error file, logging, and the system's basics.
var dumpEnvNames = map[string]bool{
	"PATH": true, "HOME": true, "TMPDIR": true, "TZ": true, "ZONEINFO": true, "SSL_CERT_FILE": true, "SSL_CERT_DIR": true,
	"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true, "http_proxy": true, "https_proxy": true, "no_proxy": true,
	"DOCKER_HOST": true, "DOCKER_API_VERSION": true, "DOCKER_CERT_PATH": true, "DOCKER_TLS_VERIFY": true,
	"LOG_LEVEL": true, backup.StreamStderrEnv: true,
}

// dumpEnv keeps the variables of environ a dump needs.
func dumpEnv(environ []string) []string {
	var keep []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if dumpEnvNames[name] {
			keep = append(keep, kv)
		}
	}
	return keep
}

// reexecWithEnv replaces this process by itself with only env, unless its
// environment already is env. The process keeps its pid and pipes, so
// restic does not notice; /proc/<pid>/environ then shows env only.
func reexecWithEnv(env []string) error {
	if slices.Equal(os.Environ(), env) {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("dump: find my own binary to drop restic's credentials: %w", err)
	}
	return syscall.Exec(exe, os.Args, env)
}
