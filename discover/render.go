package discover

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/platback/platback/dbengine"
	"github.com/platback/platback/internal/ids"
)

// WriteTable prints the plan for people: one line per target, then what is
// stopped during the backup, what was skipped and the warnings. It prints
// no secret (the plan holds none).
func (p Plan) WriteTable(w io.Writer) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "Projects: %s\n", strings.Join(p.Projects, ", "))
	if p.Self.ContainerID != "" {
		fmt.Fprintf(ew, "Sidecar:  %s (%s, found by %s)\n", p.Self.ContainerName, ids.Container(p.Self.ContainerID), p.Self.FoundBy)
	} else {
		fmt.Fprintf(ew, "Sidecar:  not in a container (project from %s)\n", orDash(p.Self.ProjectFrom))
	}
	fmt.Fprintln(ew)

	if len(p.Targets) == 0 {
		fmt.Fprintln(ew, "Nothing to back up.")
	} else {
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PROJECT\tSERVICE\tKIND\tSOURCE\tSNAPSHOT PATH\tNOTES")
		for _, t := range p.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Project, t.Service, t.Kind, t.Source, t.Path, orDash(notes(t)))
		}
		tw.Flush()
	}

	if len(p.StopDuringBackup) > 0 {
		fmt.Fprintln(ew, "\nStopped during the backup:")
		for _, c := range p.StopDuringBackup {
			fmt.Fprintf(ew, "  %s (%s)\n", c.Name, c.Service)
		}
	}
	if len(p.Hooks) > 0 {
		fmt.Fprintln(ew, "\nHooks (run with sh -c; pre before any container is stopped, the others once they run again):")
		for _, h := range p.Hooks {
			fmt.Fprintf(ew, "  %s (%s): %s\n", h.Source.Name, h.Source.Service, h)
		}
	}
	if len(p.Skipped) > 0 {
		fmt.Fprintln(ew, "\nSkipped:")
		for _, s := range p.Skipped {
			what := s.Container.Name
			if s.Mount != "" {
				what += " " + s.Mount
			}
			fmt.Fprintf(ew, "  %s: %s\n", what, s.Reason)
		}
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintln(ew, "\nWarnings:")
		for _, wr := range p.Warnings {
			fmt.Fprintf(ew, "  %s\n", wr)
		}
	}
	return ew.err
}

func notes(t Target) string {
	var n []string
	if v := t.Volume; v != nil {
		if v.ReadOnly {
			n = append(n, "read-only")
		}
		for _, u := range v.SharedWith {
			n = append(n, "shared with "+u.Container.Name+":"+u.Destination)
		}
		for _, c := range v.Stop {
			n = append(n, "stops "+c.Name)
		}
	}
	if d := t.Database; d != nil {
		n = append(n, dbengine.Engine(d.Engine).DumpContents())
		if len(d.CredentialEnv) > 0 {
			n = append(n, "credentials from "+strings.Join(d.CredentialEnv, ","))
		}
	}
	return strings.Join(n, "; ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errWriter keeps the first write error so printing code stays flat.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}
