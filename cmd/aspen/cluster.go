package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

func clusterCommand() *cli.Command {
	status := &cli.Command{
		Name:  "status",
		Usage: "show one node's view of the cluster: role, term, leader, progress, peers",
		Flags: []cli.Flag{
			addrFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print the node's status report as JSON"},
		},
		OnUsageError: onUsageError,
		Action:       runClusterStatus,
	}
	return &cli.Command{
		Name:            "cluster",
		Usage:           "inspect a running cluster",
		Subcommands:     []*cli.Command{status},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

func runClusterStatus(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	raw, err := fetchStatus(ctx, kvClient(c))
	if err != nil {
		return failure("%v", err)
	}
	if c.Bool("json") {
		// The server's own JSON, indented: fields added there show up here
		// without a change to the CLI.
		var out bytes.Buffer
		if err := json.Indent(&out, raw, "", "  "); err != nil {
			return failure("status from %s is not JSON: %v", c.String("addr"), err)
		}
		_, err := c.App.Writer.Write(out.Bytes())
		return err
	}
	var rep server.StatusReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return failure("decode status from %s: %v", c.String("addr"), err)
	}
	return printStatus(c.App.Writer, rep)
}

func fetchStatus(ctx context.Context, cl *client) ([]byte, error) {
	resp, err := cl.do(ctx, http.MethodGet, "/v1/aspen/status", nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read status from %s: %w", cl.addr, err)
	}
	return raw, nil
}

func printStatus(w io.Writer, rep server.StatusReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
	row("node", "%d (%s)", rep.ID, memberOf(rep, rep.ID).PeerAddr)
	row("role", "%s", roleName(rep.Role))
	row("term", "%d", rep.Term)
	row("leader", "%s", leaderText(rep))
	row("commit", "%d", rep.Commit)
	row("applied", "%d", rep.Applied)
	row("revision", "%d", rep.Revision)
	row("keys", "%d", rep.Keys)
	row("log", "%d..%d (snapshot at %d)", rep.LogFirst, rep.LogLast, rep.SnapshotIndex)
	row("pending", "%d writes, %d reads", rep.PendingWrites, rep.PendingReads)
	if err := tw.Flush(); err != nil {
		return err
	}
	return printMembers(w, rep)
}

// printMembers is one row per member: its addresses, and for the others
// this node's link to it.
func printMembers(w io.Writer, rep server.StatusReport) error {
	if len(rep.Members) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tPEER ADDR\tHTTP ADDR\tVOTER\tCONNECTED\tQUEUED\tSENT\tDROPPED\tLAST CONTACT\tLAST ERROR")
	members := slices.Clone(rep.Members)
	slices.SortFunc(members, func(a, b node.Member) int { return cmp.Compare(a.ID, b.ID) })
	for _, m := range members {
		link := "self\t-\t-\t-\t-\t-"
		if m.ID != rep.ID {
			link = peerLink(rep, m.ID)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", m.ID, orDash(m.PeerAddr), orDash(m.HTTPAddr), yesNo(!m.Learner), link)
	}
	return tw.Flush()
}

func peerLink(rep server.StatusReport, id uint64) string {
	p, ok := rep.Peers[id]
	if !ok {
		return "no\t-\t-\t-\t" + orDash(rep.LastContact[id]) + "\t-"
	}
	return fmt.Sprintf("%s\t%d\t%d\t%d\t%s\t%s", yesNo(p.Connected), p.Queued, p.Sent, p.Dropped, orDash(rep.LastContact[id]), orDash(p.LastError))
}

func memberOf(rep server.StatusReport, id uint64) node.Member {
	for _, m := range rep.Members {
		if m.ID == id {
			return m
		}
	}
	return node.Member{}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// roleName turns raft's "StateLeader" into "leader".
func roleName(role string) string {
	return strings.ToLower(strings.TrimPrefix(role, "State"))
}

func leaderText(rep server.StatusReport) string {
	if rep.Lead == 0 {
		return "none known"
	}
	if rep.LeaderAddr == "" {
		return fmt.Sprintf("%d", rep.Lead)
	}
	return fmt.Sprintf("%d (%s)", rep.Lead, rep.LeaderAddr)
}
