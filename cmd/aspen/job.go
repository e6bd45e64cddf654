package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

// jobListLimitDefault bounds what `job list` prints unless told otherwise:
// a screenful or two; the server's page bound is larger.
const jobListLimitDefault = 100

// jobStateNames are the states in the order `job list` walks them.
var jobStateNames = []string{"pending", "leased", "succeeded", "failed", "dead", "cancelled"}

func jobCommand() *cli.Command {
	return &cli.Command{
		Name:  "job",
		Usage: "submit, inspect and cancel jobs, and handle dead letters (jobs that ran out of attempts)",
		Subcommands: []*cli.Command{
			kvLeaf("submit", "submit a job of TYPE and print its id (TYPE shell: the command after --, allowed by --token)", "TYPE [-- ARGV...]", runJobSubmit, append([]cli.Flag{
				&cli.StringFlag{Name: "payload", Usage: "the job's payload: UTF-8 text, - for stdin, @FILE for a file"},
				&cli.Int64Flag{Name: "priority", Usage: "higher leases first"},
				&cli.Int64Flag{Name: "max-attempts", Value: 3, Usage: "leases the job may be given in all"},
				&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "a lease not heartbeaten for this long expires"},
				&cli.DurationFlag{Name: "backoff", Value: time.Second, Usage: "the delay before the first retry, doubled for each later one (0: retry at once)"},
				&cli.DurationFlag{Name: "backoff-max", Value: time.Minute, Usage: "the cap on the retry delay"},
				&cli.StringFlag{Name: "key", Usage: "idempotency key: a second submit with it answers the first job"}},
				shellFlags()...)...),
			kvLeaf("list", "list jobs by id with their state, attempts and worker", "", runJobList,
				&cli.StringFlag{Name: "state", Usage: "only jobs in this state: pending, leased, succeeded, failed, dead, cancelled (default: every state)"},
				&cli.IntFlag{Name: "limit", Value: jobListLimitDefault, Usage: "print at most this many jobs"}),
			kvLeaf("get", "print a job: its spec, state, lease and result", "ID", runJobGet),
			kvLeaf("cancel", "cancel a pending or leased job", "ID", runJobCancel),
			kvLeaf("output", "print a succeeded job's output as stored (its exit code goes to stderr)", "ID", runJobOutput),
			kvLeaf("stats", "print how many jobs are in each state, and the node's lease expiries, retries and dead letters since it started", "", runJobStats),
			{
				Name:  "dead",
				Usage: "list, retry or drop dead letters",
				Subcommands: []*cli.Command{
					kvLeaf("list", "list the dead letters", "", runJobDeadList,
						&cli.IntFlag{Name: "limit", Value: jobListLimitDefault, Usage: "print at most this many jobs"}),
					kvLeaf("retry", "put a dead job back to pending with its attempts reset", "ID", runJobDeadOp("retry")),
					kvLeaf("drop", "delete a dead job", "ID", runJobDeadOp("drop")),
				},
				HideHelpCommand: true,
				Action:          unknownSubcommand,
			},
		},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

// jobCall POSTs req to a job endpoint and decodes the answer into v.
func jobCall(ctx context.Context, c *cli.Context, op string, req server.JobRequest, v any) error {
	return kvClient(c).postAspen(ctx, "job/"+op, req, v)
}

func runJobSubmit(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError("job submit wants TYPE, got %q", args)
	}
	c, argv, err := flagsAfterArg(c, args[1:])
	if err != nil {
		return err
	}
	req := server.JobRequest{Type: args[0], Priority: c.Int64("priority"), MaxAttempts: c.Int64("max-attempts"), Key: c.String("key")}
	switch {
	case args[0] == shellJobType && len(argv) == 0:
		return usageError("job submit shell wants the command after --, as in: job submit shell --token @T -- /bin/echo hi")
	case args[0] != shellJobType && len(argv) > 0:
		return usageError("job submit: an argv after -- is for TYPE shell, not %q", args[0])
	case len(argv) > 0:
		if c.IsSet("payload") {
			return usageError("job submit shell: the argv after -- is the command; drop --payload")
		}
		if req.ShellCommand, err = shellCommand(c, argv); err != nil {
			return err
		}
	default:
		if err := noShellFlags(c); err != nil {
			return err
		}
	}
	if c.IsSet("payload") {
		payload, err := readValue(c, c.String("payload"))
		if err != nil {
			return err
		}
		// The API carries text: invalid UTF-8 would arrive changed.
		if !utf8.Valid(payload) {
			return usageError("--payload is not UTF-8 text; encode binary data (base64, say) first")
		}
		req.Payload = string(payload)
	}
	for _, d := range []struct {
		flag string
		ms   *int64
		min  time.Duration
	}{{"timeout", &req.TimeoutMs, time.Millisecond}, {"backoff", &req.BackoffBaseMs, 0}, {"backoff-max", &req.BackoffMaxMs, 0}} {
		v := c.Duration(d.flag)
		if v < d.min || v%time.Millisecond != 0 {
			return usageError("--%s must be a non-negative whole number of milliseconds (such as 30s or 1500ms), got %v", d.flag, v)
		}
		*d.ms = v.Milliseconds()
	}
	if req.BackoffMaxMs < req.BackoffBaseMs {
		req.BackoffMaxMs = req.BackoffBaseMs // a --backoff above the default cap means the caller wants at least that
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var j server.JobInfo
	if err := jobCall(ctx, c, "submit", req, &j); err != nil {
		return failure("submit: %v", err)
	}
	if j.Existing {
		fmt.Fprintf(c.App.Writer, "job %d already holds key %q (%s); nothing submitted\n", j.ID, j.Key, j.State)
		return nil
	}
	fmt.Fprintf(c.App.Writer, "submitted job %d (%s)\n", j.ID, j.Type)
	return nil
}

// jobID reads the one argument, a job id.
func jobID(c *cli.Context) (uint64, error) {
	args, err := exactArgs(c, "ID")
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || id == 0 {
		return 0, usageError("ID must be a positive job id, got %q", args[0])
	}
	return id, nil
}

// jobByID runs op (get, cancel, dead/retry, dead/drop) on the job named by
// the one argument.
func jobByID(c *cli.Context, op string) (server.JobInfo, error) {
	id, err := jobID(c)
	if err != nil {
		return server.JobInfo{}, err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var j server.JobInfo
	if err := jobCall(ctx, c, op, server.JobRequest{ID: id}, &j); err != nil {
		return j, failure("%s: %v", op, err)
	}
	return j, nil
}

func runJobList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	limit := c.Int("limit")
	if limit < 1 {
		return usageError("--limit must be at least 1, got %d", limit)
	}
	states := jobStateNames
	if c.IsSet("state") {
		if !slices.Contains(jobStateNames, c.String("state")) {
			return usageError("--state must be one of %v, got %q", jobStateNames, c.String("state"))
		}
		states = []string{c.String("state")}
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var all []server.JobInfo
	more := false
	for _, s := range states {
		var page server.JobList
		if err := jobCall(ctx, c, "list", server.JobRequest{State: s, Limit: limit}, &page); err != nil {
			return failure("list: %v", err)
		}
		all, more = append(all, page.Jobs...), more || page.Next != 0
	}
	slices.SortFunc(all, func(a, b server.JobInfo) int { return cmp.Compare(a.ID, b.ID) })
	if len(all) > limit {
		all, more = all[:limit], true
	}
	if more {
		fmt.Fprintf(c.App.ErrWriter, "aspen: more jobs than --limit %d; showing the oldest\n", limit)
	}
	return printJobs(c.App.Writer, all)
}

func printJobs(w io.Writer, list []server.JobInfo) error {
	if len(list) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tTYPE\tSTATE\tATTEMPTS\tPRIORITY\tWORKER\tREASON")
	for _, j := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", j.ID, displayValue([]byte(j.Type)), j.State, j.Attempts, j.MaxAttempts,
			j.Priority, orDash(displayValue([]byte(j.Worker))), orDash(displayValue([]byte(j.Reason))))
	}
	return tw.Flush()
}

