package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/aspen-db/aspen/core/node"
	"github.com/urfave/cli/v2"
)

const (
	// leaderHopsMax bounds the nodes one leader-only request visits: a
	// redirect per member of a large cluster, with rounds through an election.
	leaderHopsMax = 64
	// leaderRoundPause spaces rounds through the members when none of them
	// knew a leader: an election is under way.
	leaderRoundPause = 200 * time.Millisecond
)

// memberCommands change who is in the cluster. Each is sent to --addr and,
// when that node is not the leader, to the leader it names.
func memberCommands() []*cli.Command {
	idFlag := func() cli.Flag { return &cli.Uint64Flag{Name: "id", Usage: "the member's node id (required)"} }
	return []*cli.Command{
		memberLeaf("add", "add a node as a learner (or with --voter, a voter) and print the membership", runMemberAdd,
			idFlag(),
			&cli.StringFlag{Name: "peer-addr", Usage: "host:port the members reach the new node at (required)"},
			&cli.StringFlag{Name: "http-addr", Usage: "host:port of the new node's HTTP API (the node also advertises it once it runs)"},
			&cli.BoolFlag{Name: "voter", Usage: "add as a voter at once instead of a learner (a voter that is far behind can stall writes)"}),
		memberLeaf("promote", "make a learner a voter once it has caught up, and print the membership", runMemberPromote, idFlag()),
		memberLeaf("remove", "remove a member (it stops on its own) and print the membership", runMemberRemove, idFlag()),
		memberLeaf("transfer-leader", "hand leadership to a member, wait until it leads, and print the membership", runTransferLeader, idFlag()),
	}
}

func memberLeaf(name, usage string, action cli.ActionFunc, flags ...cli.Flag) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage,
		Flags:        append([]cli.Flag{addrFlag()}, flags...),
		OnUsageError: onUsageError,
		Action:       action,
	}
}

// memberChange is the body of POST /v1/aspen/members.
type memberChange struct {
	Op       string `json:"op"`
	ID       uint64 `json:"id"`
	PeerAddr string `json:"peer_addr,omitempty"`
	HTTPAddr string `json:"http_addr,omitempty"`
}

func runMemberAdd(c *cli.Context) error {
	id, err := memberID(c)
	if err != nil {
		return err
	}
	if c.String("peer-addr") == "" {
		return usageError("%s needs --peer-addr: where the members reach node %d", cmdName(c), id)
	}
	op := "add-learner"
	if c.Bool("voter") {
		op = "add-voter"
	}
	return changeMembers(c, memberChange{Op: op, ID: id, PeerAddr: c.String("peer-addr"), HTTPAddr: c.String("http-addr")})
}

func runMemberPromote(c *cli.Context) error {
	id, err := memberID(c)
	if err != nil {
		return err
	}
	return changeMembers(c, memberChange{Op: "promote", ID: id})
}

func runMemberRemove(c *cli.Context) error {
	id, err := memberID(c)
	if err != nil {
		return err
	}
	return changeMembers(c, memberChange{Op: "remove", ID: id})
}

func memberID(c *cli.Context) (uint64, error) {
	if err := noArgs(c); err != nil {
		return 0, err
	}
	if c.Uint64("id") == 0 {
		return 0, usageError("%s needs --id, a non-zero node id", cmdName(c))
	}
	return c.Uint64("id"), nil
}

func changeMembers(c *cli.Context, change memberChange) error {
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	body, err := json.Marshal(change)
	if err != nil {
		return failure("encode request: %v", err)
	}
	var members []node.Member
	if _, err := leaderCall(ctx, &http.Client{}, c.String("addr"), "/v1/aspen/members", nil, body, &members); err != nil {
		return failure("%s node %d: %v", change.Op, change.ID, err)
	}
	return printMembership(c.App.Writer, members, 0)
}

func runTransferLeader(c *cli.Context) error {
	id, err := memberID(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	hc := &http.Client{}
	var answer struct{ Leader uint64 }
	q := url.Values{"id": {strconv.FormatUint(id, 10)}}
	by, err := leaderCall(ctx, hc, c.String("addr"), "/v1/aspen/transfer-leader", q, nil, &answer)
	if err != nil {
		return failure("transfer leadership to node %d: %v", id, err)
	}
	if answer.Leader != id {
		return failure("transfer leadership to node %d: %s answered that node %d leads", id, by, answer.Leader)
	}
	var members []node.Member
	if _, err := newClient(by, hc).getJSON(ctx, "/v1/aspen/members", nil, &members); err != nil {
		return failure("node %d leads, but the membership could not be read: %v", id, err)
	}
	return printMembership(c.App.Writer, members, id)
}

// printMembership is one row per member; lead is 0 when not known.
func printMembership(w io.Writer, members []node.Member, lead uint64) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tPEER ADDR\tHTTP ADDR\tROLE")
	for _, m := range sortedMembers(members) {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.ID, orDash(m.PeerAddr), orDash(m.HTTPAddr), memberRole(m, lead))
	}
	return tw.Flush()
}

