package sim

import (
	"fmt"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/locks"
	"github.com/aspen-db/aspen/internal/linearize"
)

// The model of one lock key, for porcupine: every lock operation touches
// one lock key (a guarded write touches its data key too, which nothing
// else writes), so the lock history is checked key by key.

// lockInput is one operation on lock key Key.
type lockInput struct {
	Kind    lockOpKind // lkAcquire, lkRelease, lkRead, lkFence, lkPut, lkDelete or lkInvalidate
	Key     int
	Session string
	Value   string // acquire, release and guarded write: the value written
	TimeLo  int64  // acquire: replicated time at or below the entry's (the highest applied when it was sent)
	Delete  bool   // invalidation: the session's behavior is delete
	DelayNs int64  // invalidation: the lock delay it set (0: none)
}

// lockOutput is what the client saw, or the replicas reported.
type lockOutput struct {
	Unknown   bool
	Ok        bool  // acquire, release, guarded write: it applied; delete: it deleted the key; invalidation: it released this key
	Rev       int64 // the store's revision in the answer
	Present   bool  // read: the key exists
	Holder    string
	LockIndex uint64
	Value     string
	Mod       int64
	TimeHi    int64 // acquire: replicated time at or above the entry's (the highest applied when it was answered)
}

// lockState is one lock key in the model. Mod is 0 while unknown (the write
// that set it gave up and no read has shown it since); Rev is a lower bound
// on the store's revision (the highest any operation on the key has shown).
type lockState struct {
	Present    bool
	Holder     string
	LockIndex  uint64
	Value      string
	Mod        int64
	Rev        int64
	DelayUntil int64 // replicated time the lock delay of the key's last invalidation ends
}

// stepLock is the sequential specification of a lock key: one holder at a
// time, an acquire that succeeds exactly when the key is free (or held by
// the same session) and out of its lock delay, a release or guarded write
// that applies exactly under the holder, and an invalidation that releases
// (or deletes) the key exactly when its session held it.
func stepLock(s lockState, in lockInput, out lockOutput) (bool, lockState) {
	if !out.Unknown && out.Rev < s.Rev {
		return false, s
	}
	n, ok, changed := s, true, false
	switch in.Kind {
	case lkRead:
		ok = lockReadMatches(&n, out)
	case lkAcquire:
		can := s.Holder == in.Session || s.Holder == ""
		mayWait := s.Holder == "" && s.DelayUntil > in.TimeLo // the key may still be in its lock delay
		applied := can && (out.Unknown || out.Ok)
		ok = out.Unknown || out.Ok == can || !out.Ok && mayWait
		if !out.Unknown && out.Ok && s.Holder == "" && out.TimeHi < s.DelayUntil {
			ok = false // taken before the key's lock delay could have ended
		}
		if applied {
			if s.Holder != in.Session {
				n.LockIndex = lockIndexOf(s) + 1
			}
			n.Present, n.Holder, n.Value, changed = true, in.Session, in.Value, true
		}
	case lkRelease:
		applied := s.Holder == in.Session
		ok = out.Unknown || out.Ok == applied
		if applied {
			n.Holder, n.Value, changed = "", in.Value, true
		}
	case lkFence:
		applied := s.Holder == in.Session
		ok = out.Unknown || out.Ok == applied
		if !out.Unknown && applied && out.Rev <= s.Rev {
			ok = false // the data key's write took a revision
		}
	case lkPut:
		if !s.Present {
			n = lockState{Rev: s.Rev, DelayUntil: s.DelayUntil}
		}
		n.Present, n.Value, changed = true, in.Value, true
	case lkDelete:
		ok = out.Unknown || out.Ok == s.Present
		if s.Present {
			n, changed = lockState{Rev: s.Rev, DelayUntil: s.DelayUntil}, true
		}
	case lkInvalidate:
		released := s.Holder == in.Session
		ok = out.Ok == released
		if released {
			if in.Delete {
				n = lockState{Rev: s.Rev, DelayUntil: s.DelayUntil}
			} else {
				n.Holder = ""
			}
			if in.DelayNs > 0 {
				n.DelayUntil = in.DelayNs
			}
			changed = true
		}
	}
	if !ok || changed && !out.Unknown && out.Rev <= s.Rev {
		return false, s
	}
	if changed && n.Present {
		n.Mod = out.Rev // 0 when unknown
	}
	if !out.Unknown {
		n.Rev = max(s.Rev, out.Rev)
	}
	return true, n
}

func lockIndexOf(s lockState) uint64 {
	if s.Present {
		return s.LockIndex
	}
	return 0
}

// lockReadMatches checks a read against the key; a mod revision the model
// does not know yet is learned from it.
func lockReadMatches(s *lockState, out lockOutput) bool {
	if !s.Present || !out.Present {
		return s.Present == out.Present
	}
	if s.Mod == 0 {
		s.Mod = out.Mod
	}
	return out.Holder == s.Holder && out.LockIndex == s.LockIndex && out.Value == s.Value && out.Mod == s.Mod && out.Mod <= out.Rev
}

