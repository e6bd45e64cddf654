package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

// groupListLimitDefault bounds what `group list` and `group dead list`
// print unless told otherwise.
const groupListLimitDefault = 100

func groupCommand() *cli.Command {
	return &cli.Command{
		Name:  "group",
		Usage: "create, inspect and reset consumer groups of a topic, run a consumer, and handle dead letters",
		Subcommands: []*cli.Command{
			kvLeaf("create", "create a consumer group NAME of a topic", "NAME", runGroupCreate,
				&cli.StringFlag{Name: "topic", Usage: "the topic the group reads; required"},
				&cli.StringFlag{Name: "mode", Value: "partitioned", Usage: "partitioned (each partition one member's, offsets committed) or competing (a work queue: each message leased and acked)"},
				&cli.StringFlag{Name: "start", Value: "earliest", Usage: "earliest (every message held) or latest (only messages published after the create)"},
				&cli.DurationFlag{Name: "session", Usage: "partitioned: a member not heard from for this long leaves (default 10s)"},
				&cli.DurationFlag{Name: "ack-wait", Usage: "competing: how long a fetched message is leased (default 30s)"},
				&cli.IntFlag{Name: "max-deliveries", Usage: "competing: deliveries before a message goes to the dead letters (default 5)"},
				&cli.IntFlag{Name: "max-in-flight", Usage: "competing: leases one member may hold (default 200)"}),
			kvLeaf("delete", "delete a group with its offsets, leases and dead letters", "NAME", runGroupDelete),
			kvLeaf("list", "list groups with their topic, mode, generation and dead letters", "", runGroupList,
				&cli.IntFlag{Name: "limit", Value: groupListLimitDefault, Usage: "print at most this many groups"}),
			kvLeaf("describe", "print a group: members, partitions, committed offsets and lag", "NAME", runGroupDescribe,
				&cli.BoolFlag{Name: "json", Usage: "print the answer as JSON"}),
			kvLeaf("consume", "run a consumer: print each message (partition offset key value) or run a command per message, then ack or commit it", "GROUP [-- ARGV...]", runGroupConsume,
				&cli.StringFlag{Name: "member", Usage: "this consumer's member id; required"},
				&cli.IntFlag{Name: "max", Usage: "stop after this many messages (0: until Ctrl-C or SIGTERM)"},
				&cli.IntFlag{Name: "batch", Value: consumeBatchDefault, Usage: "messages read or fetched at once"},
				&cli.DurationFlag{Name: "poll", Value: consumePollDefault, Usage: "the pause after a call that failed (an idle consumer waits on the cluster instead)"}),
			kvLeaf("reset", "move a group's offsets (no members, nothing leased)", "NAME", runGroupReset,
				&cli.StringFlag{Name: "to", Usage: "earliest, latest, time or offset; required"},
				&cli.IntFlag{Name: "partition", Value: -1, Usage: "only this partition (default: every one)"},
				&cli.Int64Flag{Name: "offset", Value: -1, Usage: "--to offset: the offset"},
				&cli.TimestampFlag{Name: "time", Layout: time.RFC3339, Usage: "--to time: the first message published at or after it (RFC 3339)"}),
			{
				Name:  "dead",
				Usage: "list, replay or drop a competing group's dead letters",
				Subcommands: []*cli.Command{
					kvLeaf("list", "list the dead letters of group NAME", "NAME", runGroupDeadList,
						&cli.IntFlag{Name: "limit", Value: groupListLimitDefault, Usage: "print at most this many letters"}),
					kvLeaf("replay", "put dead letters back in the queue, deliveries counted from zero", "NAME SEQ...", runGroupDeadOp("replay")),
					kvLeaf("drop", "delete dead letters", "NAME SEQ...", runGroupDeadOp("drop")),
				},
				HideHelpCommand: true,
				Action:          unknownSubcommand,
			},
		},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

// groupCall POSTs req to a group endpoint and decodes the answer into v.
func groupCall(ctx context.Context, cl *client, op string, req server.GroupRequest, v any) error {
	return cl.postAspen(ctx, "group/"+op, req, v)
}

// groupReads are the group endpoints that write nothing; every other one
// goes through the log, and the CLI sends it under its own session
// (writer), so that a retry applies once.
var groupReads = map[string]bool{"describe": true, "list": true, "dead/list": true, "read": true}

// groupOp runs one call with the request timeout, failing with its name.
func groupOp(c *cli.Context, op string, req server.GroupRequest, v any) error {
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	call := func() error { return groupCall(ctx, kvClient(c), op, req, v) }
	if !groupReads[op] {
		call = func() error { return newWriter(kvClient(c)).post(ctx, "group/"+op, req, v) }
	}
	if err := call(); err != nil {
		return failure("group %s: %v", op, err)
	}
	return nil
}

func runGroupCreate(c *cli.Context) error {
	args, err := exactArgs(c, "NAME")
	if err != nil {
		return err
	}
	if c.String("topic") == "" {
		return usageError("group create wants --topic")
	}
	req := server.GroupRequest{Name: args[0], Topic: c.String("topic"), Mode: c.String("mode"), Start: c.String("start"),
		MaxDeliveries: c.Int("max-deliveries"), MaxInFlight: c.Int("max-in-flight")}
	for _, d := range []struct {
		flag string
		ms   *int64
	}{{"session", &req.SessionMs}, {"ack-wait", &req.AckWaitMs}} {
		v := c.Duration(d.flag)
		if v < 0 || v%time.Millisecond != 0 {
			return usageError("--%s must be a whole number of milliseconds (such as 10s), got %v", d.flag, v)
		}
		*d.ms = v.Milliseconds()
	}
	var g server.GroupInfo
	if err := groupOp(c, "create", req, &g); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "created %s group %s of topic %s (%d partitions)\n", g.Mode, g.Name, g.Topic, g.Partitions)
	return nil
}

func runGroupDelete(c *cli.Context) error {
	args, err := exactArgs(c, "NAME")
	if err != nil {
		return err
	}
	if err := groupOp(c, "delete", server.GroupRequest{Name: args[0]}, &server.GroupDone{}); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "deleted group %s\n", args[0])
	return nil
}

