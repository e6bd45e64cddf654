package sim

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/locks"
	"github.com/aspen-db/aspen/core/node"
)

// The lock checker (with [locks]). Replicas report what each applied entry
// did to sessions (locks.Change in node.Applied.Reports: created,
// invalidated with the keys it released or deleted, its revision and the
// end of the lock delay). The checker reads them once per index, from the
// first replica to apply it (every other replica must report the same),
// together with that replica's change events of the lock keys, split
// between entries by node.Applied.Revision. From those it keeps each lock
// key's committed timeline (present, holder, lock index, by revision) and
// checks, entry by entry:
//
//   - an acquisition (the holder goes from none to a session) takes a free
//     key, by a live session, at the next lock index, and never before the
//     lock delay that the key's last invalidation left (by the entry's
//     replicated time);
//   - an invalidation releases (behavior release) or deletes (behavior
//     delete) exactly the keys its session held, at the one revision it
//     reports, leaves no key held by the session, and sets the lock delay
//     the session asked for from the entry's time; a destroy needs a client
//     that asked for it, an expiry a TTL;
//   - a TTL session whose client renews it on time in the healed phase
//     never expires under the leader that acknowledged its last renewal.
//
// Client operations on lock keys (acquire, release, read, and writes of a
// data key guarded by the lock) and the invalidations (writes no client
// issued, with the interval of their commit, as lease ends are entered)
// form a history checked by porcupine against a model of one lock key
// (lockmodel.go). Besides: an acknowledged guarded write must fall where
// the timeline shows its session holding the lock (fencing), a read that
// began after an invalidation applied never shows the key held by that
// session, and a renewal or acquire refused as the session is gone needs
// a replica to have ended it. At the end the converged replica holds the
// timeline's keys and exactly the sessions the reports left live, and
// every TTL session left unrenewed well past twice its TTL is gone.

// sessionTrack is what the checker knows of one session.
type sessionTrack struct {
	id           string
	client       int
	ttlNs        int64
	delayNs      int64
	behavior     locks.Behavior
	created      bool     // a replica applied its create
	renewing     bool     // its client renews it every TTL/3
	healedAck    bool     // the last renewal was sent in the healed phase and acknowledged on time
	lastAckAt    int64    // the last create or renewal acknowledged then
	lastSentAt   int64    // the last create or renewal was sent then
	destroyAsked bool     // a client asked to destroy it
	tried        keySet   // lock keys it asked to acquire (the request sent)
	inv          *lockInv // its invalidation, as first applied
}

// lockInv is a session's invalidation as first applied.
type lockInv struct {
	session    string
	index      uint64
	expired    bool
	keys       [][]byte
	rev        int64
	appendedAt int64 // the entry's index first reached a log then
	appliedAt  int64 // a replica first applied it then
}

// lockKeyTrack is one lock key's committed state, by the events.
type lockKeyTrack struct {
	present    bool
	holder     string
	lockIndex  uint64
	delayUntil int64  // replicated time the key's lock delay ends
	delayBy    string // the session whose invalidation set it
	holders    []holderSpan
}

// holderSpan: from revision rev on, the key's holder was holder.
type holderSpan struct {
	rev    int64
	holder string
}

type lockChecker struct {
	sessions  map[string]*sessionTrack
	order     []*sessionTrack // creation order: checks iterate this, never the map
	seenMax   uint64
	timeMax   int64 // replicated time of the highest index read
	changes   map[uint64][]locks.Change
	keys      []lockKeyTrack
	invs      []*lockInv
	history   []porcupine.Operation
	invClient int // porcupine's client id for invalidations
}

func (w *World) newLockChecker() {
	w.lkc = &lockChecker{sessions: map[string]*sessionTrack{}, changes: map[uint64][]locks.Change{},
		keys: make([]lockKeyTrack, w.sc.Locks.Locks), invClient: w.sc.Locks.Clients}
}

// session returns the checker's record of session id, made on first sight.
func (lc *lockChecker) session(id string) *sessionTrack {
	t := lc.sessions[id]
	if t == nil {
		t = &sessionTrack{id: id, client: -1}
		lc.sessions[id] = t
		lc.order = append(lc.order, t)
	}
	return t
}