func memberRole(m node.Member, lead uint64) string {
	switch {
	case m.ID == lead && lead != 0:
		return "leader"
	case m.Learner:
		return "learner"
	}
	return "voter"
}

// notLeaderAnswer is the body of a 421: where the leader is, if known.
type notLeaderAnswer struct {
	Error          string `json:"error"`
	LeaderID       uint64 `json:"leader_id"`
	LeaderHTTPAddr string `json:"leader_http_addr"`
}

// leaderCall POSTs a leader-only request to addr and decodes the answer
// into v. A node that is not the leader answers 421: the request then goes
// to the leader it names, or, when it names none, to the other members it
// knows, in rounds until one leads. It returns the address that answered.
func leaderCall(ctx context.Context, hc *http.Client, addr, path string, query url.Values, body []byte, v any) (string, error) {
	s := leaderSearch{hc: hc, first: addr, visited: map[string]bool{}}
	queue := []string{addr}
	var lastErr error
	for range leaderHopsMax {
		if len(queue) == 0 {
			if queue = s.nextRound(ctx); len(queue) == 0 {
				return "", fmt.Errorf("no leader found: %w", errors.Join(lastErr, ctx.Err()))
			}
		}
		target := queue[0]
		queue = queue[1:]
		s.visited[target] = true
		nl, err := postOnce(ctx, hc, target, path, query, body, v)
		switch {
		case err == nil && nl == nil:
			return target, nil
		case err != nil && (target == addr && len(s.known) == 0 || !isNotSent(err)):
			// The node the user named is down, or the answer is final, or
			// the request may have been acted on: sending it again elsewhere
			// could apply it twice.
			return "", err
		case err != nil:
			lastErr = err // a member that is down: try the others
		default:
			lastErr = errors.New(nl.Error)
			queue = s.redirect(ctx, target, nl, queue)
		}
	}
	return "", fmt.Errorf("no leader found after %d requests: %w", leaderHopsMax, lastErr)
}

// leaderSearch remembers the members learned while looking for the leader.
type leaderSearch struct {
	hc      *http.Client
	first   string          // the address the user gave
	known   []string        // members' HTTP addresses, in the order learned
	visited map[string]bool // addresses asked in this round
}

// redirect queues the leader a 421 named, or else the members target knows.
func (s *leaderSearch) redirect(ctx context.Context, target string, nl *notLeaderAnswer, queue []string) []string {
	if nl.LeaderHTTPAddr != "" && !s.visited[nl.LeaderHTTPAddr] {
		s.learn(nl.LeaderHTTPAddr)
		return append([]string{nl.LeaderHTTPAddr}, queue...)
	}
	var members []node.Member
	if _, err := newClient(target, s.hc).getJSON(ctx, "/v1/aspen/members", nil, &members); err == nil {
		for _, m := range members {
			s.learn(m.HTTPAddr)
		}
	}
	for _, a := range s.known {
		if !s.visited[a] && !slices.Contains(queue, a) {
			queue = append(queue, a)
		}
	}
	return queue
}

func (s *leaderSearch) learn(addr string) {
	if addr != "" && !slices.Contains(s.known, addr) {
		s.known = append(s.known, addr)
	}
}

// nextRound waits a moment and starts over with every address known: none
// of the nodes asked knew a leader, so an election is likely under way.
func (s *leaderSearch) nextRound(ctx context.Context) []string {
	t := time.NewTimer(leaderRoundPause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil
	}
	clear(s.visited)
	if !slices.Contains(s.known, s.first) {
		return append([]string{s.first}, s.known...)
	}
	return slices.Clone(s.known)
}

// postOnce sends one POST. A 421 comes back as a notLeaderAnswer; a 2xx
// answer is decoded into v; anything else is an error.
func postOnce(ctx context.Context, hc *http.Client, addr, path string, query url.Values, body []byte, v any) (*notLeaderAnswer, error) {
	cl := newClient(addr, hc)
	u := cl.base + path
	if len(query) > 0 {
		u += "?" + encodeQuery(query)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := hc.Do(req)
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		return nil, &notSentError{cl.transportError(err)}
	case err != nil:
		return nil, fmt.Errorf("%w (the request may or may not have taken effect)", cl.transportError(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusMisdirectedRequest:
		var nl notLeaderAnswer
		if err := json.NewDecoder(io.LimitReader(resp.Body, errorBodyBytesMax)).Decode(&nl); err != nil {
			return nil, fmt.Errorf("decode 421 answer from %s: %w", addr, err)
		}
		return &nl, nil
	case resp.StatusCode/100 != 2:
		return nil, fmt.Errorf("%s: %w", addr, readStatusError(resp))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return nil, fmt.Errorf("decode answer from %s: %w", addr, err)
	}
	return nil, nil
}

// notSentError is a request that never reached the node (its dial failed),
// so it is safe to send to another.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

func isNotSent(err error) bool {
	var ns *notSentError
	return errors.As(err, &ns)
}
