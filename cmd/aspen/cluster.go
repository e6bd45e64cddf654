package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"go.etcd.io/raft/v3"
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
		Usage: "show one node's view of the cluster, and each member's replication as the leader sees it",
		Flags: []cli.Flag{
			addrFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print the node's status report as JSON"},
		},
		OnUsageError: onUsageError,
		Action:       runClusterStatus,
	}
	return &cli.Command{
		Name:            "cluster",
		Usage:           "inspect a running cluster and change its membership",
		Subcommands:     append([]*cli.Command{status}, memberCommands()...),
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
	return printStatus(c.App.Writer, rep, leaderReport(ctx, rep))
}

// leaderView is the leader's own status report, which alone holds each
// member's replication progress; why says what went wrong when there is none.
type leaderView struct {
	rep *server.StatusReport
	why string
}

// leaderReport is rep itself when its node leads, else the leader's report
// fetched from the HTTP address the membership gives for it.
func leaderReport(ctx context.Context, rep server.StatusReport) leaderView {
	if rep.Role == raft.StateLeader {
		return leaderView{rep: &rep}
	}
	if rep.Lead == 0 {
		return leaderView{why: "no leader known"}
	}
	addr := memberOf(rep, rep.Lead).HTTPAddr
	if addr == "" {
		return leaderView{why: fmt.Sprintf("the HTTP address of leader %d is not known yet", rep.Lead)}
	}
	raw, err := fetchStatus(ctx, newClient(addr, &http.Client{}))
	if err != nil {
		return leaderView{why: fmt.Sprintf("leader %d: %v", rep.Lead, err)}
	}
	var lr server.StatusReport
	switch {
	case json.Unmarshal(raw, &lr) != nil:
		return leaderView{why: fmt.Sprintf("leader %d at %s answered a status that is not JSON", rep.Lead, addr)}
	case lr.ID != rep.Lead || lr.Role != raft.StateLeader:
		return leaderView{why: fmt.Sprintf("node %d at %s no longer leads (it is %s)", lr.ID, addr, roleName(lr.Role))}
	}
	return leaderView{rep: &lr}
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

func printStatus(w io.Writer, rep server.StatusReport, lead leaderView) error {
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
	if err := printMembers(w, rep, lead); err != nil {
		return err
	}
	return printLinks(w, rep)
}

// printMembers is one row per member: its addresses and role, and its
// replication as the leader tracks it (the leader's last contact included,
// since only the leader hears from every member regularly).
func printMembers(w io.Writer, rep server.StatusReport, lead leaderView) error {
	if len(rep.Members) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	if lead.rep == nil {
		fmt.Fprintf(w, "replication progress unknown: %s\n", lead.why)
	} else if lead.rep.ID != rep.ID {
		fmt.Fprintf(w, "replication as leader %d sees it:\n", lead.rep.ID)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tPEER ADDR\tHTTP ADDR\tROLE\tMATCH\tLAG\tSTATE\tLAST CONTACT")
	for _, m := range sortedMembers(rep.Members) {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", m.ID, orDash(m.PeerAddr), orDash(m.HTTPAddr), memberRole(m, rep.Lead), progressCells(lead.rep, m.ID))
	}
	return tw.Flush()
}

// progressCells are the MATCH, LAG, STATE and LAST CONTACT of member id.
func progressCells(lr *server.StatusReport, id uint64) string {
	if lr == nil {
		return "-\t-\t-\t-"
	}
	contact := "self"
	if id != lr.ID {
		contact = orDash(lr.LastContact[id])
	}
	for _, p := range lr.Progress {
		if p.ID == id {
			return fmt.Sprintf("%d\t%d\t%s\t%s", p.Match, p.Lag, stateName(p.State), contact)
		}
	}
	return "-\t-\t-\t" + contact
}

// printLinks is this node's connection to each other member.
func printLinks(w io.Writer, rep server.StatusReport) error {
	if len(rep.Members) <= 1 {
		return nil
	}
	fmt.Fprintf(w, "\nlinks from node %d:\n", rep.ID)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tCONNECTED\tQUEUED\tSENT\tDROPPED\tLAST CONTACT\tLAST ERROR")
	for _, m := range sortedMembers(rep.Members) {
		if m.ID != rep.ID {
			fmt.Fprintf(tw, "%d\t%s\n", m.ID, peerLink(rep, m.ID))
		}
	}
	return tw.Flush()
}

func sortedMembers(members []node.Member) []node.Member {
	members = slices.Clone(members)
	slices.SortFunc(members, func(a, b node.Member) int { return cmp.Compare(a.ID, b.ID) })
	return members
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

// roleName turns raft's StateLeader into "leader".
func roleName(role raft.StateType) string { return stateName(role.String()) }

// stateName turns raft's "StateLeader" into "leader", and a progress state
// such as "StateReplicate" into "replicate".
func stateName(s string) string { return strings.ToLower(strings.TrimPrefix(s, "State")) }

func leaderText(rep server.StatusReport) string {
	if rep.Lead == 0 {
		return "none known"
	}
	if rep.LeaderAddr == "" {
		return fmt.Sprintf("%d", rep.Lead)
	}
	return fmt.Sprintf("%d (%s)", rep.Lead, rep.LeaderAddr)
}
