// Package core_test enforces that core stays a pure step machine: no I/O, no
// wall clock, no locks, no global randomness, no goroutines.
package core_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports are packages whose use means the core touches the world.
var forbiddenImports = map[string]string{
	"os":           "file and process I/O",
	"os/exec":      "starting processes",
	"os/signal":    "signals",
	"net":          "network I/O",
	"net/http":     "network I/O",
	"sync":         "locks (the core is single-threaded by contract)",
	"sync/atomic":  "atomics (the core is single-threaded by contract)",
	"math/rand":    "global randomness",
	"math/rand/v2": "global randomness (inject a seeded source instead)",
	"crypto/rand":  "hidden randomness",
	"io/ioutil":    "file I/O",
	"syscall":      "system calls",
	"unsafe":       "memory tricks",
	"log":          "writing to stderr",
}

// forbiddenTimeCalls read or wait on the wall clock; time values as types are fine.
var forbiddenTimeCalls = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true,
}

func TestCoreIsPure(t *testing.T) {
	files := coreFiles(t)
	if len(files) < 5 {
		t.Fatalf("found only %d core files; is the walk broken?", len(files))
	}
	for _, path := range files {
		for _, breach := range breaches(t, path) {
			t.Errorf("%s", breach)
		}
	}
}

// TestPurityCheckCatchesBreaches proves the check can fail.
func TestPurityCheckCatchesBreaches(t *testing.T) {
	src := `package bad
import ("os"; "sync"; "time")
var mu sync.Mutex
func f() { go func() {}(); _ = time.Now(); os.Exit(1) }`
	got := breachesIn(t, "bad.go", src)
	if len(got) != 4 {
		t.Fatalf("got %d breaches %q, want 4 (os, sync, time.Now, go statement)", len(got), got)
	}
}

func coreFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func breaches(t *testing.T, path string) []string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return breachesIn(t, path, string(src))
}

func breachesIn(t *testing.T, path, src string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	var out []string
	timeName := ""
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if why, bad := forbiddenImports[p]; bad {
			out = append(out, fmt.Sprintf("%s imports %q: %s", fset.Position(imp.Pos()), p, why))
		}
		if p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			out = append(out, fmt.Sprintf("%s starts a goroutine", fset.Position(n.Pos())))
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok && timeName != "" && id.Name == timeName && forbiddenTimeCalls[n.Sel.Name] {
				out = append(out, fmt.Sprintf("%s calls time.%s: time is an input", fset.Position(n.Pos()), n.Sel.Name))
			}
		}
		return true
	})
	return out
}
