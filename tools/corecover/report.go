package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// tally counts statements, and those of them a run reached.
type tally struct {
	stmts, reached int
}

func (t *tally) add(b block) {
	t.stmts += b.stmts
	if b.reached {
		t.reached += b.stmts
	}
}

func (t tally) missed() int { return t.stmts - t.reached }

func (t tally) percent() float64 {
	if t.stmts == 0 {
		return 100
	}
	return 100 * float64(t.reached) / float64(t.stmts)
}

// funcReport is one function's counted statements.
type funcReport struct {
	file string
	line int
	name string
	tally
}

// pkgReport is one package's counted statements.
type pkgReport struct {
	rel      string
	excluded string // why the package stays out of the totals; "" if it counts
	tally
}

// report is what a profile says of the measured tree.
type report struct {
	pkgs    []pkgReport
	funcs   []funcReport // functions of counted packages that hold counted statements, by file and line
	total   tally
	dropped [plantedBug + 1]tally // statements excluded inside counted packages, by reason
	regions [plantedBug + 1]int   // profile blocks excluded inside counted packages, by reason
}

// measure matches the profile's blocks with the sources of the measured tree.
// It fails if the profile names a file the tree does not hold (a stale
// profile) or lacks a package that has functions (one not built with
// -coverpkg), since either would make the figure wrong without saying so.
func measure(module string, pkgs []pkgSource, profile map[string][]block) (report, error) {
	prefix := module + "/"
	known := map[string]bool{}
	for _, p := range pkgs {
		for _, f := range p.files {
			known[prefix+f.rel] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(profile)) {
		if strings.HasPrefix(name, prefix+measuredTree+"/") && !known[name] {
			return report{}, fmt.Errorf("the profile names %s, which the sources do not hold: is it stale?", name)
		}
	}
	var r report
	for _, p := range pkgs {
		pr, funcs, err := r.measurePackage(prefix, p, profile)
		if err != nil {
			return report{}, err
		}
		r.pkgs = append(r.pkgs, pr)
		if pr.excluded == "" {
			r.total.stmts += pr.stmts
			r.total.reached += pr.reached
			r.funcs = append(r.funcs, funcs...)
		}
	}
	return r, nil
}

func (r *report) measurePackage(prefix string, p pkgSource, profile map[string][]block) (pkgReport, []funcReport, error) {
	pr := pkgReport{rel: p.rel, excluded: excludedPackages[p.rel]}
	var funcs []funcReport
	inProfile, hasFuncs := false, false
	for _, f := range p.files {
		blocks, ok := profile[prefix+f.rel]
		inProfile = inProfile || ok
		hasFuncs = hasFuncs || len(f.funcs) > 0
		fr := make([]funcReport, len(f.funcs))
		for i, fn := range f.funcs {
			fr[i] = funcReport{file: f.rel, line: fn.line, name: fn.name}
		}
		for _, b := range blocks {
			if why := f.exclusionOf(b); why != 0 {
				if pr.excluded == "" {
					r.dropped[why].add(b)
					r.regions[why]++
				}
				continue
			}
			pr.add(b)
			if i := f.funcOf(b); i >= 0 {
				fr[i].add(b)
			}
		}
		for _, fn := range fr {
			if fn.stmts > 0 {
				funcs = append(funcs, fn)
			}
		}
	}
	switch unlinked := pr.excluded == unlinkedReason; {
	case unlinked && inProfile:
		return pkgReport{}, nil, fmt.Errorf("%s is marked unlinked but the profile holds it: count it (drop it from excludedPackages)", p.rel)
	case hasFuncs && !inProfile && !unlinked:
		return pkgReport{}, nil, fmt.Errorf("the profile holds nothing of %s: build with -coverpkg=./%s/...", p.rel, measuredTree)
	}
	return pr, funcs, nil
}

// exclusionOf returns why b is excluded, or 0 if it counts.
func (f fileSource) exclusionOf(b block) exclusion {
	for _, reg := range f.excluded {
		if b.inside(reg.from, reg.to) {
			return reg.why
		}
	}
	return 0
}

// funcOf returns the index of the function b starts in, or -1 (a package-level
// initializer).
func (f fileSource) funcOf(b block) int {
	for i, fn := range f.funcs {
		if !b.start.before(fn.from) && b.start.before(fn.to) {
			return i
		}
	}
	return -1
}

// summary is the one line that carries the figure.
func (r report) summary() string {
	return fmt.Sprintf("%s coverage: %.1f%% of %d statements (assert failure branches excluded)",
		measuredTree, r.total.percent(), r.total.stmts)
}

// write prints the report: packages, what was excluded, the functions never
// reached, the top functions reached in part, and the summary line last.
func (r report) write(w io.Writer, top int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "PACKAGE\tREACHED\tSTATEMENTS\tCOVERAGE\n")
	for _, p := range r.pkgs {
		cov := fmt.Sprintf("%.1f%%", p.percent())
		switch {
		case p.excluded != "":
			cov = "excluded: " + p.excluded
		case p.stmts == 0:
			cov = "no statements"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", p.rel, p.reached, p.stmts, cov)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%.1f%%\n", r.total.reached, r.total.stmts, r.total.percent())
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nexcluded from the counted packages: %s in %s (a lone panic or assert failure),\n"+
		"%s in %s (compiled away without -tags aspenbugs)\n",
		plural(r.dropped[failureBranch].stmts, "statement"), plural(r.regions[failureBranch], "failure branch"),
		plural(r.dropped[plantedBug].stmts, "statement"), plural(r.regions[plantedBug], "planted-bug branch"))

	never, part := r.split()
	fmt.Fprintf(w, "\nnever reached: %s, %s\n", plural(len(never), "function"), plural(sumMissed(never), "statement"))
	writeFuncs(w, never, func(f funcReport) string { return plural(f.stmts, "statement") })
	part = slices.SortedStableFunc(slices.Values(part), func(a, b funcReport) int { return cmp.Compare(b.missed(), a.missed()) })
	fmt.Fprintf(w, "\nreached in part: %s, %s missed; the %d that miss most:\n",
		plural(len(part), "function"), plural(sumMissed(part), "statement"), min(top, len(part)))
	writeFuncs(w, part[:min(top, len(part))], func(f funcReport) string {
		return fmt.Sprintf("%d of %d statements missed", f.missed(), f.stmts)
	})
	_, err := fmt.Fprintf(w, "\n%s\n", r.summary())
	return err
}

// split returns the functions never reached, by file and line, and those
// reached in part.
func (r report) split() (never, part []funcReport) {
	for _, f := range r.funcs {
		switch {
		case f.reached == 0:
			never = append(never, f)
		case f.missed() > 0:
			part = append(part, f)
		}
	}
	slices.SortFunc(never, func(a, b funcReport) int {
		return cmp.Or(cmp.Compare(a.file, b.file), cmp.Compare(a.line, b.line))
	})
	return never, part
}

func writeFuncs(w io.Writer, funcs []funcReport, detail func(funcReport) string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range funcs {
		fmt.Fprintf(tw, "  %s:%d\t%s\t%s\n", f.file, f.line, f.name, detail(f))
	}
	tw.Flush()
}

func sumMissed(funcs []funcReport) int {
	n := 0
	for _, f := range funcs {
		n += f.missed()
	}
	return n
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "ch") {
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
