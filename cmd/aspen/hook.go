package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

func hookCommand() *cli.Command {
	createFlags := append([]cli.Flag{
		&cli.StringFlag{Name: "pattern", Usage: "keys the hook fires on: a prefix (cfg/), or a glob with * for one path segment and ** for any (svc/*/config, svc/**)"},
		&cli.StringSliceFlag{Name: "events", Usage: "events: put, delete, expire (repeat or comma-separate; default put and delete)"},
		&cli.StringFlag{Name: "filter", Usage: "which puts fire: any, created (new keys only) or updated (default any)"},
		&cli.StringFlag{Name: "http", Usage: "handler: POST each event to this http(s) URL, signed with --secret"},
		&cli.StringFlag{Name: "secret", Usage: "http: the signing key, or @FILE; sealed by the cluster and never shown again"},
		&cli.StringFlag{Name: "job-type", Usage: "handler: enqueue a job of this type with the event as its payload"},
		&cli.StringFlag{Name: "topic", Usage: "handler: publish the event to this topic, keyed by the KV key, in the change's own commit"},
		&cli.StringFlag{Name: "mode", Usage: "ordered (one delivery at a time, in revision order) or parallel (default ordered)"},
		&cli.Int64Flag{Name: "parallel", Usage: "parallel: deliveries in flight at most"},
		&cli.Int64Flag{Name: "max-attempts", Usage: "attempts each delivery may take", DefaultText: "3"},
		&cli.DurationFlag{Name: "timeout", Usage: "a delivery's lease lasts this long without a heartbeat", DefaultText: "1m"},
		&cli.DurationFlag{Name: "backoff", Usage: "delay before a delivery's first retry, doubled for each later one", DefaultText: "1s"},
		&cli.DurationFlag{Name: "backoff-max", Usage: "cap on that delay", DefaultText: "5m"},
		&cli.Int64Flag{Name: "rate", Usage: "deliveries started per second at most (default: no limit)"},
		&cli.Int64Flag{Name: "burst", Usage: "with --rate: how many may start at once after a quiet spell", DefaultText: "1"},
		&cli.BoolFlag{Name: "disabled", Usage: "create the hook disabled (aspen hook enable starts it)"}},
		shellFlags()...)
	return &cli.Command{
		Name:  "hook",
		Usage: "hooks on KV changes: create, inspect, enable, disable, trigger and delete them, and list their deliveries",
		Subcommands: []*cli.Command{
			kvLeaf("create", "create a hook: --http URL --secret S, --job-type T, or -- ARGV (a shell command, with --token)", "NAME [-- ARGV...]",
				runHookCreate, createFlags...),
			kvLeaf("list", "list every hook with its handler and counts", "", runHookList),
			kvLeaf("get", "print one hook's definition, state and counts", "NAME", runHookGet),
			kvLeaf("metrics", "print each hook's counts, backlog and lag", "", runHookMetrics),
			kvLeaf("enable", "let a disabled hook fire again, on changes from now", "NAME", hookNameAction("enable", "enabled")),
			kvLeaf("disable", "stop a hook firing; changes while disabled are not delivered", "NAME", hookNameAction("disable", "disabled")),
			kvLeaf("delete", "delete a hook (deliveries already in the job queue run on)", "NAME", hookNameAction("delete", "deleted")),
			kvLeaf("trigger", "deliver a synthetic event (no KV change) to test a hook's handler", "NAME", runHookTrigger,
				&cli.StringFlag{Name: "key", Usage: "the event's key"},
				&cli.StringFlag{Name: "value", Usage: "the event's value, or @FILE"}),
			kvLeaf("deliveries", "list a hook's deliveries (jobs) by state; retry or drop the dead ones", "NAME", runHookDeliveries,
				&cli.StringFlag{Name: "state", Usage: "only deliveries in this state: pending, leased, succeeded, failed, dead (default: each)"},
				&cli.IntFlag{Name: "limit", Value: jobListLimitDefault, Usage: "print at most this many deliveries (per state without --state)"},
				&cli.BoolFlag{Name: "retry-dead", Usage: "put the dead deliveries listed back to pending, attempts reset"},
				&cli.BoolFlag{Name: "drop-dead", Usage: "delete the dead deliveries listed"}),
		},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

// hookCall POSTs req to a hook endpoint and decodes the answer into v.
func hookCall(c *cli.Context, op string, req server.HookRequest, v any) error {
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	return kvClient(c).postAspen(ctx, "hook/"+op, req, v)
}

func runHookCreate(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError("hook create wants NAME, got %q", args)
	}
	flags, argv, err := flagsAfterArg(c, args[1:])
	if err != nil {
		return err
	}
	req, err := hookRequest(flags, args[0], argv)
	if err != nil {
		return err
	}
	var h server.HookInfo
	if err := hookCall(flags, "create", req, &h); err != nil {
		return failure("hook create %s: %v", req.Name, err)
	}
	fmt.Fprintf(c.App.Writer, "created hook %s on %s (%s)\n", h.Name, h.Pattern, hookHandlerText(h))
	return nil
}

// hookRequest builds a create from the flags: one handler of --http,
// --job-type and an argv after -- (a shell command allowed by --token).
func hookRequest(c *cli.Context, name string, argv []string) (req server.HookRequest, err error) {
	req = server.HookRequest{Name: name, Pattern: c.String("pattern"), Filter: c.String("filter"), Mode: c.String("mode"),
		Parallel: c.Int64("parallel"), MaxAttempts: c.Int64("max-attempts"), RatePerSec: c.Int64("rate"),
		Burst: c.Int64("burst"), Disabled: c.Bool("disabled")}
	for _, events := range c.StringSlice("events") {
		for _, e := range strings.Split(events, ",") {
			req.Events = append(req.Events, strings.TrimSpace(e))
		}
	}
	handlers := 0
	for _, set := range []bool{c.String("http") != "", c.String("job-type") != "", c.String("topic") != "", len(argv) > 0} {
		if set {
			handlers++
		}
	}
	switch {
	case req.Pattern == "":
		return req, usageError("hook create wants --pattern: a key prefix or a glob")
	case handlers != 1:
		return req, usageError("hook create wants one handler: --http URL (with --secret), --job-type T, --topic T, or a command after --")
	case c.String("secret") != "" && c.String("http") == "":
		return req, usageError("--secret is for an --http hook")
	}
	for _, d := range []struct {
		flag string
		ms   *int64
	}{{"timeout", &req.TimeoutMs}, {"backoff", &req.BackoffMs}, {"backoff-max", &req.BackoffMaxMs}} {
		if v := c.Duration(d.flag); v != 0 {
			if v < time.Millisecond || v%time.Millisecond != 0 {
				return req, usageError("--%s must be a positive whole number of milliseconds, got %s", d.flag, v)
			}
			*d.ms = v.Milliseconds()
		}
	}
	switch {
	case len(argv) > 0:
		req.Handler = "shell"
		req.ShellCommand, err = shellCommand(c, argv)
		return req, err
	case c.String("http") != "":
		req.Handler, req.URL = "http", c.String("http")
		secret, err := readValue(c, c.String("secret"))
		if err != nil {
			return req, err
		}
		if req.Secret = strings.TrimSpace(string(secret)); req.Secret == "" {
			return req, usageError("an --http hook needs --secret S (or @FILE): the key its deliveries are signed with")
		}
	case c.String("topic") != "":
		req.Handler, req.Topic = "topic", c.String("topic")
	default:
		req.Handler, req.JobType = "job", c.String("job-type")
	}
	return req, noShellFlags(c)
}

// hookName reads the one argument, a hook name.
func hookName(c *cli.Context) (string, error) {
	args, err := exactArgs(c, "NAME")
	if err != nil {
		return "", err
	}
	return args[0], nil
}

// hookNameFlags reads NAME and the flags written before or after it, as in
// `hook deliveries audit --state dead`.
func hookNameFlags(c *cli.Context) (string, *cli.Context, error) {
	args := c.Args().Slice()
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, usageError("%s wants NAME, got %q", c.Command.FullName(), args)
	}
	flags, argv, err := flagsAfterArg(c, args[1:])
	if err != nil {
		return "", nil, err
	}
	if len(argv) > 0 {
		return "", nil, usageError("%s wants NAME and flags, got stray %q", c.Command.FullName(), argv)
	}
	return args[0], flags, nil
}

