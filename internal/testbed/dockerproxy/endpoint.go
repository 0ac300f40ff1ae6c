package dockerproxy

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Endpoint is an Engine API endpoint as an allowlist names it: the method
// and the path with the API version prefix stripped and ids and names
// replaced by {id} and {name} ("POST /containers/{id}/start").
type Endpoint struct {
	Method string
	Path   string
}

func (e Endpoint) String() string { return e.Method + " " + e.Path }

func compareEndpoints(a, b Endpoint) int {
	if c := strings.Compare(a.Path, b.Path); c != 0 {
		return c
	}
	return strings.Compare(a.Method, b.Method)
}

// sortedUnique sorts endpoints by path, then method, without duplicates.
func sortedUnique(es []Endpoint) []Endpoint {
	es = slices.Clone(es)
	slices.SortFunc(es, compareEndpoints)
	return slices.Compact(es)
}

// versionPrefix is the API version the client pins, "/v1.52".
var versionPrefix = regexp.MustCompile(`^/v[0-9]+(\.[0-9]+)*(/|$)`)

// collections are the path's first segments followed by an object's id or
// name; their literals are the second segments that name no object.
var collections = map[string]struct {
	placeholder string
	literals    []string
	// actions are the last segments after an object name that may hold
	// slashes (images, plugins, distribution): "/images/a/b:tag/json".
	actions []string
}{
	"containers":   {"{id}", []string{"json", "create", "prune"}, nil},
	"exec":         {"{id}", nil, nil},
	"volumes":      {"{name}", []string{"create", "prune"}, nil},
	"networks":     {"{id}", []string{"create", "prune"}, nil},
	"images":       {"{name}", []string{"json", "create", "load", "search", "prune", "get"}, []string{"json", "history", "push", "tag", "get"}},
	"plugins":      {"{name}", []string{"privileges", "pull", "create"}, []string{"json", "enable", "disable", "upgrade", "push", "set"}},
	"distribution": {"{name}", nil, []string{"json"}},
	"services":     {"{id}", []string{"create"}, nil},
	"nodes":        {"{id}", nil, nil},
	"tasks":        {"{id}", nil, nil},
	"secrets":      {"{id}", []string{"create"}, nil},
	"configs":      {"{id}", []string{"create"}, nil},
}

// Normalize turns a request's method and URL path (query left off) into its
// Endpoint: "/v1.52/containers/3f2a…/start" is "/containers/{id}/start",
// "/v1.52/volumes/app_data" is "/volumes/{name}", "/_ping" stays.
func Normalize(method, urlPath string) Endpoint {
	p := urlPath
	if loc := versionPrefix.FindStringIndex(p); loc != nil {
		p = "/" + p[loc[1]:]
	}
	p = "/" + strings.Trim(p, "/")
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	c, ok := collections[segs[0]]
	if !ok || len(segs) < 2 || (len(segs) == 2 && slices.Contains(c.literals, segs[1])) {
		return Endpoint{Method: method, Path: p}
	}
	rest := segs[2:]
	if c.actions != nil {
		// The name may hold slashes: only a known last segment is an action.
		rest = nil
		if last := segs[len(segs)-1]; len(segs) > 2 && slices.Contains(c.actions, last) {
			rest = []string{last}
		}
	}
	return Endpoint{Method: method, Path: strings.Join(append([]string{"", segs[0], c.placeholder}, rest...), "/")}
}

// methods an allowlist may name.
var methods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}

// ParseAllowlist reads an allowlist: one "METHOD /path" per line, paths as
// Normalize writes them; "#" starts a comment, blank lines are skipped.
func ParseAllowlist(r io.Reader) ([]Endpoint, error) {
	var out []Endpoint
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 || !slices.Contains(methods, f[0]) || !strings.HasPrefix(f[1], "/") {
			return nil, fmt.Errorf("allowlist line %d: %q is not \"METHOD /path\" (METHOD one of %s)", n, strings.TrimSpace(line), strings.Join(methods, ", "))
		}
		e := Endpoint{Method: f[0], Path: f[1]}
		if norm := Normalize(e.Method, e.Path); norm != e {
			return nil, fmt.Errorf("allowlist line %d: %s is written %s (no API version, {id} and {name} for ids and names)", n, e, norm)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
