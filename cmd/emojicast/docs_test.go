package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

// The docs in docs/ are the contract users get, so these tests pin them to
// the code where that is cheap: a flag, an error code or a metric added
// without a line in the docs fails here, and so does a doc row naming one
// that no longer exists.

// repoRoot is the repository, seen from this package's directory.
const repoRoot = "../.."

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// helpFlag matches a flag in the --help of a command (see newFlagSet).
var helpFlag = regexp.MustCompile(`(?m)^  --([a-z0-9-]+) \(EMOJICAST_`)

// TestDocsListEveryFlag checks that docs/operations.md lists every flag of
// every command of the built binary, and that its configuration table
// lists no flag the node commands lack.
func TestDocsListEveryFlag(t *testing.T) {
	bin := binary(t)
	doc := readDoc(t, "docs/operations.md")
	nodeFlags := map[string]bool{}
	for _, cmd := range []string{"serve", "push", "pull", "watch", "send", "comment"} {
		out, err := exec.Command(bin, cmd, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("emojicast %s --help: %v\n%s", cmd, err, out)
		}
		names := helpFlag.FindAllStringSubmatch(string(out), -1)
		if len(names) == 0 {
			t.Fatalf("emojicast %s --help lists no flags; has its format changed?\n%s", cmd, out)
		}
		for _, m := range names {
			name := m[1]
			if cmd == "serve" || cmd == "push" || cmd == "pull" {
				nodeFlags[name] = true
			}
			spelled := "`--" + name + "`"
			if len(name) == 1 {
				spelled = "`-" + name + "`"
			}
			if !strings.Contains(doc, spelled) {
				t.Errorf("flag %s of emojicast %s is not in docs/operations.md", spelled, cmd)
			}
		}
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)` \\|").FindAllStringSubmatch(doc, -1) {
		if !nodeFlags[m[1]] {
			t.Errorf("docs/operations.md's configuration table lists --%s, which serve, push and pull do not have", m[1])
		}
	}
}

// helpDefault matches a flag and the line under it in --help; the line
// ends with the default, if the flag has one.
var helpDefault = regexp.MustCompile(`(?m)^  --([a-z0-9-]+) \(EMOJICAST_[A-Z0-9_]+\)\n(.*)$`)

// TestDocsFlagDefaults checks that each default in docs/operations.md's
// configuration table is the one the built binary has: the packages
// export their defaults and the flags use them, and the docs follow.
func TestDocsFlagDefaults(t *testing.T) {
	defaults := map[string]string{}
	for _, cmd := range []string{"serve", "push", "pull"} {
		out, err := exec.Command(binary(t), cmd, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("emojicast %s --help: %v\n%s", cmd, err, out)
		}
		for _, m := range helpDefault.FindAllStringSubmatch(string(out), -1) {
			line := m[2]
			if i := strings.LastIndex(line, " (default "); i >= 0 && strings.HasSuffix(line, ")") {
				defaults[m[1]] = line[i+len(" (default ") : len(line)-1]
			}
		}
	}
	doc := readDoc(t, "docs/operations.md")
	rows := regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)` \\| `([^`]*)`").FindAllStringSubmatch(doc, -1)
	checked := 0
	for _, m := range rows {
		name, documented := m[1], m[2]
		if strings.HasPrefix(documented, "--") {
			continue // a default taken from another flag
		}
		checked++
		if got, ok := defaults[name]; !ok {
			t.Errorf("docs/operations.md gives --%s the default %q; the binary has none", name, documented)
		} else if got != documented && !sameDuration(got, documented) {
			t.Errorf("docs/operations.md gives --%s the default %q; the binary has %q", name, documented, got)
		}
	}
	if checked < 30 {
		t.Fatalf("checked %d defaults of docs/operations.md; has its table changed?", checked)
	}
}

// sameDuration reports whether a and b are durations, spelled alike or
// not ("12h", "12h0m0s"), of the same length.
func sameDuration(a, b string) bool {
	da, errA := time.ParseDuration(a)
	db, errB := time.ParseDuration(b)
	return errA == nil && errB == nil && da == db
}

// TestDocsListEveryErrorCode checks that the errors table of docs/api.md
// has every code an api.NewError call in the code can answer with, and no
// other.
func TestDocsListEveryErrorCode(t *testing.T) {
	codes := map[string]bool{}
	walkGo(t, func(n ast.Node) {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 2 || calleeName(call.Fun) != "NewError" {
			return
		}
		if code, ok := stringLit(call.Args[1]); ok {
			codes[code] = true
		} else {
			t.Errorf("a NewError call's code is not a string literal; this test cannot check it is documented")
		}
	})
	if len(codes) < 10 {
		t.Fatalf("found only %d error codes in the code; is the scan broken?", len(codes))
	}
	doc := readDoc(t, "docs/api.md")
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| [0-9]{3} \\| `([a-z_]+)` \\|").FindAllStringSubmatch(doc, -1) {
		rows[m[1]] = true
		if !codes[m[1]] {
			t.Errorf("docs/api.md's errors table lists %s, which no code answers", m[1])
		}
	}
	for code := range codes {
		if !rows[code] {
			t.Errorf("error code %s is not in docs/api.md's errors table", code)
		}
	}
}

// TestDocsListEveryMetric checks that docs/operations.md's metrics table
// has every metric the code registers, and no other.
func TestDocsListEveryMetric(t *testing.T) {
	names := map[string]bool{}
	walkGo(t, func(n ast.Node) {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return
		}
		sel, ok := lit.Type.(*ast.SelectorExpr)
		if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
			return
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
			return
		}
		for _, e := range lit.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if key, _ := kv.Key.(*ast.Ident); !ok || key == nil || key.Name != "Name" {
				continue
			}
			if name, ok := stringLit(kv.Value); ok {
				names[name] = true
			} else {
				t.Errorf("a metric's Name is not a string literal; this test cannot check it is documented")
			}
		}
	})
	if len(names) < 10 {
		t.Fatalf("found only %d metrics in the code; is the scan broken?", len(names))
	}
	doc := readDoc(t, "docs/operations.md")
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(emojicast_[a-z_]+)` \\|").FindAllStringSubmatch(doc, -1) {
		rows[m[1]] = true
		if !names[m[1]] {
			t.Errorf("docs/operations.md's metrics table lists %s, which the code does not register", m[1])
		}
	}
	for name := range names {
		if !rows[name] {
			t.Errorf("metric %s is not in docs/operations.md's metrics table", name)
		}
	}
}