// hookNameAction runs a write on one hook and says what it did.
func hookNameAction(op, done string) cli.ActionFunc {
	return func(c *cli.Context) error {
		name, err := hookName(c)
		if err != nil {
			return err
		}
		var h server.HookInfo
		if err := hookCall(c, op, server.HookRequest{Name: name}, &h); err != nil {
			return failure("hook %s %s: %v", op, name, err)
		}
		fmt.Fprintf(c.App.Writer, "%s hook %s\n", done, name)
		return nil
	}
}

func runHookTrigger(c *cli.Context) error {
	name, c, err := hookNameFlags(c)
	if err != nil {
		return err
	}
	req := server.HookRequest{Name: name, Key: c.String("key")}
	if c.IsSet("value") {
		v, err := readValue(c, c.String("value"))
		if err != nil {
			return err
		}
		req.Value = string(v)
	}
	var h server.HookInfo
	if err := hookCall(c, "trigger", req, &h); err != nil {
		return failure("hook trigger %s: %v", name, err)
	}
	fmt.Fprintf(c.App.Writer, "triggered hook %s (%d waiting, %d in flight)\n", name, h.Backlog, h.InFlight)
	return nil
}

// hookList reads every hook, page by page.
func hookList(c *cli.Context) ([]server.HookInfo, error) {
	var all []server.HookInfo
	req := server.HookRequest{}
	for page := 0; page < hookListPagesMax; page++ {
		var l server.HookList
		if err := hookCall(c, "list", req, &l); err != nil {
			return nil, err
		}
		all = append(all, l.Hooks...)
		if l.Next == "" {
			break
		}
		req.After = l.Next
	}
	return all, nil
}

