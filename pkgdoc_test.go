package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPackageDoc checks that every package has exactly one package comment and that it starts the
// way go doc expects ("Package name …", or "Command name …" for main). Modelled on Tailscale's
// pkgdoc_test.go; stricter, because two package comments are merged by go doc in file order and
// read as one garbled paragraph.
func TestPackageDoc(t *testing.T) {
	require := require.New(t)
	files, err := sourceFiles(".")
	require.NoError(err)
	require.NotEmpty(files)

	type pkgInfo struct {
		name     string
		docFiles []*sourceFile
	}
	pkgs := map[string]*pkgInfo{}
	for i := range files {
		f := &files[i]
		p := pkgs[f.dir]
		if p == nil {
			p = &pkgInfo{name: f.ast.Name.Name}
			pkgs[f.dir] = p
		}
		if f.ast.Doc != nil {
			p.docFiles = append(p.docFiles, f)
		}
	}

	for _, dir := range slices.Sorted(maps.Keys(pkgs)) {
		p := pkgs[dir]
		switch len(p.docFiles) {
		case 0:
			t.Errorf("%s: package %s has no package comment; add \"// Package %s …\" (in doc.go if the package is big)",
				dir, p.name, p.name)
		case 1:
			want := "Package " + p.name + " "
			if p.name == "main" {
				want = "Command " // go doc's convention for commands
			}
			if text := p.docFiles[0].ast.Doc.Text(); !strings.HasPrefix(text, want) {
				t.Errorf("%s: package comment should start with %q, starts with %q", p.docFiles[0].path, want, firstLine(text))
			}
		default:
			var paths []string
			for _, f := range p.docFiles {
				paths = append(paths, f.path)
			}
			t.Errorf("%s: package %s has a package comment in %d files, want one: %s",
				dir, p.name, len(paths), strings.Join(paths, ", "))
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// sourceFile is a non-test Go file of this module, parsed up to its imports.
type sourceFile struct {
	path string // slash-separated, relative to the module root
	dir  string // its package directory, "." for the root
	ast  *ast.File
}

// sourceFiles parses every non-test .go file of the module rooted at root, skipping what the go
// tool skips (testdata, names starting with "." or "_", vendor, nested modules) and files that
// are never built (//go:build ignore).
func sourceFiles(root string) ([]sourceFile, error) {
	var out []sourceFile
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") ||
			strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		if ignored(f) {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		dir := filepath.ToSlash(filepath.Dir(rel))
		out = append(out, sourceFile{path: rel, dir: dir, ast: f})
		return nil
	})
	return out, err
}

// ignored reports whether f carries the //go:build ignore constraint (a generator, not a package file).
func ignored(f *ast.File) bool {
	for _, g := range f.Comments {
		if g.Pos() >= f.Package {
			break
		}
		for _, c := range g.List {
			if strings.TrimSpace(c.Text) == "//go:build ignore" {
				return true
			}
		}
	}
	return false
}