// sessionAsked records a create as its client sends it: a create whose
// outcome stays unknown may still make the session.
func (lc *lockChecker) sessionAsked(c *lockClient, s locks.Session, now int64) {
	t := lc.session(s.ID)
	t.client, t.ttlNs, t.delayNs, t.behavior, t.lastSentAt = c.idx, s.TTLNs, s.LockDelayNs, s.Behavior, now
}

// lockKeyIndex returns n for lock key lk/n, or -1.
func lockKeyIndex(key []byte) int {
	rest, ok := bytes.CutPrefix(key, []byte("lk/"))
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(string(rest))
	if err != nil {
		return -1
	}
	return n
}

// reportOf returns what an applied entry's module of report type T reported.
func reportOf[T any](a *node.Applied) []T {
	for _, r := range a.Reports {
		if c, ok := r.([]T); ok {
			return c
		}
	}
	return nil
}

// eventsUpTo splits a Ready's change events (in revision order) after the
// last one an entry that left the store at revision rev made.
func eventsUpTo(events []node.Event, rev int64) (mine, rest []node.Event) {
	n := 0
	for n < len(events) && events[n].Revision <= rev {
		n++
	}
	return events[:n], events[n:]
}

// lockRecords reads a replica's applied records, and the change events of
// the same Ready.
func (w *World) lockRecords(sn *simNode, recs []node.Applied, events []node.Event) {
	lc := w.lkc
	for i := range recs {
		a := &recs[i]
		var mine []node.Event
		mine, events = eventsUpTo(events, a.Revision)
		cs := reportOf[locks.Change](a)
		if a.Index <= lc.seenMax {
			if first := lc.changes[a.Index]; len(first)+len(cs) > 0 && !reflect.DeepEqual(first, cs) {
				w.check.fail("replicas report session changes differently at index %d: node %d %s, the first to apply it %s",
					a.Index, sn.id, describeLockChanges(cs), describeLockChanges(first))
			}
			continue
		}
		lc.seenMax, lc.timeMax = a.Index, a.TimeNs
		if len(cs) > 0 {
			lc.changes[a.Index] = cs
		}
		var before []string
		if len(cs) > 0 {
			before = make([]string, len(lc.keys))
			for k := range lc.keys {
				before[k] = lc.keys[k].holder
			}
		}
		for j := range mine {
			w.lockEvent(a, &mine[j])
		}
		for _, c := range cs {
			w.sessionChanged(a, c, before)
		}
	}
}

