package main

import (
	"fmt"
	"strings"

	"github.com/aspen-db/aspen/sim"
	"github.com/urfave/cli/v2"
)

func simReplayCommand() *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "run an artifact's seed again and compare its trace hash with the recorded one",
		ArgsUsage: "DIR",
		Flags:     []cli.Flag{traceFlag()},
		Action:    simReplay,
	}
}

func simReplay(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("usage: aspen sim replay [--trace FILE] DIR (one artifact folder, flags first)")
	}
	folder := c.Args().First()
	sc, seed, recorded, err := sim.ReadArtifact(folder)
	if err != nil {
		return usageError("replay: %v", err)
	}
	res, err := runTraced(sc, seed, c.String("trace"))
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "replay of %s\n", folder)
	printResult(w, res)
	same := res.TraceHash == recorded
	fmt.Fprintf(w, "recorded trace hash %s: %s\n", recorded, sameOrDiffers(same))
	return replayVerdict(res, same)
}

func sameOrDiffers(same bool) string {
	if same {
		return "same"
	}
	return "DIFFERS"
}

// replayVerdict names every way the replay failed: a differing hash means the
// seed no longer tells what happened, a failed run means the bug is still there.
func replayVerdict(res sim.Result, same bool) error {
	var problems []string
	if !same {
		problems = append(problems, "the trace hash differs from the recorded one "+
			"(the code changed since the artifact was written, or the run is not deterministic)")
	}
	switch {
	case !res.Passed && same:
		problems = append(problems, fmt.Sprintf("the failure reproduces (%d violations)", len(res.Violations)))
	case !res.Passed:
		problems = append(problems, fmt.Sprintf("the run failed (%d violations)", len(res.Violations)))
	}
	if len(problems) > 0 {
		return failure("replay: %s", strings.Join(problems, "; and "))
	}
	return nil
}
