package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// tinyRoot is a module shaped like Aspen's core, with one example of each
// rule: see testdata/tiny/core/calc/calc.go.
const tinyRoot = "testdata/tiny"

// tinyBlocks is the profile `go test -coverpkg=./core/...` wrote for
// testdata/tiny, counts left out: each case says which blocks ran.
var tinyBlocks = []string{
	"core/assert/assert.go:5.34,6.11 1",
	"core/assert/assert.go:6.11,7.13 1", // failure branch
	"core/bugs/bugs.go:14.30,14.54 1",
	"core/calc/calc.go:10.24,12.2 1",  // Add
	"core/calc/calc.go:15.18,18.2 2",  // Never
	"core/calc/calc.go:21.23,22.11 1", // Check
	"core/calc/calc.go:22.11,23.20 1", // failure branch: if body
	"core/calc/calc.go:25.2,25.11 1",
	"core/calc/calc.go:26.9,27.11 1",
	"core/calc/calc.go:28.10,29.19 1", // failure branch: default case
	"core/calc/calc.go:34.13,34.45 1", // failure branch: Fail's body
	"core/calc/calc.go:37.23,38.11 1", // Noisy
	"core/calc/calc.go:38.11,40.19 2", // counts: does more than panic
	"core/calc/calc.go:42.2,42.10 1",
	"core/calc/calc.go:49.32,50.38 1", // (*T).Planted
	"core/calc/calc.go:50.38,52.3 1",  // planted-bug branch
	"core/calc/calc.go:53.2,53.38 1",
	"core/calc/calc.go:53.38,55.3 1", // counts: || is not planted-only
	"core/calc/calc.go:56.2,56.10 1",
}

// tinyProfile writes a profile in which the blocks starting at the given
// "file:line.col" positions ran; "all" runs every block. The assert block is
// listed twice, once reached, as merged profiles list it.
func tinyProfile(reached ...string) string {
	var b strings.Builder
	b.WriteString("mode: set\n")
	for _, blk := range tinyBlocks {
		start, _, _ := strings.Cut(blk, ",")
		count := 0
		if slices.Contains(reached, start) || slices.Contains(reached, "all") {
			count = 1
		}
		fmt.Fprintf(&b, "example.com/tiny/%s %d\n", blk, count)
	}
	b.WriteString("example.com/tiny/core/assert/assert.go:5.34,6.11 1 1\n")
	return b.String()
}

func TestReport(t *testing.T) {
	pkgs, err := loadTree(tinyRoot, measuredTree)
	if err != nil {
		t.Fatal(err)
	}
	module, err := modulePath(tinyRoot)
	if err != nil {
		t.Fatal(err)
	}
	if module != "example.com/tiny" {
		t.Fatalf("module: got %q, want example.com/tiny", module)
	}
	allNever := []string{"Add", "Never", "Check", "Noisy", "(*T).Planted"}
	tests := []struct {
		name        string
		reached     []string
		wantReached int
		wantNever   []string
		wantPart    []string
		wantSummary string
	}{
		{name: "nothing ran", wantReached: 0, wantNever: allNever,
			wantSummary: "core coverage: 0.0% of 14 statements (assert failure branches excluded)"},
		{name: "only excluded blocks ran", wantReached: 0, wantNever: allNever,
			reached: []string{"core/calc/calc.go:22.11", "core/calc/calc.go:28.10", "core/calc/calc.go:34.13", "core/calc/calc.go:50.38"}},
		{name: "a test's run", wantReached: 8, wantNever: []string{"Never", "Noisy"},
			reached: []string{"core/calc/calc.go:10.24", "core/calc/calc.go:21.23", "core/calc/calc.go:25.2", "core/calc/calc.go:26.9",
				"core/calc/calc.go:49.32", "core/calc/calc.go:53.2", "core/calc/calc.go:53.38", "core/calc/calc.go:56.2"},
			wantSummary: "core coverage: 57.1% of 14 statements (assert failure branches excluded)"},
		{name: "part of two", wantReached: 3, wantNever: []string{"Add", "Never", "Check"}, wantPart: []string{"Noisy", "(*T).Planted"},
			reached: []string{"core/calc/calc.go:37.23", "core/calc/calc.go:42.2", "core/calc/calc.go:49.32"}},
		{name: "everything ran", reached: []string{"all"}, wantReached: 14,
			wantSummary: "core coverage: 100.0% of 14 statements (assert failure branches excluded)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := measureProfile(module, pkgs, strings.NewReader(tinyProfile(tc.reached...)))
			if err != nil {
				t.Fatal(err)
			}
			if got := r.total; got.stmts != 14 || got.reached != tc.wantReached {
				t.Errorf("total: got %d of %d reached, want %d of 14", got.reached, got.stmts, tc.wantReached)
			}
			if got := r.dropped[failureBranch]; got.stmts != 3 || r.regions[failureBranch] != 3 {
				t.Errorf("failure branches dropped: got %d statements in %d blocks, want 3 in 3", got.stmts, r.regions[failureBranch])
			}
			if got := r.dropped[plantedBug]; got.stmts != 1 || r.regions[plantedBug] != 1 {
				t.Errorf("planted-bug branches dropped: got %d statements in %d blocks, want 1 in 1", got.stmts, r.regions[plantedBug])
			}
			never, part := r.split()
			if got := names(never); !slices.Equal(got, tc.wantNever) {
				t.Errorf("never reached: got %v, want %v", got, tc.wantNever)
			}
			if got := names(part); !slices.Equal(got, tc.wantPart) {
				t.Errorf("reached in part: got %v, want %v", got, tc.wantPart)
			}
			if tc.wantSummary != "" && r.summary() != tc.wantSummary {
				t.Errorf("summary: got %q, want %q", r.summary(), tc.wantSummary)
			}
		})
	}
}

