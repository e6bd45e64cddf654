package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// exclusion says why a block of statements is kept out of the totals.
type exclusion int

const (
	// failureBranch is a block whose only statement stops the replica on a
	// broken invariant: panic(...), assert.That(false, ...) or assert.Fail*(...).
	// Reaching one means the run already failed, so a sweep that passes never
	// reaches any, by design.
	failureBranch exclusion = iota + 1
	// plantedBug is the body of `if cfg.Bugs.Has(bugs.X) {...}` (alone or
	// joined with &&): a defect planted by tests. Without -tags aspenbugs the
	// condition is constantly false and the compiler drops the body, so the
	// production binary does not hold it.
	plantedBug
)

// excludedPackages are measured and shown but kept out of the totals.
var excludedPackages = map[string]string{
	"core/assert": "the invariant helper: its one branch is the failure panic",
	"core/bugs":   "names the defects tests plant; a sweep without --plant plants none",
}

// unlinkedReason marks a package no binary links yet, so no profile can hold
// it. Once something imports it, the profile does and the tool says the entry
// is stale: the package must then count.
const unlinkedReason = "not linked into aspen yet (nothing imports it)"

// region is a span of a source file whose statements are excluded.
type region struct {
	from, to pos
	why      exclusion
}

// funcSpan is one function declaration.
type funcSpan struct {
	name     string
	line     int
	from, to pos
}

// fileSource is what the report needs of one source file.
type fileSource struct {
	rel      string // slash-separated, from the module root: core/node/node.go
	funcs    []funcSpan
	excluded []region
}

// pkgSource is one package of the measured tree as the default build (no
// tags, this GOOS and GOARCH) compiles it; _test.go files are not part of it.
type pkgSource struct {
	rel   string // core/node
	files []fileSource
}

// loadTree parses every package under root/tree. Folders named testdata, or
// starting with . or _, are skipped, as the go command skips them.
func loadTree(root, tree string) ([]pkgSource, error) {
	var pkgs []pkgSource
	err := filepath.WalkDir(filepath.Join(root, tree), func(dir string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return filepath.SkipDir
		}
		p, ok, err := loadPackage(root, dir)
		if ok {
			pkgs = append(pkgs, p)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read sources: %w", err)
	}
	return pkgs, nil
}

func loadPackage(root, dir string) (pkgSource, bool, error) {
	bp, err := build.Default.ImportDir(dir, 0)
	if _, none := errors.AsType[*build.NoGoError](err); none {
		return pkgSource{}, false, nil
	}
	if err != nil {
		return pkgSource{}, false, err
	}
	if len(bp.GoFiles) == 0 { // tests only, like core/purity_test.go
		return pkgSource{}, false, nil
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return pkgSource{}, false, err
	}
	p := pkgSource{rel: filepath.ToSlash(rel)}
	for _, name := range bp.GoFiles {
		f, err := scanFile(filepath.Join(dir, name))
		if err != nil {
			return pkgSource{}, false, err
		}
		f.rel = p.rel + "/" + name
		p.files = append(p.files, f)
	}
	return p, true, nil
}

// scanFile finds a file's functions and excluded regions.
func scanFile(path string) (fileSource, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return fileSource{}, err
	}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		return fileSource{}, err
	}
	s := scanner{fset: fset, assert: importName(file, "core/assert"), bugs: importName(file, "core/bugs")}
	ast.Inspect(file, s.visit)
	return s.out, nil
}

// scanner walks one file's syntax tree.
type scanner struct {
	fset         *token.FileSet
	assert, bugs string // the names the file imports core/assert and core/bugs under; "" if it does not
	out          fileSource
}