func runGroupList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	limit := c.Int("limit")
	if limit < 1 {
		return usageError("--limit must be at least 1, got %d", limit)
	}
	var page server.GroupList
	if err := groupOp(c, "list", server.GroupRequest{Limit: limit}, &page); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(c.App.ErrWriter, "aspen: more groups than --limit %d\n", limit)
	}
	if len(page.Groups) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTOPIC\tMODE\tPARTITIONS\tGENERATION\tPENDING\tDEAD")
	for _, g := range page.Groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", displayValue([]byte(g.Name)), displayValue([]byte(g.Topic)), g.Mode, g.Partitions,
			g.Generation, g.Pending, g.DeadLetters)
	}
	return tw.Flush()
}

func runGroupDescribe(c *cli.Context) error {
	args, err := exactArgs(c, "NAME")
	if err != nil {
		return err
	}
	var g server.GroupInfo
	if err := groupOp(c, "describe", server.GroupRequest{Name: args[0]}, &g); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, g)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "group\t%s\n", displayValue([]byte(g.Name)))
	fmt.Fprintf(tw, "topic\t%s\n", displayValue([]byte(g.Topic)))
	fmt.Fprintf(tw, "mode\t%s\n", g.Mode)
	fmt.Fprintf(tw, "generation\t%d\n", g.Generation)
	if g.Mode == "competing" {
		fmt.Fprintf(tw, "pending\t%d\n", g.Pending)
		fmt.Fprintf(tw, "dead letters\t%d\n", g.DeadLetters)
	}
	fmt.Fprintf(tw, "redeliveries\t%d\n", g.Stats.Redeliveries)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "PARTITION\tOWNER\tOFFSET\tEND\tLAG")
	for _, p := range g.Offsets {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\n", p.Partition, orDash(displayValue([]byte(p.Owner))), p.Offset, p.End, p.Lag)
	}
	if len(g.Members) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "MEMBER\tGENERATION\tASSIGNED\tREVOKING\tIN FLIGHT")
		for _, m := range g.Members {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\n", displayValue([]byte(m.ID)), m.Generation, partsText(m.Assigned), partsText(m.Revoking), m.InFlight)
		}
	}
	return tw.Flush()
}

func partsText(ps []int) string {
	if len(ps) == 0 {
		return "-"
	}
	b := []byte{}
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	return string(b)
}

func runGroupReset(c *cli.Context) error {
	args, err := exactArgs(c, "NAME")
	if err != nil {
		return err
	}
	req := server.GroupRequest{Name: args[0], To: c.String("to")}
	if p := c.Int("partition"); p >= 0 {
		req.Partition = &p
	}
	switch req.To {
	case "offset":
		off := c.Int64("offset")
		if off < 0 {
			return usageError("group reset --to offset wants --offset N")
		}
		req.Offset = &off
	case "time":
		at := c.Timestamp("time")
		if at == nil {
			return usageError("group reset --to time wants --time, RFC 3339")
		}
		req.TimeMs = at.UnixMilli()
	case "earliest", "latest":
	default:
		return usageError("group reset wants --to earliest, latest, time or offset, got %q", req.To)
	}
	if err := groupOp(c, "reset", req, &server.GroupDone{}); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "reset group %s to %s\n", args[0], req.To)
	return nil
}

func runGroupDeadList(c *cli.Context) error {
	args, err := exactArgs(c, "NAME")
	if err != nil {
		return err
	}
	limit := c.Int("limit")
	if limit < 1 {
		return usageError("--limit must be at least 1, got %d", limit)
	}
	var page server.GroupDeadLetters
	if err := groupOp(c, "dead/list", server.GroupRequest{Name: args[0], Limit: limit}, &page); err != nil {
		return err
	}
	if page.Next != 0 {
		fmt.Fprintf(c.App.ErrWriter, "aspen: more dead letters than --limit %d; showing the oldest\n", limit)
	}
	if len(page.Letters) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tPARTITION\tOFFSET\tDELIVERIES\tREASON\tAT")
	for _, d := range page.Letters {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\n", d.Seq, d.Partition, d.Offset, d.Deliveries, d.Reason,
			time.UnixMilli(d.TimeMs).UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func runGroupDeadOp(op string) cli.ActionFunc {
	return func(c *cli.Context) error {
		args := c.Args().Slice()
		if len(args) < 2 {
			return usageError("group dead %s wants NAME and at least one SEQ, got %q", op, args)
		}
		req := server.GroupRequest{Name: args[0]}
		for _, a := range args[1:] {
			seq, err := strconv.ParseUint(a, 10, 64)
			if err != nil || seq == 0 {
				return usageError("SEQ must be a dead letter's seq (group dead list shows them), got %q", a)
			}
			req.Seqs = append(req.Seqs, seq)
		}
		var done server.GroupDeadLetters
		if err := groupOp(c, "dead/"+op, req, &done); err != nil {
			return err
		}
		verb := map[string]string{"replay": "replayed", "drop": "dropped"}[op]
		fmt.Fprintf(c.App.Writer, "%s %d dead letters of group %s\n", verb, len(done.Letters), args[0])
		return nil
	}
}
