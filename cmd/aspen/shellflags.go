package main

import (
	"strings"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

// The flags of a shell command (job submit shell, schedule add ... --
// ARGV): the capability token, the directory, variables and the command's
// own timeout. The argv itself comes after "--".

func shellFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "token", EnvVars: []string{"ASPEN_TOKEN"},
			Usage: "capability token allowing the command (aspen token create), or @FILE to read it from a file"},
		&cli.StringFlag{Name: "dir", Usage: "directory the command runs in (default: the token's first directory)"},
		&cli.StringSliceFlag{Name: "env", Usage: "NAME=VALUE for the command (repeat); the worker's allowlist decides which it gets"},
		&cli.DurationFlag{Name: "command-timeout", Usage: "stop the command after this long (SIGTERM, then SIGKILL); default: the worker's"},
	}
}

// shellCommand builds a shell request from the flags and argv.
func shellCommand(c *cli.Context, argv []string) (server.ShellCommand, error) {
	sc := server.ShellCommand{Argv: argv, Dir: c.String("dir")}
	tok, err := readValue(c, c.String("token"))
	if err != nil {
		return sc, err
	}
	if sc.Capability = strings.TrimSpace(string(tok)); sc.Capability == "" {
		return sc, usageError("a shell command needs --token (or ASPEN_TOKEN): create one with aspen token create")
	}
	for _, kv := range c.StringSlice("env") {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return sc, usageError("--env wants NAME=VALUE, got %q", kv)
		}
		if sc.Env == nil {
			sc.Env = map[string]string{}
		}
		sc.Env[name] = value
	}
	if d := c.Duration("command-timeout"); d != 0 {
		if d < time.Millisecond || d%time.Millisecond != 0 {
			return sc, usageError("--command-timeout must be a positive whole number of milliseconds, got %s", d)
		}
		sc.CommandTimeoutMs = d.Milliseconds()
	}
	return sc, nil
}

// noShellFlags refuses shell flags on a job that is not a shell command.
// (--token is let be: ASPEN_TOKEN may be set for every command.)
func noShellFlags(c *cli.Context) error {
	for _, f := range []string{"dir", "env", "command-timeout"} {
		if c.IsSet(f) {
			return usageError("--%s is for shell commands (an argv after --)", f)
		}
	}
	return nil
}
