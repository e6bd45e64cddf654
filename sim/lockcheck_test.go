package sim

import (
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/locks"
	"github.com/aspen-db/aspen/core/node"
)

// The lock model: one holder at a time, acquires refused only by a holder
// or a lock delay that may still run, releases and guarded writes only by
// the holder, invalidations that release exactly what their session held.
func TestLockModel(t *testing.T) {
	const never = 1 << 62
	acq := func(s, v string, ok bool, rev, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 1, Input: lockInput{Kind: lkAcquire, Session: s, Value: v, TimeLo: 50},
			Output: lockOutput{Ok: ok, Rev: rev, Unknown: ret == never, TimeHi: 60}, Call: call, Return: ret}
	}
	op := func(kind lockOpKind, s, v string, ok bool, rev, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 2, Input: lockInput{Kind: kind, Session: s, Value: v},
			Output: lockOutput{Ok: ok, Rev: rev, Unknown: ret == never}, Call: call, Return: ret}
	}
	inv := func(s string, released bool, delayNs, rev, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 9, Input: lockInput{Kind: lkInvalidate, Session: s, DelayNs: delayNs},
			Output: lockOutput{Ok: released, Rev: rev}, Call: call, Return: ret}
	}
	read := func(holder string, index uint64, v string, mod, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 3, Input: lockInput{Kind: lkRead},
			Output: lockOutput{Present: true, Holder: holder, LockIndex: index, Value: v, Mod: mod, Rev: mod}, Call: call, Return: ret}
	}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"take, release, take", []porcupine.Operation{acq("a", "1", true, 1, 0, 10), op(lkRelease, "a", "2", true, 2, 11, 20),
			acq("b", "3", true, 3, 21, 30), read("b", 2, "3", 3, 31, 40)}, true},
		{"two holders", []porcupine.Operation{acq("a", "1", true, 1, 0, 10), acq("b", "2", true, 2, 11, 20)}, false},
		{"the holder takes it again", []porcupine.Operation{acq("a", "1", true, 1, 0, 10), acq("a", "2", true, 2, 11, 20), read("a", 1, "2", 2, 21, 30)}, true},
		{"a free key refused with no lock delay", []porcupine.Operation{acq("a", "1", false, 0, 0, 10)}, false},
		{"a free key refused in its lock delay", []porcupine.Operation{acq("a", "1", true, 1, 0, 10), inv("a", true, 100, 2, 11, 20),
			acq("b", "2", false, 2, 21, 30)}, true},
		{"a key taken before its lock delay could end", []porcupine.Operation{acq("a", "1", true, 1, 0, 10), inv("a", true, 100, 2, 11, 20),
			acq("b", "2", true, 3, 21, 30)}, false},
		{"release by another session", []porcupine.Operation{acq("a", "1", true, 1, 0, 10), op(lkRelease, "b", "2", true, 2, 11, 20)}, false},
		{"guarded write by the holder", []porcupine.Operation{acq("a", "1", true, 1, 0, 10), op(lkFence, "a", "w", true, 2, 11, 20)}, true},
		{"guarded write after the session ended", []porcupine.Operation{acq("a", "1", true, 1, 0, 10), inv("a", true, 0, 2, 11, 20),
			op(lkFence, "a", "w", true, 3, 21, 30)}, false},
		{"invalidation left the key held", []porcupine.Operation{acq("a", "1", true, 1, 0, 10), inv("a", false, 0, 1, 11, 20)}, false},
		{"read of the holder after its invalidation", []porcupine.Operation{acq("a", "1", true, 1, 0, 10), inv("a", true, 0, 2, 11, 20),
			read("a", 1, "1", 1, 21, 30)}, false},
		{"unknown acquire that applied", []porcupine.Operation{acq("a", "1", false, 0, 0, never), inv("a", true, 0, 2, 11, 20)}, true},
		{"unknown acquire that did not", []porcupine.Operation{acq("a", "1", false, 0, 0, never), acq("b", "2", true, 1, 11, 20)}, true},
	}
	for _, c := range cases {
		if got := porcupine.CheckOperations(lockModel(), c.ops); got != c.want {
			t.Errorf("%s: linearizable %v, want %v", c.name, got, c.want)
		}
	}
}