// mdLink matches a Markdown link's target.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocsLinksResolve checks that the README, docs/ and benchmarks/README
// link only to files in the repository, and to headings that exist.
func TestDocsLinksResolve(t *testing.T) {
	files := []string{"README.md", "benchmarks/README.md"}
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(docs) < 3 {
		t.Fatalf("docs/*.md: %v, %d files", err, len(docs))
	}
	for _, d := range docs {
		rel, _ := filepath.Rel(repoRoot, d)
		files = append(files, rel)
	}
	for _, file := range files {
		text := readDoc(t, file)
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			linked := file
			if path != "" {
				linked = filepath.Join(filepath.Dir(file), path)
				if rel, err := filepath.Rel(".", linked); err != nil || strings.HasPrefix(rel, "..") {
					t.Errorf("%s links to %s, outside the repository", file, target)
					continue
				}
				if _, err := os.Stat(filepath.Join(repoRoot, linked)); err != nil {
					t.Errorf("%s links to %s, which does not exist", file, target)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(linked, ".md") && !slices.Contains(headingSlugs(readDoc(t, linked)), anchor) {
				t.Errorf("%s links to %s, but %s has no such heading", file, target, linked)
			}
		}
	}
}

// headingSlugs returns the anchors GitHub gives a Markdown file's headings.
func headingSlugs(text string) []string {
	var slugs []string
	inCode := false
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(heading) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		slugs = append(slugs, b.String())
	}
	return slugs
}

// walkGo calls visit for every node of every non-test Go file of the
// repository.
func walkGo(t *testing.T, visit func(ast.Node)) {
	t.Helper()
	fset := token.NewFileSet()
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != repoRoot {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool { visit(n); return true })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// calleeName is the name a call calls: NewError for api.NewError(...).
func calleeName(fun ast.Expr) string {
	switch f := fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// TestDocsNameNoMachinePath checks that the docs' commands run on a user's
// machine as written: no path that exists only on the machine they were
// first run on.
func TestDocsNameNoMachinePath(t *testing.T) {
	files := []string{"README.md", "benchmarks/README.md"}
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(docs) < 3 {
		t.Fatalf("docs/*.md: %v, %d files", err, len(docs))
	}
	for _, d := range docs {
		rel, _ := filepath.Rel(repoRoot, d)
		files = append(files, rel)
	}
	for _, file := range files {
		for i, line := range strings.Split(readDoc(t, file), "\n") {
			if strings.Contains(line, "/work/") {
				t.Errorf("%s:%d names a path of one machine: %s", file, i+1, strings.TrimSpace(line))
			}
		}
	}
}