// hookListPagesMax bounds the pages list and metrics read: the cluster's
// hook table (256 by default) fits in one.
const hookListPagesMax = 64

func runHookList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	list, err := hookList(c)
	if err != nil {
		return failure("hook list: %v", err)
	}
	if len(list) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPATTERN\tEVENTS\tHANDLER\tMODE\tENABLED\tMATCHED\tDELIVERED\tDEAD\tBACKLOG")
	for _, h := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%d\t%d\t%d\t%s\n", h.Name, h.Pattern, strings.Join(h.Events, ","),
			hookHandlerText(h), hookModeText(h), !h.Disabled, h.Stats.Matched, h.Stats.Delivered, h.Stats.Dead, hookBacklogText(h))
	}
	return tw.Flush()
}

func runHookMetrics(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	list, err := hookList(c)
	if err != nil {
		return failure("hook metrics: %v", err)
	}
	if len(list) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "HOOK\tMATCHED\tDELIVERED\tFAILED\tRETRIED\tDEAD\tBACKLOG\tIN FLIGHT\tLAG REVS\tLAG SECONDS\t")
	for _, h := range list {
		s := h.Stats
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%.1f\t\n", h.Name, s.Matched, s.Delivered, s.Failed, s.Retried, s.Dead,
			hookBacklogText(h), h.InFlight, h.LagRevisions, h.LagSeconds)
	}
	return tw.Flush()
}

