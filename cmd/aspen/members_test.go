package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go.etcd.io/raft/v3"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/runtime/server"
)

// fakeNode answers membership requests as one node would: as the leader
// (200 with members), or with a 421 naming leaderAddr (empty: none known).
type fakeNode struct {
	srv        *httptest.Server
	lead       bool
	leaderAddr func() string
	members    func() []node.Member
	posts      atomic.Int32
}

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	f := &fakeNode{leaderAddr: func() string { return "" }, members: func() []node.Member { return nil }}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet:
			json.NewEncoder(w).Encode(f.members())
		case f.lead:
			f.posts.Add(1)
			json.NewEncoder(w).Encode(f.members())
		default:
			f.posts.Add(1)
			w.WriteHeader(http.StatusMisdirectedRequest)
			fmt.Fprintf(w, `{"error":"not the leader","leader_id":0,"leader_http_addr":%q}`, f.leaderAddr())
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNode) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func TestLeaderCallFollowsRedirect(t *testing.T) {
	follower, leader := newFakeNode(t), newFakeNode(t)
	leader.lead = true
	follower.leaderAddr = leader.addr
	leader.members = func() []node.Member { return []node.Member{{ID: 1, HTTPAddr: leader.addr()}} }
	var got []node.Member
	by, err := leaderCall(context.Background(), &http.Client{}, follower.addr(), "/v1/aspen/members", nil, []byte(`{}`), &got)
	if err != nil {
		t.Fatalf("leaderCall: %v", err)
	}
	if by != leader.addr() || len(got) != 1 || got[0].ID != 1 {
		t.Fatalf("got answer from %s with members %+v, want the leader %s with member 1", by, got, leader.addr())
	}
	if follower.posts.Load() != 1 || leader.posts.Load() != 1 {
		t.Fatalf("got %d posts to the follower and %d to the leader, want 1 each", follower.posts.Load(), leader.posts.Load())
	}
}

// TestLeaderCallAsksMembers covers a 421 that names no leader (its node
// has not heard from one): the other members it lists are tried, a dead
// one included.
func TestLeaderCallAsksMembers(t *testing.T) {
	first, leader := newFakeNode(t), newFakeNode(t)
	leader.lead = true
	dead := closedAddr(t)
	members := func() []node.Member {
		return []node.Member{{ID: 1, HTTPAddr: first.addr()}, {ID: 2, HTTPAddr: dead}, {ID: 3, HTTPAddr: leader.addr()}}
	}
	first.members, leader.members = members, members
	var got []node.Member
	by, err := leaderCall(context.Background(), &http.Client{}, first.addr(), "/v1/aspen/members", nil, []byte(`{}`), &got)
	if err != nil {
		t.Fatalf("leaderCall: %v", err)
	}
	if by != leader.addr() || len(got) != 3 {
		t.Fatalf("got answer from %s with %d members, want the leader %s with 3", by, len(got), leader.addr())
	}
}

func TestLeaderCallStopsAtRefusal(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		http.Error(w, `{"error":"membership change refused: node 4 is already a member"}`, http.StatusBadRequest)
	}))
	defer srv.Close()
	var got []node.Member
	_, err := leaderCall(context.Background(), srv.Client(), srv.URL, "/v1/aspen/members", nil, []byte(`{}`), &got)
	if err == nil || !strings.Contains(err.Error(), "already a member") {
		t.Fatalf("got error %v, want the server's refusal", err)
	}
	if posts.Load() != 1 {
		t.Fatalf("got %d posts, want 1: a refusal is final", posts.Load())
	}
}

func TestLeaderCallUnreachable(t *testing.T) {
	addr := closedAddr(t)
	_, err := leaderCall(context.Background(), &http.Client{}, addr, "/v1/aspen/members", nil, []byte(`{}`), new(any))
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got error %v, want connection refused at %s", err, addr)
	}
}

