//go:build aspenbugs

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/sim"
)

func main() {
	paths, _ := filepath.Glob("scenarios/*.toml")
	var scs []sim.Scenario
	for _, p := range paths {
		sc, err := sim.LoadScenario(p)
		if err != nil {
			panic(err)
		}
		scs = append(scs, sc)
	}
	for _, name := range os.Args[1:] {
		b, err := bugs.Parse(name)
		if err != nil {
			panic(err)
		}
		found := false
		for seed := uint64(1); seed <= 200 && !found; seed++ {
			for _, sc := range scs {
				r := sim.Run(sc.PlantBug(b), seed, sim.Options{})
				if !r.Passed {
					v := r.Violations[0]
					if i := strings.Index(v, "\n"); i > 0 {
						v = v[:i]
					}
					fmt.Printf("%s\t%s\t%d\t%s\n", name, sc.Name, seed, v)
					found = true
					break
				}
			}
		}
		if !found {
			fmt.Printf("%s\tNOT CAUGHT in 1..200\n", name)
		}
	}
}
