package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

// shellJobType is the job type an argv after "--" makes.
const shellJobType = "shell"

func scheduleCommand() *cli.Command {
	addFlags := append([]cli.Flag{
		&cli.StringFlag{Name: "cron", Usage: "cron expression: 5 fields, or 6 with seconds first (or @daily, ...)"},
		&cli.StringFlag{Name: "every", Usage: "fixed interval in whole seconds, such as 90s or 1h (instead of --cron)"},
		&cli.StringFlag{Name: "tz", Usage: "IANA time zone cron ticks follow, such as Europe/Berlin (default UTC)"},
		&cli.StringFlag{Name: "type", Usage: "job type each tick submits (required without -- ARGV)"},
		&cli.StringFlag{Name: "payload", Usage: "job payload, or @FILE to read it from a file"},
		&cli.StringFlag{Name: "overlap", Usage: "when the last job is still running: skip, buffer-one or allow (default skip)"},
		&cli.StringFlag{Name: "catch-up", Usage: "ticks missed while down: skip, run-once or run-all (default run-once)"},
		&cli.IntFlag{Name: "catch-up-max", Usage: "run-all: the most missed ticks fired at once", DefaultText: "10"},
		&cli.Int64Flag{Name: "priority", Usage: "job priority (higher leases first)"},
		&cli.Int64Flag{Name: "max-attempts", Usage: "leases each job may be given", DefaultText: "3"},
		&cli.DurationFlag{Name: "timeout", Usage: "a job's lease lasts this long without a heartbeat", DefaultText: "1m"}},
		shellFlags()...)
	add := kvLeaf("add", "add a schedule that submits a job on every tick (-- ARGV: a shell command, with --token)", "NAME [-- ARGV...]",
		runScheduleAdd, addFlags...)
	return &cli.Command{
		Name:  "schedule",
		Usage: "add, inspect, pause, resume and remove schedules (cron or fixed-interval job submission)",
		Subcommands: []*cli.Command{
			add,
			kvLeaf("list", "list every schedule with its next tick, last tick and counts", "", runScheduleList),
			kvLeaf("get", "print one schedule's definition, next tick and counts", "NAME", runScheduleGet),
			kvLeaf("pause", "stop a schedule firing until resumed", "NAME", scheduleNameAction("pause", "paused")),
			kvLeaf("resume", "let a paused schedule fire again, from now", "NAME", scheduleNameAction("resume", "resumed")),
			kvLeaf("remove", "delete a schedule (jobs it created stay)", "NAME", scheduleNameAction("remove", "removed")),
			kvLeaf("history", "print a schedule's recent fires, oldest first", "NAME", runScheduleHistory),
		},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

// scheduleCall POSTs req to a schedule endpoint and decodes the answer into v.
func scheduleCall(c *cli.Context, op string, req server.ScheduleRequest, v any) error {
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	return kvClient(c).postAspen(ctx, "schedule/"+op, req, v)
}

func runScheduleAdd(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError("schedule add wants NAME, got %q", args)
	}
	flags, argv, err := flagsAfterArg(c, args[1:])
	if err != nil {
		return err
	}
	req, err := addRequest(flags, args[0], argv)
	if err != nil {
		return err
	}
	var s server.ScheduleInfo
	if err := scheduleCall(flags, "add", req, &s); err != nil {
		return failure("schedule add %s: %v", req.Name, err)
	}
	next := s.NextTick
	if s.NextTickUTC != s.NextTick {
		next += " (" + s.NextTickUTC + ")"
	}
	fmt.Fprintf(c.App.Writer, "added schedule %s; next tick %s\n", s.Name, next)
	return nil
}

// flagsAfterArg parses flags written after a command's first argument, as
// in the usual `schedule add backup --cron ... -- ARGV` or `job submit
// shell --token ... -- ARGV`: the parser stops at the argument, so they
// arrive as arguments. It returns the context to read flags from and the
// argv after "--". Flags may be given on both sides of the argument (--addr
// often comes first); one given twice takes the later value.
func flagsAfterArg(c *cli.Context, rest []string) (*cli.Context, []string, error) {
	name := c.Command.FullName()
	if len(rest) == 0 {
		return c, nil, nil
	}
	if rest[0] == "--" {
		return c, rest[1:], nil
	}
	set := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		if err := f.Apply(set); err != nil {
			return nil, nil, usageError("%s: %v", name, err)
		}
	}
	for _, name := range c.LocalFlagNames() {
		if err := set.Set(name, fmt.Sprint(c.Value(name))); err != nil {
			return nil, nil, usageError("%s: --%s: %v", c.Command.FullName(), name, err)
		}
	}
	if err := set.Parse(rest); err != nil {
		return nil, nil, usageError("%s: %v (see %s --help)", name, err, c.Command.HelpName)
	}
	left := set.Args()
	if len(left) > 0 && (len(left) == len(rest) || rest[len(rest)-len(left)-1] != "--") {
		return nil, nil, usageError("%s wants %s, then flags, then -- ARGV; got stray %q", name, c.Command.ArgsUsage, left)
	}
	var parent *cli.Context
	if lineage := c.Lineage(); len(lineage) > 1 {
		parent = lineage[1]
	}
	return cli.NewContext(c.App, set, parent), left, nil
}

