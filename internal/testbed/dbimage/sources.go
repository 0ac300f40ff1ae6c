package dbimage

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// aptSource is one "deb" entry of the machine's apt configuration.
type aptSource struct {
	URI        string
	Suite      string
	Components []string
}

// line is the entry in one-line sources.list style, which mmdebstrap takes
// as a MIRROR argument. Options such as signed-by are left out: mmdebstrap
// finds the Debian archive keyring itself.
func (s aptSource) line() string {
	return strings.TrimSpace("deb " + s.URI + " " + s.Suite + " " + strings.Join(s.Components, " "))
}

// aptSourceFiles are where apt reads its sources (Dir::Etc::sourcelist and
// Dir::Etc::sourceparts at their defaults).
var aptSourceFiles = func() ([]string, error) {
	files := []string{"/etc/apt/sources.list"}
	for _, pattern := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	return files, nil
}

// machineMirrors returns the one-line entries of the machine's apt sources
// for suite and its companions (suite-updates, suite-security…), so the
// image is built from the mirror the machine already uses; no host name is
// built in.
func machineMirrors(suite string) ([]string, error) {
	files, err := aptSourceFiles()
	if err != nil {
		return nil, err
	}
	var all []aptSource
	var read []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read apt sources: %w", err)
		}
		read = append(read, f)
		if strings.HasSuffix(f, ".sources") {
			all = append(all, parseDeb822(string(b))...)
		} else {
			all = append(all, parseOneLine(string(b))...)
		}
	}
	lines := mirrorsFor(all, suite)
	if len(lines) == 0 {
		return nil, fmt.Errorf("no apt source for Debian %q with component main in %s: add one (apt-get must be able to install %s packages)",
			suite, strings.Join(read, ", "), suite)
	}
	return lines, nil
}

// mirrorsFor keeps the entries of suite and suite-* that carry component
// main, deduplicated, in their order.
func mirrorsFor(sources []aptSource, suite string) []string {
	var out []string
	for _, s := range sources {
		if s.Suite != suite && !strings.HasPrefix(s.Suite, suite+"-") {
			continue
		}
		if !slices.Contains(s.Components, "main") {
			continue
		}
		if l := s.line(); !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// parseOneLine reads sources.list text: "deb [options] URI SUITE COMPONENT…".
func parseOneLine(text string) []aptSource {
	var out []aptSource
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		typ, rest, ok := strings.Cut(line, " ")
		if !ok || typ != "deb" {
			continue
		}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "[") {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 2 || strings.HasSuffix(f[1], "/") { // a flat repository has no components
			continue
		}
		out = append(out, aptSource{URI: f[0], Suite: f[1], Components: f[2:]})
	}
	return out
}

// parseDeb822 reads .sources text: paragraphs of "Field: value" lines
// (Types, URIs, Suites, Components, Enabled), continuation lines starting
// with a space, "#" comments.
func parseDeb822(text string) []aptSource {
	var out []aptSource
	fields := map[string]string{}
	last := ""
	flush := func() {
		if len(fields) > 0 && !strings.EqualFold(fields["enabled"], "no") &&
			slices.Contains(strings.Fields(fields["types"]), "deb") {
			for _, uri := range strings.Fields(fields["uris"]) {
				for _, suite := range strings.Fields(fields["suites"]) {
					if strings.HasSuffix(suite, "/") {
						continue
					}
					out = append(out, aptSource{URI: uri, Suite: suite, Components: strings.Fields(fields["components"])})
				}
			}
		}
		fields, last = map[string]string{}, ""
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				fields[last] += " " + strings.TrimSpace(line)
			}
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(name))
			fields[last] = strings.TrimSpace(value)
		}
	}
	flush()
	return out
}

// aptOptionPrefixes are the host apt settings passed on to mmdebstrap (which
// does not read the host's apt.conf): those that decide whether the mirror
// can be reached and its Release files accepted, e.g. a snapshot mirror's
// expired Valid-Until, or a proxy.
var aptOptionPrefixes = []string{
	"Acquire::Check-Valid-Until",
	"Acquire::Check-Date",
	"Acquire::http::Proxy",
	"Acquire::https::Proxy",
	"Acquire::Retries",
	"Acquire::ForceIPv4",
}

// aptOptions turns the output of `apt-config dump --format '%f=%v%n'` into
// mmdebstrap --aptopt values for the settings in aptOptionPrefixes.
func aptOptions(dump string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(dump))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), "=")
		if !ok || value == "" || strings.ContainsAny(value, "\"\\\n") {
			continue
		}
		for _, p := range aptOptionPrefixes {
			if name == p || strings.HasPrefix(name, p+"::") {
				out = append(out, name+` "`+value+`"`)
				break
			}
		}
	}
	return out
}
