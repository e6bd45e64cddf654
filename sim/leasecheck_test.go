package sim

import (
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/node"
)

// A lease's end is a write in the model: it deletes exactly the keys the
// model's puts attached to the lease, and a read after it must not show them
// unless a later put made them again.
func TestGroupModelLeaseEnds(t *testing.T) {
	const never = 1 << 62
	put := func(v string, l, rev, call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: opInput{Kind: kPut, Value: v, Lease: l}, Output: opOutput{Rev: rev, Unknown: rev < 0}, Call: call, Return: ret}
	}
	end := func(l int64, gone keySet, rev, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 9, Input: opInput{Kind: kLeaseEnd, Lease: l}, Output: opOutput{Rev: rev, Gone: gone}, Call: call, Return: ret}
	}
	get := func(present bool, v string, mod, rev, call, ret int64) porcupine.Operation {
		rd := readResult{}
		if present {
			rd = readResult{Present: true, Value: v, Mod: mod, Create: mod, Version: 1}
		}
		return porcupine.Operation{ClientId: 1, Input: opInput{Kind: kGet}, Output: opOutput{Rev: rev, Reads: []readResult{rd}}, Call: call, Return: ret}
	}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"end deletes the key", []porcupine.Operation{put("a", 5, 1, 0, 10), end(5, 1, 2, 20, 30), get(false, "", 0, 2, 40, 50)}, true},
		{"key seen after its lease ended", []porcupine.Operation{put("a", 5, 1, 0, 10), end(5, 1, 2, 20, 30), get(true, "a", 1, 2, 40, 50)}, false},
		{"key put again after the end", []porcupine.Operation{put("a", 5, 1, 0, 10), end(5, 1, 2, 20, 30),
			put("b", 0, 3, 31, 35), get(true, "b", 3, 3, 40, 50)}, true},
		{"end left an attached key", []porcupine.Operation{put("a", 5, 1, 0, 10), end(5, 0, 1, 20, 30)}, false},
		{"end deleted a key of another lease", []porcupine.Operation{put("a", 6, 1, 0, 10), end(5, 1, 2, 20, 30)}, false},
		{"a plain put unties the key", []porcupine.Operation{put("a", 5, 1, 0, 10), put("b", 0, 2, 11, 12), end(5, 0, 2, 20, 30),
			{Input: opInput{Kind: kGet}, Output: opOutput{Rev: 2, Reads: []readResult{{Present: true, Value: "b", Mod: 2, Create: 1, Version: 2}}}, Call: 40, Return: 50}}, true},
		{"unknown leased put, applied before the end", []porcupine.Operation{put("a", 5, -1, 0, never), end(5, 1, 2, 20, 30)}, true},
		{"unknown leased put, not applied", []porcupine.Operation{put("a", 5, -1, 0, never), end(5, 0, 1, 20, 30)}, true},
		{"end at a revision already passed", []porcupine.Operation{put("a", 5, 4, 0, 10), end(5, 1, 3, 20, 30)}, false},
	}
	for _, c := range cases {
		if got := porcupine.CheckOperations(groupModel(), c.ops); got != c.want {
			t.Errorf("%s: linearizable %v, want %v", c.name, got, c.want)
		}
	}
}

// leaseWorld is a world of the leases scenario that has not run: the tests
// feed its lease checker records by hand.
func leaseWorld(t *testing.T) *World {
	t.Helper()
	return newWorld(loadScenario(t, "../scenarios/leases.toml"), 1, Options{})
}

func wantViolation(t *testing.T, w *World, want string) {
	t.Helper()
	for _, v := range w.check.violations {
		if strings.Contains(v, want) {
			return
		}
	}
	t.Errorf("violations %q, want one with %q", w.check.violations, want)
}

func expiry(id lease.ID, deadline, rev int64, keys ...string) lease.End {
	e := lease.End{ID: id, Expired: true, TTLNs: 2e9, DeadlineNs: deadline, Revision: rev}
	for _, k := range keys {
		e.Keys = append(e.Keys, []byte(k))
	}
	return e
}