// lockModel checks each lock key on its own.
func lockModel() porcupine.Model {
	return porcupine.Model{
		Partition: linearize.PartitionBy(func(op porcupine.Operation) int { return op.Input.(lockInput).Key }),
		Init:      func() any { return lockState{} },
		Step: func(state, input, output any) (bool, any) {
			return stepLock(state.(lockState), input.(lockInput), output.(lockOutput))
		},
		Equal:             func(a, b any) bool { return a.(lockState) == b.(lockState) },
		DescribeOperation: func(input, output any) string { return describeLockOp(input.(lockInput), output.(lockOutput)) },
		DescribeState: func(state any) string {
			s := state.(lockState)
			return fmt.Sprintf("{present %v holder %q index %d value %q mod %d rev>=%d delay %d}", s.Present, s.Holder, s.LockIndex, s.Value, s.Mod, s.Rev, s.DelayUntil)
		},
	}
}

func describeLockOp(in lockInput, out lockOutput) string {
	res := fmt.Sprintf("ok=%v rev=%d", out.Ok, out.Rev)
	switch {
	case out.Unknown:
		res = "unknown"
	case in.Kind == lkRead && out.Present:
		res = fmt.Sprintf("holder %q index %d value %q mod %d rev %d", out.Holder, out.LockIndex, out.Value, out.Mod, out.Rev)
	case in.Kind == lkRead:
		res = fmt.Sprintf("absent rev %d", out.Rev)
	}
	return fmt.Sprintf("%s(%s, %s %q) -> %s", lockOpNames[in.Kind], lockKey(in.Key), in.Session, in.Value, res)
}

// checkLockHistory checks the lock history with porcupine.
func (w *World) checkLockHistory() {
	budget := time.Duration(w.sc.Checkers.LinearizeBudgetS * float64(time.Second))
	w.res.LockOps = len(w.lkc.history)
	switch porcupine.CheckOperationsTimeout(lockModel(), w.lkc.history, budget) {
	case porcupine.Ok:
		w.res.LockHistory = "ok"
	case porcupine.Illegal:
		w.res.LockHistory = "illegal"
		w.check.fail("lock history of %d operations is not linearizable", len(w.lkc.history))
	default:
		w.res.LockHistory = "unknown (checker budget exhausted)"
	}
}

// lockRevisionTakers adds the lock history's writes to the revision count:
// every acknowledged write that applied (a plain put always does, a plain
// delete when it deleted the key) took a revision, and so did every
// invalidation that released or deleted keys (once, whatever it touched).
func (lc *lockChecker) lockRevisionTakers(takers []revisionTaker, unknown int) ([]revisionTaker, int) {
	for _, op := range lc.history {
		in, out := op.Input.(lockInput), op.Output.(lockOutput)
		switch {
		case in.Kind == lkRead || in.Kind == lkInvalidate:
		case out.Unknown:
			unknown++
		case in.Kind == lkPut || out.Ok: // a plain put always writes
			takers = append(takers, revisionTaker{rev: out.Rev, client: op.ClientId})
		}
	}
	for _, inv := range lc.invs {
		if len(inv.keys) > 0 {
			takers = append(takers, revisionTaker{rev: inv.rev, client: lc.invClient})
		}
	}
	return takers, unknown
}

// lockEndSlackNs: past twice its TTL, a session unrenewed since a renewal
// sent at some time has this long to be expired (the request's deadline,
// failover graces, the leader's expiry retry), over and above 20% of drift.
const lockEndSlackNs = 3e9

// checkLocksAtEnd compares the converged replica with the checker's
// timeline and sessions, and requires every TTL session left unrenewed
// well past twice its TTL to be gone.
func (w *World) checkLocksAtEnd() {
	lc := w.lkc
	for _, sn := range w.nodes {
		if sn.gone || sn.n == nil {
			continue
		}
		store := sn.n.Hosted("kv").(*kv.Module)
		for k := range lc.keys {
			kt := &lc.keys[k]
			rec, present := lockRecord(store, lockKey(k))
			if present != kt.present || rec.Session != kt.holder || present && rec.LockIndex != kt.lockIndex {
				w.check.fail("node %d ends with lock key %s present %v held by %q at lock index %d; its changes say present %v, %q, %d",
					sn.id, lockKey(k), present, rec.Session, rec.LockIndex, kt.present, kt.holder, kt.lockIndex)
			}
		}
		live := map[string]bool{}
		for _, s := range sn.n.Hosted("locks").(*locks.Module).Query(locks.QueryList, nil, 0).Value.(locks.Answer).Sessions {
			live[s.ID] = true
		}
		for _, t := range lc.order {
			if want := t.created && t.inv == nil; live[t.id] != want {
				w.check.fail("node %d ends with session %s live %v; its changes say %v", sn.id, t.id, live[t.id], want)
			}
			slack := 2*t.ttlNs*6/5 + lockEndSlackNs + millis(float64(w.sc.Workload.OpDeadlineMs))
			if live[t.id] && t.ttlNs > 0 && !t.renewing && w.now-t.lastSentAt > slack {
				w.check.fail("session %s (TTL %v) still live at the end, %.3fs after its last renewal was sent",
					t.id, time.Duration(t.ttlNs), float64(w.now-t.lastSentAt)/1e9)
			}
		}
		return // the replicas have converged: one is enough
	}
}

func lockRecord(store *kv.Module, key string) (kv.Record, bool) {
	resp := store.M.Read(kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: []byte(key)}}})
	if recs := result(resp, 0).Records; len(recs) == 1 {
		return recs[0].Record, true
	}
	return kv.Record{}, false
}