func (s *scanner) visit(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.FuncDecl:
		if n.Body != nil {
			s.out.funcs = append(s.out.funcs, funcSpan{
				name: funcName(n), line: s.at(n.Pos()).line, from: s.at(n.Pos()), to: s.at(n.End()),
			})
		}
	case *ast.BlockStmt:
		s.excludeIf(s.failureOnly(n.List), n.Lbrace, n.End(), failureBranch)
	case *ast.CaseClause:
		s.excludeIf(s.failureOnly(n.Body), n.Colon, n.End(), failureBranch)
	case *ast.CommClause:
		s.excludeIf(s.failureOnly(n.Body), n.Colon, n.End(), failureBranch)
	case *ast.IfStmt:
		s.excludeIf(s.plantedOnly(n.Cond), n.Body.Lbrace, n.Body.End(), plantedBug)
	}
	return true
}

func (s *scanner) excludeIf(cond bool, from, to token.Pos, why exclusion) {
	if cond {
		s.out.excluded = append(s.out.excluded, region{from: s.at(from), to: s.at(to), why: why})
	}
}

func (s *scanner) at(p token.Pos) pos {
	q := s.fset.Position(p)
	return pos{q.Line, q.Column}
}

// failureOnly reports whether a block's statements are exactly one call that
// stops the replica.
func (s *scanner) failureOnly(stmts []ast.Stmt) bool {
	if len(stmts) != 1 {
		return false
	}
	es, ok := stmts[0].(*ast.ExprStmt)
	if !ok {
		return false
	}
	call, ok := es.X.(*ast.CallExpr)
	if !ok {
		return false
	}
	switch fn := call.Fun.(type) {
	case *ast.Ident:
		return fn.Name == "panic"
	case *ast.SelectorExpr:
		pkg, ok := fn.X.(*ast.Ident)
		if !ok || s.assert == "" || pkg.Name != s.assert {
			return false
		}
		if strings.HasPrefix(fn.Sel.Name, "Fail") {
			return true
		}
		return fn.Sel.Name == "That" && len(call.Args) > 0 && isIdent(call.Args[0], "false")
	}
	return false
}

// plantedOnly reports whether cond can be true only when a bug is planted:
// it is bugSet.Has(bugs.X), or an && with such a call on either side.
func (s *scanner) plantedOnly(cond ast.Expr) bool {
	switch e := ast.Unparen(cond).(type) {
	case *ast.BinaryExpr:
		return e.Op == token.LAND && (s.plantedOnly(e.X) || s.plantedOnly(e.Y))
	case *ast.CallExpr:
		sel, ok := e.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Has" || len(e.Args) != 1 || s.bugs == "" {
			return false
		}
		arg, ok := e.Args[0].(*ast.SelectorExpr)
		return ok && isIdent(arg.X, s.bugs)
	}
	return false
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// importName returns the name under which file imports the package whose
// path ends in /suffix, or "" if it does not import it.
func importName(file *ast.File, suffix string) string {
	for _, spec := range file.Imports {
		path, err := strconv.Unquote(spec.Path.Value)
		if err != nil || !strings.HasSuffix(path, "/"+suffix) {
			continue
		}
		if spec.Name != nil {
			return spec.Name.Name
		}
		return path[strings.LastIndexByte(path, '/')+1:]
	}
	return ""
}

// funcName names a function as Go does in stack traces: F, T.M or (*T).M.
func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	recv := typeName(d.Recv.List[0].Type)
	if strings.HasPrefix(recv, "*") {
		recv = "(" + recv + ")"
	}
	return recv + "." + d.Name.Name
}

func typeName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return "*" + typeName(e.X)
	case *ast.Ident:
		return e.Name
	case *ast.IndexExpr:
		return typeName(e.X)
	case *ast.IndexListExpr:
		return typeName(e.X)
	case *ast.ParenExpr:
		return typeName(e.X)
	}
	return "?"
}

// modulePath reads the module path from root/go.mod.
func modulePath(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("module path: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			if path, err := strconv.Unquote(strings.TrimSpace(rest)); err == nil {
				return path, nil
			}
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("module path: no module line in %s", filepath.Join(root, "go.mod"))
}
