package readme

import (
	"bytes"
	"fmt"
	"go/format"
	"go/scanner"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/platback/platback/internal/toolpath"
)

// snippetImports are the packages a README snippet may use without
// importing them: a snippet that names one of these (backup.Open,
// log.Fatal) gets its import. A snippet using another package is either a
// whole file (starting with "package") or this table grows.
var snippetImports = map[string]string{
	"backup":     "github.com/platback/platback/backup",
	"dbengine":   "github.com/platback/platback/dbengine",
	"discover":   "github.com/platback/platback/discover",
	"schedule":   "github.com/platback/platback/schedule",
	"vaultcreds": "github.com/platback/platback/vaultcreds",
	"bytes":      "bytes",
	"context":    "context",
	"errors":     "errors",
	"fmt":        "fmt",
	"io":         "io",
	"json":       "encoding/json",
	"log":        "log",
	"os":         "os",
	"slog":       "log/slog",
	"strings":    "strings",
	"time":       "time",
}

// snippet is one ```go block of the README.
type snippet struct {
	line int // README line of the block's first code line
	code string
}

// goSnippets returns the ```go blocks of a Markdown text (fences at any
// indentation, as in list items).
func goSnippets(markdown string) []snippet {
	var out []snippet
	var cur *snippet
	var b strings.Builder
	for i, l := range strings.Split(markdown, "\n") {
		fence := strings.TrimSpace(l)
		switch {
		case cur == nil && fence == "```go":
			cur = &snippet{line: i + 2}
			b.Reset()
		case cur != nil && fence == "```":
			cur.code = b.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			b.WriteString(l + "\n")
		}
	}
	return out
}

// usedPackages returns the names from snippetImports that code uses as
// package qualifiers (an identifier followed by a dot, not itself after a
// dot), sorted.
func usedPackages(code string) []string {
	var s scanner.Scanner
	fset := token.NewFileSet()
	src := []byte(code)
	s.Init(fset.AddFile("snippet", -1, len(src)), src, nil, 0)
	seen := map[string]bool{}
	prev, prevLit := token.ILLEGAL, ""
	before := token.ILLEGAL
	for {
		_, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok == token.PERIOD && prev == token.IDENT && before != token.PERIOD {
			if _, ok := snippetImports[prevLit]; ok {
				seen[prevLit] = true
			}
		}
		before, prev, prevLit = prev, tok, lit
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// wrap turns a snippet into a Go file. A snippet that starts with
// "package" is a whole file and is kept as it is. Any other snippet is the
// body of func main, where ctx (a context.Context) is already declared;
// everything else it uses it must declare itself. A //line directive makes
// the compiler's messages point into README.md.
func wrap(s snippet) string {
	if strings.HasPrefix(strings.TrimSpace(s.code), "package ") {
		return fmt.Sprintf("//line README.md:%d\n%s", s.line, s.code)
	}
	imports := []string{"context"}
	for _, name := range usedPackages(s.code) {
		if path := snippetImports[name]; path != "context" {
			imports = append(imports, path)
		}
	}
	slices.Sort(imports)
	var b strings.Builder
	b.WriteString("// Code generated from README.md by internal/readme's test. DO NOT EDIT.\n\npackage main\n\nimport (\n")
	for _, path := range imports {
		fmt.Fprintf(&b, "\t%q\n", path)
	}
	b.WriteString(")\n\nfunc main() {\n\tctx := context.Background()\n\t_ = ctx\n")
	fmt.Fprintf(&b, "//line README.md:%d\n%s}\n", s.line, s.code)
	return b.String()
}

func TestSnippetExtraction(t *testing.T) {
	md := "text\n```go\na := 1\n```\n- item:\n  ```go\n  b := backup.Open\n  ```\n```sh\nls\n```\n"
	got := goSnippets(md)
	want := []snippet{{line: 3, code: "a := 1\n"}, {line: 7, code: "  b := backup.Open\n"}}
	if !slices.Equal(got, want) {
		t.Fatalf("goSnippets = %+v, want %+v", got, want)
	}
	if p := usedPackages("x := backup.Open(ctx, opts.log.Y); log.Fatal(err) // os.Exit\n"); !slices.Equal(p, []string{"backup", "log"}) {
		t.Fatalf("usedPackages = %v, want [backup log]", p)
	}
}

// TestReadmeGoSnippetsCompile builds and vets every ```go block of
// README.md (see wrap) in a throwaway module that requires this checkout.
func TestReadmeGoSnippetsCompile(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH:", err)
	}
	root, err := toolpath.Root()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	snippets := goSnippets(string(readme))
	if len(snippets) == 0 {
		t.Fatal("README.md has no ```go block: did the fences change?")
	}

	// The snippets' module: this checkout's requirements and go.sum (so its
	// dependencies resolve at the versions it is built with, from the module
	// cache), plus the checkout itself through a replace.
	dir := t.TempDir()
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	const self = "module github.com/platback/platback\n"
	if !bytes.HasPrefix(mod, []byte(self)) {
		t.Fatalf("go.mod does not start with %q", self)
	}
	gomod := "module readme.snippets\n" + string(mod[len(self):]) +
		fmt.Sprintf("\nrequire github.com/platback/platback v0.0.0\n\nreplace github.com/platback/platback => %s\n", root)
	files := map[string][]byte{"go.mod": []byte(gomod), "go.sum": sum}
	for i, s := range snippets {
		files[filepath.Join(fmt.Sprintf("snippet%02d", i+1), "main.go")] = []byte(wrap(s))
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Everything the snippets need is in the module cache already (this
	// checkout builds); nothing is downloaded. -mod=mod lets go add the
	// requirements a snippet's imports need beyond the checkout's.
	env := append(os.Environ(), "GOWORK=off", "GOPROXY=off", "GOFLAGS=-mod=mod")
	run := func(args ...string) bool {
		t.Helper()
		cmd := exec.Command(gobin, args...)
		cmd.Dir, cmd.Env = dir, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out.String())
			return false
		}
		return true
	}
	if run("build", "./...") {
		run("vet", "./...")
	}
	if t.Failed() {
		for i, s := range snippets {
			t.Logf("snippet%02d (README.md:%d) as compiled:\n%s", i+1, s.line, wrap(s))
		}
	}
}

// TestReadmeGoSnippetsAreGofmted checks that each snippet reads as gofmt
// would print it (a fragment as the body of a function).
func TestReadmeGoSnippetsAreGofmted(t *testing.T) {
	root, err := toolpath.Root()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range goSnippets(string(readme)) {
		src := s.code
		if !strings.HasPrefix(strings.TrimSpace(src), "package ") {
			var b strings.Builder
			b.WriteString("package p\n\nfunc f() {\n")
			for l := range strings.Lines(src) {
				if strings.TrimSpace(l) != "" {
					b.WriteString("\t")
				}
				b.WriteString(l)
			}
			b.WriteString("}\n")
			src = b.String()
		}
		got, err := format.Source([]byte(src))
		if err != nil {
			t.Errorf("README.md:%d: the snippet does not parse: %v", s.line, err)
			continue
		}
		if string(got) != src {
			t.Errorf("README.md:%d: the snippet is not gofmt-formatted; gofmt prints:\n%s", s.line, got)
		}
	}
}