func runHookGet(c *cli.Context) error {
	name, err := hookName(c)
	if err != nil {
		return err
	}
	var h server.HookInfo
	if err := hookCall(c, "get", server.HookRequest{Name: name}, &h); err != nil {
		return failure("hook get %s: %v", name, err)
	}
	ms := func(v int64) string { return (time.Duration(v) * time.Millisecond).String() }
	rate := "no limit"
	if h.RatePerSec > 0 {
		rate = fmt.Sprintf("%d/s, burst %d", h.RatePerSec, h.Burst)
	}
	lag := "-"
	if h.Lagging {
		lag = fmt.Sprintf("revisions %d to %d await one resync delivery", h.LagFrom, h.LagTo)
	}
	s := h.Stats
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"name", h.Name}, {"pattern", h.Pattern}, {"events", strings.Join(h.Events, ", ")}, {"filter", h.Filter},
		{"handler", hookHandlerText(h)}, {"enabled", fmt.Sprint(!h.Disabled)}, {"mode", hookModeText(h)},
		{"max attempts", fmt.Sprint(h.MaxAttempts)}, {"timeout", ms(h.TimeoutMs)},
		{"backoff", ms(h.BackoffMs) + " to " + ms(h.BackoffMaxMs)}, {"rate", rate}, {"created", h.Created},
		{"matched", fmt.Sprint(s.Matched)}, {"submitted", fmt.Sprint(s.Submitted)}, {"delivered", fmt.Sprint(s.Delivered)},
		{"failed", fmt.Sprint(s.Failed)}, {"dead", fmt.Sprint(s.Dead)}, {"retried", fmt.Sprint(s.Retried)},
		{"resyncs", fmt.Sprintf("%d (%d changes)", s.Resyncs, s.Lagged)}, {"backlog", fmt.Sprint(h.Backlog)},
		{"in flight", fmt.Sprint(h.InFlight)}, {"lagging", lag},
		{"lag", fmt.Sprintf("%d revisions, %.1f s", h.LagRevisions, h.LagSeconds)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

func runHookDeliveries(c *cli.Context) error {
	name, c, err := hookNameFlags(c)
	if err != nil {
		return err
	}
	retry, drop := c.Bool("retry-dead"), c.Bool("drop-dead")
	state := c.String("state")
	switch {
	case retry && drop:
		return usageError("hook deliveries: --retry-dead or --drop-dead, not both")
	case (retry || drop) && state != "" && state != "dead":
		return usageError("hook deliveries: --retry-dead and --drop-dead act on dead deliveries; drop --state %s", state)
	case retry || drop:
		state = "dead"
	}
	var d server.HookDeliveries
	if err := hookCall(c, "deliveries", server.HookRequest{Name: name, State: state, Limit: c.Int("limit")}, &d); err != nil {
		return failure("hook deliveries %s: %v", name, err)
	}
	if retry || drop {
		return hookDeadOp(c, d.Jobs, retry)
	}
	if len(d.Jobs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tKEY\tATTEMPTS\tWORKER\tREASON")
	for _, j := range d.Jobs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.State, j.Key, j.Attempts, j.MaxAttempts, orDash(j.Worker), orDash(j.Reason))
	}
	if d.Next != 0 || d.Truncated {
		fmt.Fprintln(tw, "(more: raise --limit, or list one --state)")
	}
	return tw.Flush()
}

// hookDeadOp retries or drops dead deliveries through the job API's dead
// letter endpoints, one by one.
func hookDeadOp(c *cli.Context, dead []server.JobInfo, retry bool) error {
	op, done := "dead/drop", "dropped"
	if retry {
		op, done = "dead/retry", "retried"
	}
	for _, j := range dead {
		ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
		err := jobCall(ctx, c, op, server.JobRequest{ID: j.ID}, &server.JobInfo{})
		cancel()
		if err != nil {
			return failure("%s delivery %d: %v", strings.TrimPrefix(op, "dead/"), j.ID, err)
		}
		fmt.Fprintf(c.App.Writer, "%s delivery %d (%s)\n", done, j.ID, j.Key)
	}
	return nil
}

func hookHandlerText(h server.HookInfo) string {
	switch {
	case h.Handler == "http":
		return "http " + h.URL
	case h.Handler == "job":
		return "job " + h.JobType
	case h.Handler == "shell" && h.Command != nil:
		return "shell " + strings.Join(h.Command.Argv, " ")
	}
	return h.Handler
}

func hookModeText(h server.HookInfo) string {
	if h.Mode == "parallel" {
		return fmt.Sprintf("parallel %d", h.Parallel)
	}
	return h.Mode
}

func hookBacklogText(h server.HookInfo) string {
	if h.Lagging {
		return fmt.Sprintf("%d (lagging)", h.Backlog)
	}
	return fmt.Sprint(h.Backlog)
}