// Each check of the applied records fails on the mistake it is there for.
func TestLeaseRecordChecks(t *testing.T) {
	grace := node.Applied{Index: 2, Kind: lease.CmdGrace, TimeNs: 1e9}
	cases := []struct {
		name  string
		setup func(w *World)
		recs  []node.Applied
		want  string
	}{
		{"expired inside a new leader's grace", nil,
			[]node.Applied{grace, {Index: 3, TimeNs: 1e9 + 10e6, Reports: ended(expiry(4, 1e9, 7))}}, "after a new leader's grace"},
		{"expired before its deadline", nil,
			[]node.Applied{grace, {Index: 3, TimeNs: 5e9, Reports: ended(expiry(4, 6e9, 7))}}, "before its deadline"},
		{"expired before the deadline promised", func(w *World) { w.lc.track(4).promisedNs = 9e9 },
			[]node.Applied{grace, {Index: 3, TimeNs: 5e9, Reports: ended(expiry(4, 5e9, 7))}}, "its holder was promised"},
		{"revoked unasked", nil,
			[]node.Applied{{Index: 3, TimeNs: 5e9, Reports: ended(lease.End{ID: 4, Revision: 7})}}, "no client asked"},
		{"expired while renewed in the healed phase", func(w *World) {
			tr := w.lc.track(4)
			tr.keeping, tr.healedAck, tr.lastAckAt = true, true, 10 // after the grace, applied at 0
		}, []node.Applied{grace, {Index: 3, TimeNs: 5e9, Reports: ended(expiry(4, 5e9, 7))}}, "while its holder kept it alive"},
		{"key of no lease deleted", nil,
			[]node.Applied{grace, {Index: 3, TimeNs: 5e9, Reports: ended(expiry(4, 5e9, 7, "cold/000001"))}}, "which no client attaches"},
	}
	for _, c := range cases {
		w := leaseWorld(t)
		if c.setup != nil {
			c.setup(w)
		}
		w.leaseRecords(w.nodes[0], c.recs)
		wantViolation(t, w, c.want)
	}
}

// Replicas must end the same leases at the same index, at the same revision.
func TestLeaseRecordsComparedAcrossReplicas(t *testing.T) {
	w := leaseWorld(t)
	w.lc.track(4).revokeAsked = true
	first := []node.Applied{{Index: 3, TimeNs: 5e9, Reports: ended(lease.End{ID: 4, Revision: 7})}, {Index: 4, TimeNs: 5e9}}
	w.leaseRecords(w.nodes[0], first)
	w.leaseRecords(w.nodes[1], first)
	if len(w.check.violations) != 0 {
		t.Fatalf("equal records: %v", w.check.violations)
	}
	w.leaseRecords(w.nodes[2], []node.Applied{{Index: 3, TimeNs: 5e9}, {Index: 4, TimeNs: 5e9, Reports: ended(lease.End{ID: 4, Revision: 7})}})
	wantViolation(t, w, "replicas end leases differently at index 3")
	wantViolation(t, w, "replicas end leases differently at index 4")
}

// A put acknowledged with a lease must have applied before the lease ended.
func TestLeasedPutAfterEnd(t *testing.T) {
	w := leaseWorld(t)
	w.lc.track(4).revokeAsked = true
	w.leaseRecords(w.nodes[0], []node.Applied{{Index: 3, TimeNs: 5e9, Reports: ended(lease.End{ID: 4, Revision: 7})}})
	c := &simClient{idx: 2, op: &clientOp{in: opInput{Kind: kPut, Lease: 4}}}
	w.leasedPutAcked(c, 7)
	if len(w.check.violations) != 0 {
		t.Fatalf("put at the end's revision (before it): %v", w.check.violations)
	}
	w.leasedPutAcked(c, 8)
	wantViolation(t, w, "acknowledged at revision 8, after the lease ended at revision 7")
}

// A read that began after a lease's end was applied must not show the key
// it deleted with the value from before.
func TestLeaseReadsAfterEnd(t *testing.T) {
	w := leaseWorld(t)
	w.now = 100
	w.lc.track(4).revokeAsked = true
	w.leaseRecords(w.nodes[0], []node.Applied{{Index: 3, TimeNs: 5e9, Reports: ended(lease.End{ID: 4, Revision: 7, Keys: [][]byte{[]byte(w.names[1][2])}})}})
	read := func(call, mod int64) porcupine.Operation {
		rd := readResult{Present: true, Value: "v", Mod: mod, Create: mod, Version: 1}
		return porcupine.Operation{Input: opInput{Kind: kGet, Group: 1, Key: 2}, Output: opOutput{Rev: 9, Reads: []readResult{rd}}, Call: call, Return: call + 5}
	}
	w.history = append(w.history, read(50, 6), read(150, 8)) // before the end; put again after it
	w.checkLeaseReads()
	if len(w.check.violations) != 0 {
		t.Fatalf("reads before the end or of a new value: %v", w.check.violations)
	}
	w.history = append(w.history, read(150, 6))
	w.checkLeaseReads()
	wantViolation(t, w, "after lease 4 deleted it at revision 7")
}

// ended is the applied record's report of leases ended.
func ended(es ...lease.End) []any { return []any{es} }