// locksWorld is a world of the locks scenario that has not run: the tests
// feed its lock checker records by hand.
func locksWorld(t *testing.T) *World {
	t.Helper()
	return newWorld(loadScenario(t, "../scenarios/locks.toml"), 1, Options{})
}

// feed hands the lock checker one replica's records: entry i at index
// first+i, with its reports and the lock-key events at its revision.
func feedLocks(w *World, id uint64, first uint64, timeNs int64, entries ...lockEntry) {
	var recs []node.Applied
	var events []kv.Event
	for i, e := range entries {
		recs = append(recs, node.Applied{Index: first + uint64(i), TimeNs: timeNs, Revision: e.rev, Reports: []any{e.changes}})
		events = append(events, e.events...)
	}
	w.lockRecords(&simNode{id: id}, recs, events)
}

type lockEntry struct {
	rev     int64
	changes []locks.Change
	events  []kv.Event
}

func held(key, session string, index uint64, rev int64) kv.Event {
	return kv.Event{Revision: rev, Key: []byte(key), Record: kv.Record{Value: []byte("v"), Session: session, LockIndex: index}}
}

// The replica-level rules: an invalidation must release what its session
// held, and a key must not be taken before its lock delay ends.
func TestLockCheckerInvalidation(t *testing.T) {
	mk := func(id string, delayNs int64) locks.Change {
		return locks.Change{Created: &locks.Session{ID: id, Node: "n", LockDelayNs: delayNs}}
	}
	setup := func() *World {
		w := locksWorld(t)
		for _, id := range []string{"a", "b"} {
			w.lkc.sessionAsked(&lockClient{idx: 0}, locks.Session{ID: id, LockDelayNs: 1000}, 0)
		}
		w.lkc.session("a").destroyAsked = true
		feedLocks(w, 1, 1, 0,
			lockEntry{rev: 0, changes: []locks.Change{mk("a", 1000)}},
			lockEntry{rev: 0, changes: []locks.Change{mk("b", 1000)}},
			lockEntry{rev: 1, events: []kv.Event{held("lk/0", "a", 1, 1)}})
		return w
	}
	w := setup()
	feedLocks(w, 1, 4, 500, lockEntry{rev: 2, changes: []locks.Change{{Invalidated: "a", Keys: [][]byte{[]byte("lk/0")}, Revision: 2, DelayNs: 1500}},
		events: []kv.Event{held("lk/0", "", 1, 2)}})
	feedLocks(w, 1, 5, 1600, lockEntry{rev: 3, events: []kv.Event{held("lk/0", "b", 2, 3)}})
	if len(w.check.violations) > 0 {
		t.Fatalf("a proper release and a take after the delay: %v", w.check.violations)
	}

	w = setup()
	feedLocks(w, 1, 4, 500, lockEntry{rev: 1, changes: []locks.Change{{Invalidated: "a", Keys: [][]byte{[]byte("lk/0")}, Revision: 1, DelayNs: 1500}}})
	if !strings.Contains(strings.Join(w.check.violations, "\n"), "still holds lock key lk/0") {
		t.Fatalf("an invalidation that released nothing: %v", w.check.violations)
	}

	w = setup()
	feedLocks(w, 1, 4, 500, lockEntry{rev: 2, changes: []locks.Change{{Invalidated: "a", Keys: [][]byte{[]byte("lk/0")}, Revision: 2, DelayNs: 1500}},
		events: []kv.Event{held("lk/0", "", 1, 2)}})
	feedLocks(w, 1, 5, 1400, lockEntry{rev: 3, events: []kv.Event{held("lk/0", "b", 2, 3)}})
	if !strings.Contains(strings.Join(w.check.violations, "\n"), "before the lock delay") {
		t.Fatalf("a take inside the lock delay: %v", w.check.violations)
	}

	w = setup()
	feedLocks(w, 1, 4, 500, lockEntry{rev: 2, events: []kv.Event{held("lk/0", "b", 2, 2)}})
	if !strings.Contains(strings.Join(w.check.violations, "\n"), "while session a held it") {
		t.Fatalf("a take of a held key: %v", w.check.violations)
	}
}