// addRequest builds the add request from the flags: with an argv, a shell
// job allowed by --token; without, a job of --type.
func addRequest(c *cli.Context, name string, argv []string) (req server.ScheduleRequest, err error) {
	req = server.ScheduleRequest{Name: name, Cron: c.String("cron"), Every: c.String("every"), Zone: c.String("tz"),
		Type: c.String("type"), Overlap: c.String("overlap"), CatchUp: c.String("catch-up"),
		CatchUpMax: c.Int("catch-up-max"), Priority: c.Int64("priority"), MaxAttempts: c.Int64("max-attempts")}
	switch {
	case (req.Cron == "") == (req.Every == ""):
		return req, usageError("schedule add wants one of --cron EXPR and --every DUR")
	case len(argv) > 0 && req.Type != "" && req.Type != shellJobType:
		return req, usageError("schedule add: an argv after -- makes a shell job; drop --type %s", req.Type)
	case len(argv) > 0 && c.String("payload") != "":
		return req, usageError("schedule add: an argv after -- is the payload; drop --payload")
	case len(argv) == 0 && req.Type == "":
		return req, usageError("schedule add wants --type T, or a command after --")
	}
	if d := c.Duration("timeout"); d != 0 {
		if d < time.Millisecond || d%time.Millisecond != 0 {
			return req, usageError("--timeout must be a positive whole number of milliseconds, got %s", d)
		}
		req.TimeoutMs = d.Milliseconds()
	}
	if len(argv) > 0 {
		req.Type = shellJobType
		req.ShellCommand, err = shellCommand(c, argv)
		return req, err
	}
	if err := noShellFlags(c); err != nil {
		return req, err
	}
	if p := c.String("payload"); strings.HasPrefix(p, "@") {
		b, err := os.ReadFile(p[1:])
		if err != nil {
			return req, usageError("read payload: %v", err)
		}
		req.Payload = string(b)
	} else {
		req.Payload = p
	}
	return req, nil
}

// scheduleName reads the one argument, a schedule name.
func scheduleName(c *cli.Context) (string, error) {
	args, err := exactArgs(c, "NAME")
	if err != nil {
		return "", err
	}
	return args[0], nil
}

// scheduleNameAction runs a write on one schedule and says what it did.
func scheduleNameAction(op, done string) cli.ActionFunc {
	return func(c *cli.Context) error {
		name, err := scheduleName(c)
		if err != nil {
			return err
		}
		var s server.ScheduleInfo
		if err := scheduleCall(c, op, server.ScheduleRequest{Name: name}, &s); err != nil {
			return failure("schedule %s %s: %v", op, name, err)
		}
		fmt.Fprintf(c.App.Writer, "%s schedule %s\n", done, name)
		return nil
	}
}

func runScheduleGet(c *cli.Context) error {
	name, err := scheduleName(c)
	if err != nil {
		return err
	}
	var s server.ScheduleInfo
	if err := scheduleCall(c, "get", server.ScheduleRequest{Name: name}, &s); err != nil {
		return failure("schedule get %s: %v", name, err)
	}
	spec := "cron " + s.Cron
	if s.Every != "" {
		spec = "every " + s.Every
	}
	zone := s.Zone
	if zone == "" {
		zone = "UTC"
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"name", s.Name}, {"schedule", spec}, {"zone", zone}, {"paused", fmt.Sprint(s.Paused)},
		{"next tick", orDash(s.NextTick)}, {"next tick (UTC)", orDash(s.NextTickUTC)},
		{"last tick", orDash(s.LastTick)}, {"last job", fmt.Sprint(s.LastJob)},
		{"fired", fmt.Sprint(s.Fired)}, {"missed", missedText(s)}, {"skipped", fmt.Sprint(s.Skipped)},
		{"job type", s.Type}, {"payload", s.Payload}, {"priority", fmt.Sprint(s.Priority)},
		{"max attempts", fmt.Sprint(s.MaxAttempts)}, {"timeout", (time.Duration(s.TimeoutMs) * time.Millisecond).String()},
		{"overlap", s.Overlap}, {"catch-up", catchUpText(s)}, {"created", s.Created},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

func runScheduleList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	var list server.ScheduleList
	if err := scheduleCall(c, "list", server.ScheduleRequest{}, &list); err != nil {
		return failure("schedule list: %v", err)
	}
	if len(list.Schedules) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCHEDULE\tZONE\tTYPE\tNEXT TICK\tLAST FIRED\tFIRED\tMISSED\tSKIPPED\tPAUSED")
	for _, s := range list.Schedules {
		spec := s.Cron
		if s.Every != "" {
			spec = "every " + s.Every
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%v\n", s.Name, spec, orDash(s.Zone), s.Type,
			orDash(s.NextTick), orDash(s.LastTick), s.Fired, missedText(s), s.Skipped, s.Paused)
	}
	if list.Next != "" {
		fmt.Fprintf(tw, "(more after %s)\n", list.Next)
	}
	return tw.Flush()
}

func runScheduleHistory(c *cli.Context) error {
	name, err := scheduleName(c)
	if err != nil {
		return err
	}
	var h server.ScheduleHistory
	if err := scheduleCall(c, "history", server.ScheduleRequest{Name: name}, &h); err != nil {
		return failure("schedule history %s: %v", name, err)
	}
	if len(h.Fires) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TICK (UTC)\tOUTCOME\tJOB\tLAG\tMISSED")
	for _, f := range h.Fires {
		job := "-"
		if f.Job != 0 {
			job = fmt.Sprint(f.Job)
		}
		lag := time.Duration(f.LagMs) * time.Millisecond
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", f.Tick, f.Outcome, job, lag, f.Missed)
	}
	return tw.Flush()
}

func missedText(s server.ScheduleInfo) string {
	if s.MissedCapped {
		return fmt.Sprintf("%d+", s.Missed)
	}
	return fmt.Sprint(s.Missed)
}

func catchUpText(s server.ScheduleInfo) string {
	if s.CatchUpMax > 0 {
		return fmt.Sprintf("%s (at most %d)", s.CatchUp, s.CatchUpMax)
	}
	return s.CatchUp
}
