package main

import (
	"encoding/json"
	"io"
)

// writeJSON prints v as indented JSON (the commands' --json).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeOutput prints v as indented JSON with --json, else as its table.
func writeOutput(w io.Writer, asJSON bool, v any, table func(io.Writer) error) error {
	if asJSON {
		return writeJSON(w, v)
	}
	return table(w)
}