func TestPrintMembersWithLeaderProgress(t *testing.T) {
	members := []node.Member{{ID: 3, PeerAddr: "p3", HTTPAddr: "h3", Learner: true}, {ID: 1, PeerAddr: "p1", HTTPAddr: "h1"}, {ID: 2, PeerAddr: "p2"}}
	follower := server.StatusReport{Status: node.Status{ID: 1, Lead: 2, Role: raft.StateFollower}, Members: members}
	leader := server.StatusReport{Status: node.Status{ID: 2, Lead: 2, Role: raft.StateLeader, Progress: []node.PeerProgress{
		{ID: 1, Match: 40, Lag: 2, State: "StateReplicate"}, {ID: 2, Match: 42, State: "StateReplicate"}, {ID: 3, Match: 7, Lag: 35, State: "StateSnapshot", Learner: true},
	}}, Members: members, LastContact: map[uint64]string{1: "12ms", 3: "3s"}}
	var out bytes.Buffer
	if err := printMembers(&out, follower, leaderView{rep: &leader}); err != nil {
		t.Fatal(err)
	}
	want := `
replication as leader 2 sees it:
MEMBER  PEER ADDR  HTTP ADDR  ROLE     MATCH  LAG  STATE      LAST CONTACT
1       p1         h1         voter    40     2    replicate  12ms
2       p2         -          leader   42     0    replicate  self
3       p3         h3         learner  7      35   snapshot   3s
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := printMembers(&out, follower, leaderView{why: "no leader known"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "replication progress unknown: no leader known") || !strings.Contains(out.String(), "3       p3         h3         learner  -") {
		t.Errorf("without the leader's report: got:\n%s", out.String())
	}
}

func TestMemberUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster", "add", "--peer-addr", "h:1"}, "needs --id"},
		{[]string{"cluster", "add", "--id", "4"}, "needs --peer-addr"},
		{[]string{"cluster", "promote", "--id", "4", "extra"}, "takes no arguments"},
		{[]string{"cluster", "transfer-leader"}, "needs --id"},
	} {
		o := aspen(t, "", tc.args...)
		if o.code != exitUsage || !strings.Contains(o.stderr, tc.want) {
			t.Errorf("aspen %v: got status %d, stderr %q; want %d and %q", tc.args, o.code, o.stderr, exitUsage, tc.want)
		}
	}
}

// testMembers grows the dev cluster by a fourth node and shrinks it back,
// sending every command to a follower so that each follows the redirect.
func testMembers(t *testing.T, d *devCluster) {
	var rep server.StatusReport
	o := aspen(t, "", "cluster", "status", "--json", "--addr", d.addrs[0])
	o.wantCode(t, 0)
	if err := json.Unmarshal([]byte(o.stdout), &rep); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	follower := d.addrs[rep.Lead%3] // node Lead+1, or node 1 when node 3 leads
	peer, httpAddr := closedAddr(t), closedAddr(t)
	cluster := fmt.Sprintf("1=%s,2=%s,3=%s,4=%s", memberOf(rep, 1).PeerAddr, memberOf(rep, 2).PeerAddr, memberOf(rep, 3).PeerAddr, peer)
	n4 := startBackground(t, "node", "start", "--join", "--id", "4", "--data-dir", t.TempDir(), "--initial-cluster", cluster,
		"--http-addr", httpAddr, "--tick-ms", "50")
	o = aspen(t, "", "cluster", "add", "--addr", follower, "--id", "4", "--peer-addr", peer, "--http-addr", httpAddr)
	wantRole(t, o, "4", "learner")
	o = aspen(t, "", "cluster", "transfer-leader", "--addr", follower, "--id", "4")
	if o.code != exitFailed || !strings.Contains(o.stderr, "409") || !strings.Contains(o.stderr, "node 4 is a learner") {
		t.Errorf("transfer to learner 4: got status %d, stderr %q; want %d and the leader's refusal (409, a learner)", o.code, o.stderr, exitFailed)
	}
	wantRole(t, aspen(t, "", "cluster", "promote", "--addr", follower, "--id", "4"), "4", "voter")
	wantRole(t, aspen(t, "", "cluster", "transfer-leader", "--addr", follower, "--id", "4"), "4", "leader")
	o = aspen(t, "", "cluster", "status", "--addr", follower)
	o.wantCode(t, 0)
	if !strings.Contains(o.stdout, "replication as leader 4 sees it") || !strings.Contains(o.stdout, "4       "+peer) {
		t.Errorf("status from a follower: got\n%s\nwant the leader 4's replication table", o.stdout)
	}
	wantRole(t, aspen(t, "", "cluster", "transfer-leader", "--addr", httpAddr, "--id", "1"), "1", "leader")
	o = aspen(t, "", "cluster", "remove", "--addr", httpAddr, "--id", "4")
	o.wantCode(t, 0)
	if strings.Contains(o.stdout, peer) {
		t.Errorf("membership after removing node 4: got\n%s\nwant node 4 gone", o.stdout)
	}
	n4.waitExit(t, 15*time.Second)
	if !strings.Contains(n4.out.String(), "removed from the cluster") {
		t.Errorf("removed node 4's output: got\n%s\nwant it to say it was removed", n4.out.String())
	}
}

// wantRole wants a successful command whose membership table gives member
// id the role.
func wantRole(t *testing.T, o outcome, id, role string) {
	t.Helper()
	o.wantCode(t, 0)
	for _, line := range strings.Split(o.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == id {
			if f[3] != role {
				t.Fatalf("member %s: got role %s, want %s; table:\n%s", id, f[3], role, o.stdout)
			}
			return
		}
	}
	t.Fatalf("member %s is not in the table:\n%s", id, o.stdout)
}

// background is an aspen process running alongside the test.
type background struct {
	cmd    *exec.Cmd
	out    syncBuffer
	exited chan struct{}
}

// startBackground runs aspen with args until it exits or the test ends.
func startBackground(t *testing.T, args ...string) *background {
	t.Helper()
	b := &background{cmd: exec.Command(aspenBin, args...), exited: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start aspen %v: %v", args, err)
	}
	go func() { b.cmd.Wait(); close(b.exited) }()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.exited
	})
	return b
}

func (b *background) waitExit(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-b.exited:
	case <-time.After(timeout):
		t.Fatalf("aspen %v still running after %v; output:\n%s", b.cmd.Args[1:], timeout, b.out.String())
	}
}
