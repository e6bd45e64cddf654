package node_test

import (
	"math/rand/v2"
	"testing"

	"github.com/aspen-db/aspen/core/audit"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/core/tokens"
	"github.com/aspen-db/aspen/sim/disk"
)

func (s *single) tokens(client, seq uint64, cmd module.Command) (tokens.Answer, node.Response) {
	s.t.Helper()
	r := s.call(call(client, seq, cmd))
	a, _ := r.Value.(tokens.Answer)
	return a, r
}

func claimsFor(id string, expiresNs int64) token.Claims {
	return token.Claims{ID: id, Subject: "ops", Commands: []string{"/bin/*"}, Dirs: []string{"/tmp"}, ExpiresNs: expiresNs}
}

// Registered and revoked tokens are replicated state that survives a
// restart, and entries go once their expiry passed on replicated time.
func TestTokensRevokeSurvivesRestartThenPrunes(t *testing.T) {
	d := disk.New()
	s := startAt(t, d, node.DefaultConfig(1, []uint64{1}), 0)
	if _, r := s.tokens(7, 1, tokens.Register(claimsFor("t1", 5*second))); r.Outcome != node.OK {
		t.Fatalf("register: %v", r.Err())
	}
	if _, r := s.tokens(7, 2, tokens.Revoke("t1", 0)); r.Outcome != node.OK {
		t.Fatalf("revoke: %v", r.Err())
	}
	if _, r := s.tokens(7, 3, tokens.Revoke("never-registered", 0)); r.Outcome != node.NotFound {
		t.Fatalf("revoke of an unknown id without expiry: got %v, want not found", r.Err())
	}
	if _, r := s.tokens(7, 4, tokens.Revoke("t2", 3*second)); r.Outcome != node.OK {
		t.Fatalf("revoke of an unregistered id with expiry: %v", r.Err())
	}
	other := claimsFor("t1", 5*second)
	other.Commands = []string{"*"}
	if _, r := s.tokens(7, 5, tokens.Register(other)); r.Outcome != node.Conflict {
		t.Fatalf("register of t1 with other claims: got %v, want conflict", r.Err())
	}
	d.Crash(rand.New(rand.NewPCG(3, 4)), disk.Faults{})

	s = startAt(t, d, node.DefaultConfig(1, []uint64{1}), s.now)
	a, r := s.tokens(99, 0, tokens.List())
	if r.Outcome != node.OK || len(a.Entries) != 2 || !a.Entries[0].Revoked || a.Entries[0].Claims.Subject != "ops" || !a.Entries[1].Revoked {
		t.Fatalf("list after restart: got %+v (%v), want t1 (registered) and t2, both revoked", a, r.Err())
	}
	s.advance(6 * second)
	if a, _ := s.tokens(99, 0, tokens.List()); len(a.Entries) != 0 {
		t.Fatalf("list after every expiry: got %+v, want empty", a.Entries)
	}
	if _, r := s.tokens(99, 0, tokens.Get("t1")); r.Outcome != node.NotFound {
		t.Fatalf("get of a pruned token: got %v, want not found", r.Err())
	}
}

// Audit records chain across a restart, and the chain the node serves
// verifies.
func TestAuditChainsAcrossRestart(t *testing.T) {
	d := disk.New()
	s := startAt(t, d, node.DefaultConfig(1, []uint64{1}), 0)
	seq := uint64(0)
	appendOne := func() {
		seq++
		e := audit.Exec{TokenID: "t1", Worker: "w", Argv: []string{"/bin/true"}, Dir: "/tmp"}
		if r := s.call(call(7, seq, audit.Append(e))); r.Outcome != node.OK {
			t.Fatalf("append %d: %v", seq, r.Err())
		}
	}
	appendOne()
	appendOne()
	d.Crash(rand.New(rand.NewPCG(3, 4)), disk.Faults{})
	s = startAt(t, d, node.DefaultConfig(1, []uint64{1}), s.now)
	appendOne()
	r := s.call(call(99, 0, audit.List(0, 0)))
	a, _ := r.Value.(audit.Answer)
	if len(a.Records) != 3 || a.Head.Seq != 3 {
		t.Fatalf("list: got %d records, head %d; want 3 and 3", len(a.Records), a.Head.Seq)
	}
	if err := audit.Verify(a.Records, a.Head); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if r := s.call(call(7, seq+1, audit.Append(audit.Exec{}))); r.Outcome != node.Invalid {
		t.Fatalf("append with empty argv: got %v, want invalid", r.Err())
	}
}
