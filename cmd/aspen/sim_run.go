package main

import (
	"github.com/aspen-db/aspen/sim"
	"github.com/urfave/cli/v2"
)

func simRunCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run one seed of a scenario",
		Flags: []cli.Flag{
			scenarioFlag("the scenario `FILE` (required)"),
			seedFlag(),
			jsonFlag("print the result as one JSON object"),
			traceFlag(),
			artifactsFlag(),
		},
		Action: simRun,
	}
}

func simRun(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	sc, err := loadScenario(c.String("scenario"))
	if err != nil {
		return err
	}
	seed, err := requiredSeed(c)
	if err != nil {
		return err
	}
	res, err := runTraced(sc, seed, c.String("trace"))
	if err != nil {
		return err
	}
	folder := ""
	if !res.Passed {
		folder = saveArtifact(c, sc, res)
	}
	if err := reportRun(c, res, folder); err != nil {
		return err
	}
	if !res.Passed {
		return failure("%s seed %d failed", res.Scenario, res.Seed)
	}
	return nil
}

// reportRun prints the run: JSON alone on stdout when asked, so that it
// parses, and the artifact's location on stderr then.
func reportRun(c *cli.Context, res sim.Result, folder string) error {
	if c.Bool("json") {
		printArtifact(c.App.ErrWriter, folder)
		return writeJSON(c.App.Writer, res, folder)
	}
	printResult(c.App.Writer, res)
	printArtifact(c.App.Writer, folder)
	return nil
}
