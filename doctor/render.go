package doctor

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report for people: one line per check (status,
// check, detail, fix), then the counts.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tDETAIL\tFIX")
	for _, c := range r {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.ToUpper(string(c.Status)), oneLine(c.Name), oneLine(c.Detail), oneLine(cmpOr(c.Fix, "-")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, r.Summary())
	return err
}

// Summary counts the checks by status, e.g. "12 pass, 1 warn, 1 fail, 3 skip: FAILED".
func (r Report) Summary() string {
	verdict := "OK"
	if !r.OK() {
		verdict = "FAILED"
	}
	return fmt.Sprintf("%d pass, %d warn, %d fail, %d skip: %s", r.Count(Pass), r.Count(Warn), r.Count(Fail), r.Count(Skip), verdict)
}

// oneLine keeps a cell on its line and in its column.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\t", " ").Replace(s)
}
