package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/runner"
)

func newSnapshotsCmd() *cobra.Command {
	var asJSON bool
	var path string
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List the stack's snapshots",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withSession(cmd, func(ctx context.Context, _ *app, s *runner.Session) error {
				return listSnapshots(ctx, s, path, asJSON)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&path, "path", "", "only snapshots of this target path, e.g. /volumes/app/data")
	return cmd
}

func listSnapshots(ctx context.Context, s *runner.Session, path string, asJSON bool) error {
	f := backup.Filter{Host: s.Host}
	if path != "" {
		f.Paths = []string{path}
	}
	snaps, err := s.Repo.Snapshots(ctx, f)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(snaps)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tPATHS\tTAGS")
	for _, sn := range snaps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", sn.ShortID, sn.Time.Format("2006-01-02 15:04:05"), strings.Join(sn.Paths, ","), strings.Join(sn.Tags, ","))
	}
	return tw.Flush()
}
