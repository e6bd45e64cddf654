package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/sim"
	"github.com/urfave/cli/v2"
)

// sweepRunsMax bounds one sweep's job list, which is held in memory; a longer
// campaign is several sweeps with different --start-seed.
const sweepRunsMax = 1_000_000

func simSweepCommand() *cli.Command {
	return &cli.Command{
		Name:  "sweep",
		Usage: "run many seeds of one scenario, or of every scenario in a folder",
		Flags: []cli.Flag{
			scenarioFlag("a scenario `FILE|DIR` (a folder runs each *.toml in it; required)"),
			&cli.Uint64Flag{Name: "seeds", Usage: "run `N` seeds per scenario (required)"},
			&cli.Uint64Flag{Name: "start-seed", Value: 1, Usage: "the first seed `S`; seeds are S..S+N-1"},
			&cli.IntFlag{Name: "parallel", Value: runtime.NumCPU(), Usage: "`P` runs at once"},
			&cli.StringSliceFlag{Name: "plant", Usage: "plant the defect `BUG` in every scenario (builds with -tags aspenbugs only; repeatable)"},
			jsonFlag("print one JSON object per run on stdout, the summary on stderr"),
			artifactsFlag(),
		},
		Action: simSweep,
	}
}

// sweepPlan is a validated sweep.
type sweepPlan struct {
	scenarios []sim.Scenario
	start     uint64
	seeds     uint64
	parallel  int
}

func simSweep(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	plan, err := planSweep(c)
	if err != nil {
		return err
	}
	return runSweep(c, plan)
}

func planSweep(c *cli.Context) (sweepPlan, error) {
	scenarios, err := loadScenarios(c.String("scenario"))
	if err != nil {
		return sweepPlan{}, err
	}
	if scenarios, err = plant(scenarios, c.StringSlice("plant")); err != nil {
		return sweepPlan{}, err
	}
	p := sweepPlan{scenarios: scenarios, start: c.Uint64("start-seed"), seeds: c.Uint64("seeds"), parallel: c.Int("parallel")}
	switch {
	case !c.IsSet("seeds"):
		return sweepPlan{}, usageError("missing --seeds N")
	case p.seeds == 0:
		return sweepPlan{}, usageError("--seeds must be at least 1")
	case p.start+p.seeds-1 < p.start:
		return sweepPlan{}, usageError("--start-seed %d plus --seeds %d passes the largest seed", p.start, p.seeds)
	case p.seeds > sweepRunsMax/uint64(len(scenarios)):
		return sweepPlan{}, usageError("%d scenarios × %d seeds is more than %d runs; split the sweep with --start-seed",
			len(scenarios), p.seeds, sweepRunsMax)
	case p.parallel < 1:
		return sweepPlan{}, usageError("--parallel must be at least 1")
	}
	return p, nil
}

// plant switches the named defects on in every scenario, to measure which
// scenario and seed first catch each.
func plant(scenarios []sim.Scenario, names []string) ([]sim.Scenario, error) {
	if len(names) > 0 && !bugs.Enabled {
		return nil, usageError("--plant needs a binary built with -tags aspenbugs")
	}
	for _, name := range names {
		b, err := bugs.Parse(name)
		if err != nil {
			return nil, usageError("--plant: %v", err)
		}
		for i := range scenarios {
			scenarios[i] = scenarios[i].PlantBug(b)
		}
	}
	return scenarios, nil
}

// loadScenarios reads one file, or every *.toml in a folder in name order.
func loadScenarios(path string) ([]sim.Scenario, error) {
	paths, err := scenarioPaths(path)
	if err != nil {
		return nil, err
	}
	var scenarios []sim.Scenario
	seen := map[string]string{} // name -> file, since artifacts are named by scenario
	for _, p := range paths {
		sc, err := loadScenario(p)
		if err != nil {
			return nil, err
		}
		if other, ok := seen[sc.Name]; ok {
			return nil, usageError("%s and %s are both named %q", other, p, sc.Name)
		}
		seen[sc.Name] = p
		scenarios = append(scenarios, sc)
	}
	return scenarios, nil
}