func runJobGet(c *cli.Context) error {
	j, err := jobByID(c, "get")
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	at := func(v int64) string { return time.UnixMilli(v).UTC().Format("2006-01-02T15:04:05.000Z") }
	fmt.Fprintf(tw, "job\t%d\n", j.ID)
	fmt.Fprintf(tw, "type\t%s\n", displayValue([]byte(j.Type)))
	fmt.Fprintf(tw, "state\t%s\n", j.State)
	fmt.Fprintf(tw, "attempts\t%d of %d\n", j.Attempts, j.MaxAttempts)
	fmt.Fprintf(tw, "priority\t%d\n", j.Priority)
	fmt.Fprintf(tw, "timeout\t%v\n", ms(j.TimeoutMs))
	fmt.Fprintf(tw, "backoff\t%v to %v\n", ms(j.BackoffBaseMs), ms(j.BackoffMaxMs))
	fmt.Fprintf(tw, "submitted\t%s\n", at(j.SubmittedMs))
	for _, f := range []struct {
		name, value string
		set         bool
	}{
		{"key", displayValue([]byte(j.Key)), j.Key != ""},
		{"not before", at(j.NotBeforeMs), j.NotBeforeMs != 0},
		{"worker", displayValue([]byte(j.Worker)), j.Worker != ""},
		{"token", strconv.FormatUint(j.Token, 10), j.Token != 0},
		{"deadline", at(j.DeadlineMs), j.DeadlineMs != 0},
		{"finished", at(j.FinishedMs), j.FinishedMs != 0},
		{"reason", displayValue([]byte(j.Reason)), j.Reason != ""},
		{"payload", fmt.Sprintf("%d bytes", len(j.Payload)), true},
	} {
		if f.set {
			fmt.Fprintf(tw, "%s\t%s\n", f.name, f.value)
		}
	}
	var g token.Grant
	if j.Type == shellJobType && json.Unmarshal([]byte(j.Payload), &g) == nil && len(g.Argv) > 0 {
		// For display only: the worker checks the grant's MAC before it runs anything.
		fmt.Fprintf(tw, "command\t%s\n", displayValue([]byte(strings.Join(g.Argv, " "))))
		fmt.Fprintf(tw, "dir\t%s\n", displayValue([]byte(g.Dir)))
		fmt.Fprintf(tw, "capability\t%s (%s)\n", displayValue([]byte(g.Claims.ID)), displayValue([]byte(g.Claims.Subject)))
	}
	if r := j.Result; r != nil {
		fmt.Fprintf(tw, "exit code\t%d\n", r.ExitCode)
		fmt.Fprintf(tw, "output\t%d bytes (aspen job output %d)\n", len(r.Output), j.ID)
		if r.Detail != "" {
			fmt.Fprintf(tw, "detail\t%s\n", displayValue([]byte(r.Detail)))
		}
	}
	return tw.Flush()
}

