package node_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/sim/disk"
)

const second = int64(1e9)

func leaseConfig() node.Config {
	cfg := node.DefaultConfig(1, []uint64{1})
	cfg.EventsEnabled = true
	return cfg
}

// call submits one request and returns its answer.
func (s *single) call(req node.Request) node.Response {
	s.t.Helper()
	s.n.Submit(req)
	s.run(len(s.resp) + 1)
	return s.resp[len(s.resp)-1]
}

func (s *single) lease(client, seq uint64, cmd module.Command) (lease.Answer, node.Response) {
	s.t.Helper()
	r := s.call(node.Request{Client: client, Seq: seq, Call: &cmd})
	a, _ := r.Value.(lease.Answer)
	return a, r
}

func putLeased(client, seq uint64, key string, id lease.ID) node.Request {
	return node.Request{Client: client, Seq: seq, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte(key), Value: []byte("v"), Lease: int64(id)}}}}
}

// advance moves the clock by d, a tick at a time.
func (s *single) advance(d int64) {
	for end := s.now + d; s.now < end; {
		s.step()
	}
}

func (s *single) has(key string) bool {
	s.t.Helper()
	r := s.call(node.Request{Client: 99, Seq: 1, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: []byte(key)}}}})
	return len(r.Result.Results[0].Records) == 1
}

// A lease's keys go when it expires, at one revision, as delete events
// marked expired; a key without the lease stays.
func TestLeaseExpiryDeletesItsKeys(t *testing.T) {
	s := startAt(t, disk.New(), leaseConfig(), 0)
	a, r := s.lease(7, 1, lease.Grant(0, 2*second))
	if r.Outcome != node.OK || a.Lease.ID != 1 || a.Lease.TTLNs != 2*second {
		t.Fatalf("grant: got %+v (%v), want lease 1 with a 2 s TTL", a, r.Err())
	}
	s.call(putLeased(7, 2, "a", 1))
	s.call(putLeased(7, 3, "b", 1))
	s.call(put(7, 4, "c", "v"))
	s.advance(1 * second)
	if !s.has("a") || !s.has("b") {
		t.Fatal("leased keys gone before the TTL")
	}
	s.events = nil
	s.advance(2 * second)
	if s.has("a") || s.has("b") || !s.has("c") {
		t.Fatal("after the TTL: want a and b gone, c kept")
	}
	if len(s.events) != 2 || !s.events[0].Expired || !s.events[1].Deleted || s.events[0].Revision != s.events[1].Revision {
		t.Fatalf("expiry events: got %+v, want two deletes marked expired at one revision", s.events)
	}
	if _, r := s.lease(99, 0, lease.TimeToLive(1, false)); r.Outcome != node.NotFound {
		t.Fatalf("time to live of an expired lease: got %v, want not found", r.Err())
	}
}

// Keep-alives more often than the TTL keep a lease and its keys indefinitely.
func TestKeepAliveKeepsLease(t *testing.T) {
	s := startAt(t, disk.New(), leaseConfig(), 0)
	s.lease(7, 1, lease.Grant(5, 2*second))
	s.call(putLeased(7, 2, "a", 5))
	seq := uint64(2)
	for i := 0; i < 20; i++ {
		s.advance(second / 2)
		seq++
		if a, r := s.lease(7, seq, lease.KeepAlive(5)); r.Outcome != node.OK || a.RemainingNs != 2*second {
			t.Fatalf("keep-alive %d: got %+v (%v), want 2 s left", i, a, r.Err())
		}
	}
	if !s.has("a") {
		t.Fatal("a lease kept alive lost its key")
	}
	a, _ := s.lease(99, 0, lease.TimeToLive(5, true))
	if len(a.Keys) != 1 || string(a.Keys[0]) != "a" || a.RemainingNs <= 0 || a.RemainingNs > 2*second {
		t.Fatalf("time to live: got %+v, want key a and up to 2 s left", a)
	}
	seq++
	if a, r := s.lease(7, seq, lease.Revoke(5)); r.Outcome != node.OK || a.Revision == 0 || s.has("a") {
		t.Fatalf("revoke: got %+v (%v); want the key deleted", a, r.Err())
	}
}

