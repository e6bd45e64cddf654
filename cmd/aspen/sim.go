package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/aspen-db/aspen/sim"
	"github.com/urfave/cli/v2"
)

// simCommand groups the commands that drive the deterministic simulator.
func simCommand() *cli.Command {
	subcommands := []*cli.Command{
		simRunCommand(),
		simSweepCommand(),
		simReplayCommand(),
		simCheckDeterminismCommand(),
	}
	for _, sub := range subcommands {
		sub.OnUsageError = onUsageError
	}
	return &cli.Command{
		Name:            "sim",
		Usage:           "run the deterministic simulator: single seeds, sweeps, replays",
		Subcommands:     subcommands,
		HideHelpCommand: true,
		Before:          raiseGCPercent,
		Action:          unknownSubcommand,
	}
}

// simGCPercent is the collector's target (GOGC) for the sim commands, unless
// the environment sets GOGC. A run's live heap is a few megabytes and it
// allocates some 80 MB in 32 virtual seconds, so at Go's default of 100 the
// collector ran every few megabytes: a sixth of a run's CPU, and write
// barriers on for much of the rest. At 400 a 3-seed sweep of every scenario
// on 2 workers used 20% less CPU and twice the memory (145 MB resident
// instead of 69). This is the driver's choice: the core allocates the same
// either way, and no result depends on when the collector runs.
const simGCPercent = 400

func raiseGCPercent(*cli.Context) error {
	setGCPercentUnlessSet(simGCPercent)
	return nil
}

// Flags shared by the sim commands.

func scenarioFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "scenario", Usage: usage}
}

func seedFlag() cli.Flag {
	return &cli.Uint64Flag{Name: "seed", Usage: "the seed `N` to run (required)"}
}

func jsonFlag(usage string) cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: usage}
}

func traceFlag() cli.Flag {
	return &cli.StringFlag{Name: "trace", Usage: "write the readable trace, one line per event, to `FILE`"}
}

func artifactsFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  "artifacts",
		Value: "artifacts",
		Usage: "write a replayable folder for each failed run under `DIR` (empty: write none)",
	}
}

// requiredSeed returns --seed, which has no default: a seed is chosen, never
// assumed.
func requiredSeed(c *cli.Context) (uint64, error) {
	if !c.IsSet("seed") {
		return 0, usageError("missing --seed N")
	}
	return c.Uint64("seed"), nil
}

// loadScenario reads a scenario file. A file without a name is named after
// itself, so results and artifact folders always say what ran.
func loadScenario(path string) (sim.Scenario, error) {
	if path == "" {
		return sim.Scenario{}, usageError("missing --scenario FILE")
	}
	sc, err := sim.LoadScenario(path)
	if err != nil {
		return sim.Scenario{}, usageError("%v", err)
	}
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return sc, nil
}

// runTraced runs one seed, writing the readable trace to path when it is set.
func runTraced(sc sim.Scenario, seed uint64, path string) (sim.Result, error) {
	if path == "" {
		return sim.Run(sc, seed, sim.Options{}), nil
	}
	f, err := os.Create(path)
	if err != nil {
		return sim.Result{}, usageError("trace: %v", err)
	}
	defer f.Close()
	buf := bufio.NewWriterSize(f, 1<<16)
	res := sim.Run(sc, seed, sim.Options{Trace: buf})
	if err := buf.Flush(); err != nil {
		return res, cli.Exit(fmt.Sprintf("aspen: write trace: %v", err), exitUsage)
	}
	if err := f.Close(); err != nil {
		return res, cli.Exit(fmt.Sprintf("aspen: write trace: %v", err), exitUsage)
	}
	return res, nil
}

// saveArtifact writes a failed run's folder under --artifacts and returns it,
// or "" when artifacts are off or could not be written. Problems go to
// stderr: they must not hide the failure itself.
func saveArtifact(c *cli.Context, sc sim.Scenario, res sim.Result) string {
	dir := c.String("artifacts")
	if dir == "" {
		return ""
	}
	folder, err := sim.WriteArtifact(dir, sc, res.Seed, res, commit())
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "aspen: artifact: %v\n", err)
	}
	return folder
}

// runRecord is one run as a JSON line: the result and, for a failure, the
// folder that replays it.
type runRecord struct {
	sim.Result
	Artifact string `json:"artifact,omitempty"`
}

func writeJSON(w io.Writer, res sim.Result, artifact string) error {
	if res.Violations == nil {
		res.Violations = []string{} // a list, for consumers that index it
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(runRecord{Result: res, Artifact: artifact}); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

func verdict(res sim.Result) string {
	if res.Passed {
		return "PASSED"
	}
	return "FAILED"
}

// printResult writes a human summary of one run.
func printResult(w io.Writer, res sim.Result) {
	fmt.Fprintf(w, "%s seed %d: %s\n", res.Scenario, res.Seed, verdict(res))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  trace hash\t%s\n", res.TraceHash)
	fmt.Fprintf(tw, "  virtual\t%.3f s\n", res.VirtualSeconds)
	fmt.Fprintf(tw, "  wall\t%.3f s\n", res.WallSeconds)
	fmt.Fprintf(tw, "  events\t%d\n", res.Events)
	fmt.Fprintf(tw, "  ops\t%d (%d unknown)\n", res.Ops, res.OpsUnknown)
	fmt.Fprintf(tw, "  faults\t%d crashes, %d partitions, %d corruptions caught\n",
		res.Crashes, res.Partitions, res.CorruptionsCaught)
	fmt.Fprintf(tw, "  linearizability\t%s\n", res.Linearizability)
	fmt.Fprintf(tw, "  violations\t%d\n", len(res.Violations))
	tw.Flush()
	for _, v := range res.Violations {
		fmt.Fprintf(w, "    - %s\n", v)
	}
}

// printArtifact says where a failure was saved and how to replay it.
func printArtifact(w io.Writer, folder string) {
	if folder == "" {
		return
	}
	fmt.Fprintf(w, "artifact: %s\nreplay:   aspen sim replay %s\n", folder, folder)
}

func firstViolation(res sim.Result) string {
	if len(res.Violations) == 0 {
		return "(no violation recorded)"
	}
	return res.Violations[0]
}
