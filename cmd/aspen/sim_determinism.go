package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/aspen-db/aspen/sim"
	"github.com/urfave/cli/v2"
)

// determinismRunsMax bounds --runs: they all run at once.
const determinismRunsMax = 64

func simCheckDeterminismCommand() *cli.Command {
	return &cli.Command{
		Name: "check-determinism",
		Usage: "run one seed several times, here and in a separate process with another GOMAXPROCS, " +
			"and compare the trace hashes",
		Flags: []cli.Flag{
			scenarioFlag("the scenario `FILE` (required)"),
			seedFlag(),
			&cli.IntFlag{Name: "runs", Value: 2, Usage: "`K` runs in this process, all at once"},
		},
		Action: simCheckDeterminism,
	}
}

// labeledHash is one run's trace hash and what kind of run gave it.
type labeledHash struct {
	label string
	hash  string
}

func simCheckDeterminism(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	path := c.String("scenario")
	sc, err := loadScenario(path)
	if err != nil {
		return err
	}
	seed, err := requiredSeed(c)
	if err != nil {
		return err
	}
	runs := c.Int("runs")
	if runs < 1 || runs > determinismRunsMax {
		return usageError("--runs must be in 1..%d", determinismRunsMax)
	}
	hashes := inProcessHashes(sc, seed, runs)
	sub, err := subprocessHash(path, seed)
	if err != nil {
		return cli.Exit(fmt.Sprintf("aspen: check-determinism: %v", err), exitUsage)
	}
	hashes = append(hashes, sub)
	return reportHashes(c.App.Writer, sc.Name, seed, hashes)
}

// inProcessHashes runs the seed runs times at once. Running them side by side
// catches state shared between runs; the first also writes a trace, which
// must not change what happens.
func inProcessHashes(sc sim.Scenario, seed uint64, runs int) []labeledHash {
	hashes := make([]labeledHash, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			opts, label := sim.Options{}, fmt.Sprintf("in-process run %d", i+1)
			if i == 0 {
				opts.Trace, label = io.Discard, label+" (traced)"
			}
			hashes[i] = labeledHash{label: label, hash: sim.Run(sc, seed, opts).TraceHash}
		})
	}
	wg.Wait()
	return hashes
}

// subprocessHash runs the seed in a fresh process of this binary with a
// different GOMAXPROCS, which catches dependence on scheduling, on map order
// that a process fixes at start, or on anything else the process carries.
func subprocessHash(path string, seed uint64) (labeledHash, error) {
	exe, err := os.Executable()
	if err != nil {
		return labeledHash{}, fmt.Errorf("find this binary: %w", err)
	}
	procs := 1
	if runtime.GOMAXPROCS(0) == 1 {
		procs = 2
	}
	cmd := exec.Command(exe, "sim", "run", "--json", "--artifacts=",
		"--scenario", path, "--seed", strconv.FormatUint(seed, 10))
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs)) // the last value of a key wins
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == exitFailed) {
		// A failed run still has a hash; anything else is a broken subprocess.
		return labeledHash{}, fmt.Errorf("subprocess: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var rec struct {
		TraceHash string `json:"trace_hash"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rec); err != nil {
		return labeledHash{}, fmt.Errorf("subprocess output: %w", err)
	}
	return labeledHash{label: fmt.Sprintf("subprocess (GOMAXPROCS=%d)", procs), hash: rec.TraceHash}, nil
}

func reportHashes(w io.Writer, scenario string, seed uint64, hashes []labeledHash) error {
	fmt.Fprintf(w, "%s seed %d\n", scenario, seed)
	distinct := map[string]bool{}
	for _, h := range hashes {
		fmt.Fprintf(w, "  %-28s %s\n", h.label, h.hash)
		distinct[h.hash] = true
	}
	if len(distinct) != 1 {
		return failure("not deterministic: %d runs gave %d different trace hashes", len(hashes), len(distinct))
	}
	fmt.Fprintf(w, "deterministic: %d runs gave the same trace hash\n", len(hashes))
	return nil
}