func describeLockChanges(cs []locks.Change) string {
	var parts []string
	for _, c := range cs {
		if c.Created != nil {
			parts = append(parts, fmt.Sprintf("[created %s]", c.Created.ID))
		} else {
			parts = append(parts, fmt.Sprintf("[invalidated %s expired %v keys %q at revision %d delay %d]", c.Invalidated, c.Expired, c.Keys, c.Revision, c.DelayNs))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// lockEvent moves a lock key's timeline by one committed change.
func (w *World) lockEvent(a *node.Applied, e *kv.Event) {
	k := lockKeyIndex(e.Key)
	if k < 0 || k >= len(w.lkc.keys) {
		return
	}
	kt := &w.lkc.keys[k]
	was := kt.holder
	if e.Deleted {
		kt.present, kt.holder, kt.lockIndex = false, "", 0
	} else {
		w.checkAcquisition(a, e, kt)
		kt.present, kt.holder, kt.lockIndex = true, e.Record.Session, e.Record.LockIndex
	}
	if kt.holder != was {
		kt.holders = append(kt.holders, holderSpan{rev: e.Revision, holder: kt.holder})
	}
}

// checkAcquisition checks a put of a lock key against the key as it was.
func (w *World) checkAcquisition(a *node.Applied, e *kv.Event, kt *lockKeyTrack) {
	rec, key := e.Record, e.Key
	prev := uint64(0)
	if kt.present {
		prev = kt.lockIndex
	}
	if rec.Session == "" || rec.Session == kt.holder {
		if rec.LockIndex != prev {
			w.check.fail("lock key %s changed its lock index from %d to %d at index %d without an acquisition", key, prev, rec.LockIndex, a.Index)
		}
		return
	}
	t := w.lkc.sessions[rec.Session]
	switch {
	case kt.holder != "":
		w.check.fail("lock key %s acquired by session %s at index %d while session %s held it", key, rec.Session, a.Index, kt.holder)
	case a.TimeNs < kt.delayUntil:
		w.check.fail("lock key %s acquired by session %s at index %d at replicated time %d, %.3fs before the lock delay left by session %s ended",
			key, rec.Session, a.Index, a.TimeNs, float64(kt.delayUntil-a.TimeNs)/1e9, kt.delayBy)
	case rec.LockIndex != prev+1:
		w.check.fail("lock key %s acquired by session %s at index %d with lock index %d, want %d", key, rec.Session, a.Index, rec.LockIndex, prev+1)
	case t == nil || !t.created || t.inv != nil:
		w.check.fail("lock key %s acquired at index %d by session %s, which is not live", key, a.Index, rec.Session)
	}
}

// sessionChanged checks one session change and, for an invalidation,
// enters it into the history.
func (w *World) sessionChanged(a *node.Applied, c locks.Change, before []string) {
	lc := w.lkc
	if c.Created != nil {
		t := lc.session(c.Created.ID)
		if t.client < 0 || t.created {
			w.check.fail("session %s created at index %d: no client asked for it, or it was created before", c.Created.ID, a.Index)
		}
		t.created = true
		w.res.LockSessions++
		return
	}
	t := lc.sessions[c.Invalidated]
	if t == nil || !t.created || t.inv != nil {
		w.check.fail("session %s invalidated at index %d, but it was never created or ended before", c.Invalidated, a.Index)
		return
	}
	inv := &lockInv{session: t.id, index: a.Index, expired: c.Expired, keys: c.Keys, rev: c.Revision,
		appendedAt: w.lc.appendedAt(a.Index), appliedAt: w.now}
	t.inv = inv
	lc.invs = append(lc.invs, inv)
	w.res.LockInvalidations++
	w.res.LockKeysReleased += len(c.Keys)
	w.checkInvalidation(a, t, c, before)
	w.historyInvalidation(t, c, inv)
}

func (w *World) checkInvalidation(a *node.Applied, t *sessionTrack, c locks.Change, before []string) {
	lc := w.lkc
	switch {
	case !c.Expired && !t.destroyAsked:
		w.check.fail("session %s destroyed at index %d, but no client asked to destroy it", t.id, a.Index)
	case c.Expired && t.ttlNs == 0:
		w.check.fail("session %s expired at index %d, but it has no TTL", t.id, a.Index)
	case c.Expired && t.renewing && t.healedAck && w.clientsOn && w.lc.graceAt < t.lastAckAt && w.now-t.lastAckAt < t.ttlNs:
		w.check.fail("session %s expired at %.3fs in the healed phase while its client renewed it on time (last renewal acknowledged at %.3fs, by the same leader)",
			t.id, float64(w.now)/1e9, float64(t.lastAckAt)/1e9)
	}
	var held [][]byte
	for k, h := range before {
		if h == t.id {
			held = append(held, []byte(lockKey(k)))
		}
	}
	slices.SortFunc(held, bytes.Compare)
	if !slices.EqualFunc(held, c.Keys, bytes.Equal) {
		w.check.fail("session %s invalidated at index %d releasing keys %q, but it held %q", t.id, a.Index, c.Keys, held)
	}
	want := int64(0)
	if t.delayNs > 0 && len(c.Keys) > 0 {
		want = a.TimeNs + t.delayNs
	}
	if c.DelayNs != want {
		w.check.fail("session %s invalidated at index %d with lock delay until %d, want %d (its delay from the entry's time %d)", t.id, a.Index, c.DelayNs, want, a.TimeNs)
	}
	for k := range lc.keys {
		kt := &lc.keys[k]
		switch {
		case kt.holder == t.id:
			w.check.fail("session %s invalidated at index %d, but it still holds lock key %s", t.id, a.Index, lockKey(k))
		case before[k] == t.id && t.behavior == locks.Delete && kt.present:
			w.check.fail("session %s (behavior delete) invalidated at index %d, but lock key %s is still there", t.id, a.Index, lockKey(k))
		case before[k] == t.id && t.behavior == locks.Release && !kt.present:
			w.check.fail("session %s (behavior release) invalidated at index %d, but lock key %s was deleted", t.id, a.Index, lockKey(k))
		}
		if before[k] == t.id && c.DelayNs > 0 {
			kt.delayUntil, kt.delayBy = c.DelayNs, t.id
		}
	}
}

// historyInvalidation enters the invalidation as a write of every lock key
// the session asked to acquire or the replicas say it released: each
// partition's model must agree on whether the session held the key.
func (w *World) historyInvalidation(t *sessionTrack, c locks.Change, inv *lockInv) {
	var released keySet
	for _, key := range c.Keys {
		if k := lockKeyIndex(key); k >= 0 && k < len(w.lkc.keys) {
			released |= 1 << k
		} else {
			w.check.fail("session %s released key %q, which is no lock key", t.id, key)
		}
	}
	for k := range w.lkc.keys {
		if !(t.tried | released).has(k) {
			continue
		}
		w.lkc.history = append(w.lkc.history, porcupine.Operation{ClientId: w.lkc.invClient,
			Input:  lockInput{Kind: lkInvalidate, Key: k, Session: t.id, Delete: t.behavior == locks.Delete, DelayNs: c.DelayNs},
			Output: lockOutput{Ok: released.has(k), Rev: c.Revision},
			Call:   inv.appendedAt, Return: inv.appliedAt})
	}
}

// record enters a client's lock operation into the history; a write whose
// outcome is unknown never returns.
func (lc *lockChecker) record(w *World, op *lockOp, out lockOutput) {
	ret := w.now
	if out.Unknown {
		ret = math.MaxInt64
	}
	if op.kind == lkRead && out.Holder != "" {
		if t := lc.sessions[out.Holder]; t != nil && t.inv != nil && t.inv.appliedAt < op.start {
			w.check.fail("read of lock key %s at %.3fs shows it held by session %s, invalidated at index %d (applied at %.3fs)",
				lockKey(op.in.Key), float64(op.start)/1e9, out.Holder, t.inv.index, float64(t.inv.appliedAt)/1e9)
		}
	}
	lc.history = append(lc.history, porcupine.Operation{ClientId: op.client, Input: op.in, Output: out, Call: op.start, Return: ret})
}

// fenced checks an acknowledged write under a lock: at its revision the
// lock's timeline must show its session holding the key.
func (lc *lockChecker) fenced(w *World, op *lockOp, rev int64) {
	spans := lc.keys[op.in.Key].holders
	i, _ := slices.BinarySearchFunc(spans, rev+1, func(s holderSpan, r int64) int { return int(s.rev - r) })
	holder := ""
	if i > 0 {
		holder = spans[i-1].holder
	}
	if holder != op.sid {
		w.check.fail("write of %s guarded by session %s acknowledged at revision %d, when lock key %s was held by %q",
			dataKey(op.in.Key), op.sid, rev, lockKey(op.in.Key), holder)
	}
	w.res.LockFencedWrites++
}

// goneAnswered checks a request refused as its session is gone: some
// replica must have ended the session before the answer.
func (lc *lockChecker) goneAnswered(w *World, t *sessionTrack, what string, start int64) {
	if t.inv == nil {
		w.check.fail("lock client %d: %s with session %s (sent at %.3fs) answered as if the session were gone, but no replica ended it",
			t.client, what, t.id, float64(start)/1e9)
	}
}

// renewed notes an acknowledged renewal. It counts as on time in the
// healed phase when it was sent after the heal and came within a TTL of
// the one before (renewals go every TTL/3).
func (lc *lockChecker) renewed(w *World, t *sessionTrack, start int64) {
	onTime := w.now-t.lastAckAt <= t.ttlNs
	t.healedAck = !w.faultsOn && start >= w.faultEnd && onTime
	t.lastAckAt, t.renewing = w.now, w.clientsOn
}
