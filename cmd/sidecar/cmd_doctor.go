package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/doctor"
	"github.com/platback/platback/internal/config"
)

func newDoctorCmd() *cobra.Command {
	var asJSON bool
	var step time.Duration
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the whole chain (Docker, plan, Vault, S3, repository, snapshots, schedule) and say how to fix what is wrong",
		Long: `Check the whole chain and print pass, warn, fail or skip with the fix for each:
the Docker engine and the sidecar's project, the plan, Vault (reachable, AppRole
login, every mapped field; values are never printed) or the plain credentials,
the S3 endpoint, the bucket, list/put/delete access, lifecycle expiration rules,
versioning and object lock, the repository, each target's last snapshot and its
age, the schedule and collisions with other platback sidecars on the engine.

It creates nothing: the only write is a small probe object under
platback-doctor/ in the repository's prefix, deleted at once. Exit status 0
when no check failed, 1 otherwise.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A bad variable is one failed check: the others still run.
			cfg, cfgErr := config.Load(config.Env(os.LookupEnv))
			var first []doctor.Check
			if cfgErr != nil {
				first = append(first, doctor.Check{Name: "configuration", Status: doctor.Fail, Detail: cfgErr.Error(), Fix: "fix the variables named (see the README's Environment variables)"})
			} else {
				first = append(first, doctor.Check{Name: "configuration", Status: doctor.Pass, Detail: "every variable is valid"})
			}
			docker, _ := discover.NewClient() // nil: the docker check fails and says why
			if docker != nil {
				defer docker.Close()
			}
			rep := doctor.Report(append(first, doctor.Run(cmd.Context(), doctor.Options{
				Docker: docker,
				Discover: discover.Options{LabelPrefix: cfg.LabelPrefix, Projects: cfg.Projects, ExcludeBinds: cfg.ExcludeBinds,
					Self: discover.SelfOptions{Project: cfg.Project, Container: cfg.Container}},
				Credentials: cfg.Credentials, Repository: cfg.Repository, CopyRepository: cfg.CopyRepository, Region: cfg.Region, Schedule: cfg.Schedule, Host: cfg.Host,
				Restic: cfg.Restic, CacheDir: cfg.CacheDir, CreateBucket: cfg.CreateBucket, StepTimeout: step,
				Logger: newLogger(os.Stderr, cfg),
			})...))
			if err := writeOutput(os.Stdout, asJSON, rep, rep.WriteTable); err != nil {
				return err
			}
			if !rep.OK() {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checks as JSON")
	cmd.Flags().DurationVar(&step, "timeout", doctor.DefaultStepTimeout, "deadline of each check")
	return cmd
}
