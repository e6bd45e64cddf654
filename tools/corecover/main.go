// Command corecover reports how much of Aspen's core a coverage profile
// reached: the share of core/ statements per package and in total, the core
// functions no run reached, and those reached only in part.
//
// `make sweep-coverage` feeds it the profile of a seeded sweep:
//
//	go build -cover -coverpkg=./core/...,./cmd/aspen -o bin/aspen-cover ./cmd/aspen
//	GOCOVERDIR=D bin/aspen-cover sim sweep --scenario scenarios --seeds 100
//	go tool covdata textfmt -i=D -o=profile.txt
//	go run ./tools/corecover -profile profile.txt
//
// What is not counted, and why (the report prints how much each rule drops):
//
//   - Failure branches: a block ({...}, a case or a function body) whose only
//     statement is panic(...), assert.That(false, ...) or assert.Fail*(...).
//     Such a block runs only when an invariant is already broken, which fails
//     the run; a passing sweep reaches none of them by design. A block that
//     does anything else before it panics still counts.
//   - Planted-bug branches: the body of an if whose condition is
//     cfg.Bugs.Has(bugs.X), alone or joined by &&. Without -tags aspenbugs it
//     is constantly false and the compiler drops the body.
//   - The packages core/assert and core/bugs (shown, not totalled): the first
//     is the invariant helper itself, the second names planted defects.
//   - _test.go files, and files a build without tags leaves out; neither is in
//     the binary, so neither is in the profile.
//
// Everything else counts, error paths included: an unreached decoder error is
// a path the simulator never took.
//
// Exit status: 0, or 1 if the total is below -min, or 2 if the profile or the
// sources cannot be read or do not match.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// measuredTree is the folder, under the module root, whose packages are measured.
const measuredTree = "core"

func main() {
	profile := flag.String("profile", "", "the text coverage profile `FILE` (go tool covdata textfmt's output; required)")
	root := flag.String("root", ".", "the module root `DIR`, holding go.mod and core/")
	top := flag.Int("top", 15, "list the `N` functions reached in part that miss most statements")
	minPct := flag.Float64("min", 0, "exit 1 if the total is below `PERCENT`")
	flag.Parse()
	if *profile == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: corecover -profile FILE [-root DIR] [-top N] [-min PERCENT]")
		os.Exit(2)
	}
	r, err := load(*root, *profile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "corecover:", err)
		os.Exit(2)
	}
	if err := r.write(os.Stdout, max(0, *top)); err != nil {
		fmt.Fprintln(os.Stderr, "corecover:", err)
		os.Exit(2)
	}
	if pct := r.total.percent(); pct < *minPct {
		fmt.Fprintf(os.Stderr, "corecover: %.1f%% is below the %.1f%% target\n", pct, *minPct)
		os.Exit(1)
	}
}

// load reads the profile and the sources under root.
func load(root, profilePath string) (report, error) {
	module, err := modulePath(root)
	if err != nil {
		return report{}, err
	}
	pkgs, err := loadTree(root, measuredTree)
	if err != nil {
		return report{}, err
	}
	f, err := os.Open(profilePath)
	if err != nil {
		return report{}, err
	}
	defer f.Close()
	return measureProfile(module, pkgs, f)
}

func measureProfile(module string, pkgs []pkgSource, r io.Reader) (report, error) {
	blocks, err := parseProfile(r)
	if err != nil {
		return report{}, err
	}
	return measure(module, pkgs, blocks)
}