func names(funcs []funcReport) []string {
	var out []string
	for _, f := range funcs {
		out = append(out, f.name)
	}
	return out
}

func TestPackages(t *testing.T) {
	pkgs, err := loadTree(tinyRoot, measuredTree)
	if err != nil {
		t.Fatal(err)
	}
	r, err := measureProfile("example.com/tiny", pkgs, strings.NewReader(tinyProfile("all")))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range r.pkgs {
		got = append(got, fmt.Sprintf("%s %d/%d excluded=%t", p.rel, p.reached, p.stmts, p.excluded != ""))
	}
	want := []string{
		"core/assert 1/1 excluded=true", // the failure branch is dropped here too
		"core/bugs 1/1 excluded=true",
		"core/calc 14/14 excluded=false",
		"core/types 0/0 excluded=false", // declarations only: absent from the profile, which is fine
	}
	if !slices.Equal(got, want) {
		t.Errorf("packages:\ngot  %q\nwant %q", got, want)
	}
}

func TestWrite(t *testing.T) {
	pkgs, err := loadTree(tinyRoot, measuredTree)
	if err != nil {
		t.Fatal(err)
	}
	r, err := measureProfile("example.com/tiny", pkgs, strings.NewReader(tinyProfile("core/calc/calc.go:37.23")))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := r.write(&out, 1); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"core/calc/calc.go:15  Never",
		"2 statements",
		"core/calc/calc.go:37  Noisy  3 of 4 statements missed",
		"3 statements in 3 failure branches",
		"1 statement in 1 planted-bug branch",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if got, want := lines[len(lines)-1], "core coverage: 7.1% of 14 statements (assert failure branches excluded)"; got != want {
		t.Errorf("last line: got %q, want %q", got, want)
	}
}

func TestProfileErrors(t *testing.T) {
	pkgs, err := loadTree(tinyRoot, measuredTree)
	if err != nil {
		t.Fatal(err)
	}
	withoutCalc := "mode: set\nexample.com/tiny/core/assert/assert.go:5.34,6.11 1 1\nexample.com/tiny/core/bugs/bugs.go:14.30,14.54 1 1\n"
	tests := []struct {
		name, profile, wantErr string
	}{
		{"empty", "", "profile is empty"},
		{"no mode line", "example.com/tiny/core/bugs/bugs.go:14.30,14.54 1 1\n", "want \"mode:"},
		{"bad span", "mode: set\nexample.com/tiny/core/bugs/bugs.go:14.30 1 1\n", "is not l0.c0,l1.c1"},
		{"bad count", "mode: set\nexample.com/tiny/core/bugs/bugs.go:14.30,14.54 1 x\n", "hit count"},
		{"stale file", tinyProfile() + "example.com/tiny/core/calc/gone.go:1.1,2.2 1 1\n", "is it stale?"},
		{"package not built with coverage", withoutCalc, "holds nothing of core/calc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := measureProfile("example.com/tiny", pkgs, strings.NewReader(tc.profile))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
