//go:build aspenbugs

// Command plantedsweep finds, for each planted bug, the first seed and
// scenario of a sweep of the shipped scenarios that catches it: seeds in
// order, every scenario at each seed, stopping at the first failing run. It
// prints one tab-separated line per bug (bug, scenario, seed, first
// violation) for the table in DESIGN.md. It needs the aspenbugs tag:
//
//	go run -tags aspenbugs ./tools/plantedsweep [-seeds 200] [bug ...]
//
// With no bugs named it tries every planted bug.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/sim"
)

func main() {
	seeds := flag.Uint64("seeds", 200, "give up on a bug after this many seeds")
	dir := flag.String("scenarios", "scenarios", "the folder of shipped scenarios")
	flag.Parse()
	scenarios, err := load(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "plantedsweep:", err)
		os.Exit(2)
	}
	planted := bugs.All()
	if flag.NArg() > 0 {
		planted = planted[:0]
		for _, name := range flag.Args() {
			b, err := bugs.Parse(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "plantedsweep:", err)
				os.Exit(2)
			}
			planted = append(planted, b)
		}
	}
	missed := 0
	for _, b := range planted {
		if !firstCatch(scenarios, b, *seeds) {
			missed++
		}
	}
	if missed > 0 {
		os.Exit(1)
	}
}

func load(dir string) ([]sim.Scenario, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("no scenarios in %s (%v)", dir, err)
	}
	var out []sim.Scenario
	for _, p := range paths {
		sc, err := sim.LoadScenario(p)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// firstCatch runs seed after seed of every scenario with b planted and
// prints the first failing run.
func firstCatch(scenarios []sim.Scenario, b bugs.Bug, seeds uint64) bool {
	for seed := uint64(1); seed <= seeds; seed++ {
		for _, sc := range scenarios {
			r := sim.Run(sc.PlantBug(b), seed, sim.Options{})
			if r.Passed {
				continue
			}
			v, _, _ := strings.Cut(r.Violations[0], "\n")
			fmt.Printf("%s\t%s\t%d\t%s\n", b, sc.Name, seed, v)
			return true
		}
	}
	fmt.Printf("%s\tnot caught in seeds 1..%d\n", b, seeds)
	return false
}