func runJobCancel(c *cli.Context) error {
	j, err := jobByID(c, "cancel")
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "cancelled job %d\n", j.ID)
	return nil
}

// runJobOutput prints the output as stored, byte for byte, so that it can
// be piped; the exit code goes to stderr to keep stdout clean.
func runJobOutput(c *cli.Context) error {
	j, err := jobByID(c, "get")
	if err != nil {
		return err
	}
	if j.Result == nil {
		return failure("job %d is %s: it has no output", j.ID, j.State)
	}
	io.WriteString(c.App.Writer, j.Result.Output)
	fmt.Fprintf(c.App.ErrWriter, "exit code %d\n", j.Result.ExitCode)
	return nil
}

func runJobDeadList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	limit := c.Int("limit")
	if limit < 1 {
		return usageError("--limit must be at least 1, got %d", limit)
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var page server.JobList
	if err := jobCall(ctx, c, "dead/list", server.JobRequest{Limit: limit}, &page); err != nil {
		return failure("dead list: %v", err)
	}
	if page.Next != 0 {
		fmt.Fprintf(c.App.ErrWriter, "aspen: more dead letters than --limit %d; showing the oldest\n", limit)
	}
	return printJobs(c.App.Writer, page.Jobs)
}

func runJobDeadOp(op string) cli.ActionFunc {
	return func(c *cli.Context) error {
		j, err := jobByID(c, "dead/"+op)
		if err != nil {
			return err
		}
		if op == "retry" {
			fmt.Fprintf(c.App.Writer, "job %d is pending again, its attempts reset\n", j.ID)
		} else {
			fmt.Fprintf(c.App.Writer, "dropped job %d\n", j.ID)
		}
		return nil
	}
}