// Bad lease requests are refused with a clear outcome and change nothing.
func TestLeaseRefusals(t *testing.T) {
	s := startAt(t, disk.New(), leaseConfig(), 0)
	s.lease(7, 1, lease.Grant(3, 2*second))
	rev := s.n.Status().Revision
	cases := []struct {
		name string
		req  node.Request
		want node.Outcome
	}{
		{"ttl 0", call(8, 1, lease.Grant(0, 0)), node.Invalid},
		{"ttl too long", call(8, 2, lease.Grant(0, 1<<62)), node.Invalid},
		{"id taken", call(8, 3, lease.Grant(3, 2*second)), node.Conflict},
		{"keep-alive of none", call(8, 4, lease.KeepAlive(9)), node.NotFound},
		{"revoke of none", call(8, 5, lease.Revoke(9)), node.NotFound},
		{"leader's own command", call(8, 6, module.Command{Kind: lease.CmdExpire}), node.Invalid},
		{"put on no lease", putLeased(8, 7, "x", 9), node.NotFound},
	}
	for _, c := range cases {
		if r := s.call(c.req); r.Outcome != c.want || r.Detail == "" {
			t.Errorf("%s: got %v, want %v with a reason", c.name, r.Err(), c.want)
		}
	}
	if got := s.n.Status().Revision; got != rev || s.has("x") {
		t.Fatalf("refusals changed the store: revision %d, want %d", got, rev)
	}
}

// A refused command that reaches the log again (a retry) gets the answer it
// got the first time, even when the state would now accept it: the client
// was told "refused", so it must not take effect.
func TestRetriedRefusalStaysRefused(t *testing.T) {
	s := startAt(t, disk.New(), leaseConfig(), 0)
	s.lease(7, 1, lease.Grant(3, 2*second))
	if _, r := s.lease(8, 1, lease.Grant(3, 2*second)); r.Outcome != node.Conflict {
		t.Fatalf("grant of a taken id: got %v, want conflict", r.Err())
	}
	s.lease(7, 2, lease.Revoke(3))
	if _, r := s.lease(8, 1, lease.Grant(3, 2*second)); r.Outcome != node.Conflict {
		t.Fatalf("the retried grant: got %v, want the first answer (conflict)", r.Err())
	}
	if _, r := s.lease(99, 0, lease.TimeToLive(3, false)); r.Outcome != node.NotFound {
		t.Fatalf("lease 3 after the retried refusal: got %v, want not found", r.Err())
	}
}

func call(client, seq uint64, cmd module.Command) node.Request {
	return node.Request{Client: client, Seq: seq, Call: &cmd}
}

// Leases and their keys survive a restart; a lease whose deadline passed
// while the cluster was down gets the new leader's grace (one election
// timeout) before it expires, and then expires.
func TestLeaseSurvivesRestartThenGetsGrace(t *testing.T) {
	if err := restartThenGrace(t, leaseConfig()); err != "" {
		t.Fatal(err)
	}
}

// The test above fails on the planted mistakes it guards against.
func TestPlantedLeaseBugsFailUnitTest(t *testing.T) {
	if !bugs.Enabled {
		t.Skip("needs -tags aspenbugs")
	}
	cfg := leaseConfig()
	cfg.Bugs = bugs.Of(bugs.NoLeaseGrace)
	if err := restartThenGrace(t, cfg); err == "" {
		t.Fatal("no_lease_grace: the restarted leader's lease survived")
	}
}

func restartThenGrace(t *testing.T, cfg node.Config) string {
	d := disk.New()
	s := startAt(t, d, cfg, 0)
	s.lease(7, 1, lease.Grant(0, 2*second))
	s.call(putLeased(7, 2, "a", 1))
	d.Crash(rand.New(rand.NewPCG(3, 4)), disk.Faults{})

	s = startAt(t, d, cfg, s.now+10*second) // the lease's deadline is long past
	grace := int64(cfg.ElectionTicks) * cfg.TickNs
	s.advance(grace / 2)
	if !s.has("a") {
		return "a leased key was expired before the new leader's grace"
	}
	a, r := s.lease(99, 0, lease.TimeToLive(1, true))
	if r.Outcome != node.OK || len(a.Keys) != 1 {
		return fmt.Sprintf("time to live after restart: got %+v (%v), want the lease with key a", a, r.Err())
	}
	s.advance(2 * grace)
	if s.has("a") {
		return "the lease outlived the grace"
	}
	return ""
}
