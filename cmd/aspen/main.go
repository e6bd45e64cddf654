// Command aspen is Aspen's command line. Each group of commands lives in its
// own file: sim.go holds the simulator's.
package main

import (
	"fmt"
	"os"

	"github.com/aspen-db/aspen/runtime/worker/shell"
	"github.com/urfave/cli/v2"
)

// Exit statuses. A failed run is a finding, not a broken command, so it has a
// status of its own that scripts can tell from bad input.
const (
	exitFailed = 1 // a run failed, or a replay or determinism check disagreed
	exitUsage  = 2 // bad input: flags, files, folders
)

func main() {
	shell.MaybeRunHelper() // when re-executed by the shell executor: set rlimits, exec the command
	if err := newApp().Run(os.Args); err != nil {
		// Errors made with cli.Exit have already exited; what reaches here is
		// a usage error found by the flag parser.
		fmt.Fprintln(os.Stderr, "aspen:", err)
		os.Exit(exitUsage)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:            "aspen",
		Usage:           "the Aspen key-value store and its tools",
		HideHelpCommand: true,
		Commands: []*cli.Command{simCommand(), nodeCommand(), devCommand(), kvCommand(), leaseCommand(), sessionCommand(), jobCommand(),
			scheduleCommand(), hookCommand(), topicCommand(), groupCommand(), workerCommand(), tokenCommand(), auditCommand(), clusterCommand(), snapshotCommand(), benchCommand()},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "aspen: unknown command %q (see aspen --help)\n", name)
			os.Exit(exitUsage)
		},
	}
}

// onUsageError turns a flag the parser rejected into one line and the usage
// exit status, instead of the whole help text.
func onUsageError(c *cli.Context, err error, _ bool) error {
	return usageError("%v (see %s --help)", err, c.Command.HelpName)
}

// unknownSubcommand is a command group's action: the parser reaches it only
// when no subcommand matched.
func unknownSubcommand(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.ShowSubcommandHelp(c)
	}
	return usageError("unknown command %q (see %s --help)", c.Args().First(), c.Command.HelpName)
}

// usageError reports bad input with the usage exit status.
func usageError(format string, args ...any) error {
	return cli.Exit("aspen: "+fmt.Sprintf(format, args...), exitUsage)
}

// failure reports a finding with the failed exit status.
func failure(format string, args ...any) error {
	return cli.Exit("aspen: "+fmt.Sprintf(format, args...), exitFailed)
}

// noArgs rejects stray positional arguments, which the flag parser would
// otherwise ignore (as in `aspen sim run scenario.toml`).
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("%s takes no arguments, got %q (flags go before arguments)", c.Command.FullName(), c.Args().Slice())
	}
	return nil
}