func scenarioPaths(path string) ([]string, error) {
	if path == "" {
		return nil, usageError("missing --scenario FILE|DIR")
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, usageError("scenario: %v", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	paths, err := filepath.Glob(filepath.Join(path, "*.toml"))
	if err != nil {
		return nil, usageError("scenario folder %s: %v", path, err)
	}
	if len(paths) == 0 {
		return nil, usageError("scenario folder %s has no *.toml files", path)
	}
	slices.Sort(paths)
	return paths, nil
}

// jobs lists every scenario's seeds, scenario by scenario.
func (p sweepPlan) jobs() []sim.Job {
	jobs := make([]sim.Job, 0, uint64(len(p.scenarios))*p.seeds)
	for _, sc := range p.scenarios {
		for i := range p.seeds {
			jobs = append(jobs, sim.Job{Scenario: sc, Seed: p.start + i})
		}
	}
	return jobs
}

// sweeper reports results as they come. Sweep calls it from one goroutine.
type sweeper struct {
	c         *cli.Context
	byName    map[string]sim.Scenario
	summary   sim.Summary
	progress  *progress
	failures  io.Writer // where failures are told as they happen
	jsonLines bool
}

func runSweep(c *cli.Context, p sweepPlan) error {
	jobs := p.jobs()
	s := &sweeper{c: c, byName: map[string]sim.Scenario{}, jsonLines: c.Bool("json"), failures: c.App.Writer}
	if s.jsonLines {
		s.failures = c.App.ErrWriter
	}
	for _, sc := range p.scenarios {
		s.byName[sc.Name] = sc
		s.summary.Track(sc.Name)
	}
	s.progress = newProgress(os.Stderr, len(jobs))
	began := time.Now()
	var writeErr error
	sim.Sweep(jobs, p.parallel, func(res sim.Result) {
		if err := s.onResult(res); err != nil && writeErr == nil {
			writeErr = err
		}
	})
	s.progress.finish()
	if writeErr != nil {
		return cli.Exit(fmt.Sprintf("aspen: %v", writeErr), exitUsage)
	}
	return s.finish(time.Since(began), p.parallel)
}

func (s *sweeper) onResult(res sim.Result) error {
	s.summary.Add(res)
	s.progress.add(res.Passed)
	folder := ""
	if !res.Passed {
		folder = s.reportFailure(res)
	}
	if s.jsonLines {
		return writeJSON(s.c.App.Writer, res, folder)
	}
	return nil
}

// reportFailure saves the failure and tells it at once, without waiting for
// the sweep to end.
func (s *sweeper) reportFailure(res sim.Result) string {
	s.progress.clear()
	folder := saveArtifact(s.c, s.byName[res.Scenario], res)
	fmt.Fprintf(s.failures, "FAIL %s seed %d: %s\n", res.Scenario, res.Seed, firstViolation(res))
	if folder != "" {
		fmt.Fprintf(s.failures, "     artifact %s (aspen sim replay %s)\n", folder, folder)
	}
	s.progress.draw()
	return folder
}

func (s *sweeper) finish(elapsed time.Duration, parallel int) error {
	out := s.c.App.Writer
	if s.jsonLines {
		out = s.c.App.ErrWriter
	}
	if err := s.summary.Table(out); err != nil {
		return cli.Exit(fmt.Sprintf("aspen: %v", err), exitUsage)
	}
	total := s.summary.Total()
	fmt.Fprintf(out, "%d runs in %.1f s elapsed on %d workers (wall seconds above are summed over runs)\n",
		total.Runs, elapsed.Seconds(), parallel)
	if total.Failures > 0 {
		return failure("%d of %d runs failed", total.Failures, total.Runs)
	}
	return nil
}
