package sim

import (
	"fmt"
	"slices"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/locks"
	"github.com/aspen-db/aspen/core/node"
)

// The lease checker. Replicas report every lease an applied entry ended
// (the []lease.End in node.Applied.Reports) with the entry's kind and replicated time. The
// checker reads those records once per index, from the first replica that
// applies it (indexes reach the checker in order: nothing is applied before
// the entries below it), and compares every other replica's against them.
//
// A lease's end deletes its keys: a write no client issued. It enters the
// linearizability history as a write of the lease's group (kLeaseEnd) whose
// interval holds its commit: from the moment the entry's index first reached
// any log (a commit comes after the append) to its first apply (which comes
// after the commit). The model deletes the keys its own puts attached to the
// lease and requires the replicas to have deleted exactly those, at a
// revision that fits the group's order; a read after the end that still
// shows a key fails the model, unless a later put made it again.

// leaseTrack is what the checker knows of one lease.
type leaseTrack struct {
	id          lease.ID
	group       int // the group its keys come from; -1 until a holder says
	ttlNs       int64
	keysPut     keySet // keys clients put with it, acknowledged or not
	promisedNs  int64  // the latest deadline an OK grant or keep-alive gave its holder
	lastAckAt   int64  // when the holder got that answer
	keeping     bool   // its holder renews it every TTL/3
	healedAck   bool   // a renewal was acknowledged in the healed phase while kept
	revokeAsked bool
	session     string // the session whose TTL it carries (core/locks), if any
	end         *leaseEnd
}

// leaseEnd is a lease's end as first applied.
type leaseEnd struct {
	lease.End
	index      uint64
	timeNs     int64 // replicated time of the entry that ended it
	appendedAt int64 // the entry's index first reached a log then
	appliedAt  int64 // a replica first applied it then
}

// appendMark says that by at, some log reached index.
type appendMark struct {
	index uint64
	at    int64
}

type leaseChecker struct {
	tracks      map[lease.ID]*leaseTrack
	order       []*leaseTrack // creation order: checks iterate this, never the map
	seenMax     uint64        // the highest index whose record was read
	graceNs     int64         // replicated time of the last grace applied, in log order
	graceAt     int64         // when a replica first applied it
	graced      bool
	appended    []appendMark
	appendedMax uint64
	ends        map[uint64][]lease.End // by index, as first applied: other replicas must agree
	keyEnds     map[[2]int][]*leaseEnd // (group, key) -> the ends that deleted it
	keyIndex    map[string][2]int      // key name -> (group, key)
	electionNs  int64                  // a new leader's grace
	endClient   int                    // porcupine's client id for lease ends
}

func (w *World) newLeaseChecker() {
	lc := &leaseChecker{tracks: map[lease.ID]*leaseTrack{}, ends: map[uint64][]lease.End{},
		keyEnds: map[[2]int][]*leaseEnd{}, keyIndex: map[string][2]int{},
		electionNs: millis(float64(w.sc.Cluster.TickMs * w.sc.Cluster.ElectionTicks)),
		endClient:  len(w.clients) + 1 + w.sc.Leases.Holders}
	for g, names := range w.names {
		for k, name := range names {
			lc.keyIndex[name] = [2]int{g, k}
		}
	}
	w.lc = lc
}

// track returns the checker's record of lease id, made on first sight.
func (lc *leaseChecker) track(id lease.ID) *leaseTrack {
	t := lc.tracks[id]
	if t == nil {
		t = &leaseTrack{id: id, group: -1}
		lc.tracks[id] = t
		lc.order = append(lc.order, t)
	}
	return t
}

// noteAppended records when logs first reached each index: a lower bound on
// the commit of whatever entry ends up there.
func (w *World) noteAppended(n *node.Node) {
	if last := n.LastIndex(); last > w.lc.appendedMax {
		w.lc.appendedMax = last
		w.lc.appended = append(w.lc.appended, appendMark{index: last, at: w.now})
	}
}

func (lc *leaseChecker) appendedAt(index uint64) int64 {
	i, _ := slices.BinarySearchFunc(lc.appended, index, func(m appendMark, x uint64) int {
		return cmpUint64(m.index, x)
	})
	if i == len(lc.appended) {
		return 0 // never seen appended: any time before is a safe lower bound
	}
	return lc.appended[i].at
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// leaseRecords reads a replica's applied records: each index once, in
// order, and every later replica's against the first.
func (w *World) leaseRecords(sn *simNode, recs []node.Applied) {
	lc := w.lc
	for i := range recs {
		a := &recs[i]
		if a.Index <= lc.seenMax {
			if first := lc.ends[a.Index]; !endsEqual(first, endsOf(a)) {
				w.check.fail("replicas end leases differently at index %d: node %d ended %s, the first to apply it %s",
					a.Index, sn.id, describeEnds(endsOf(a)), describeEnds(first))
			}
			continue
		}
		lc.seenMax = a.Index
		for _, c := range reportOf[locks.Change](a) {
			if c.Created != nil && c.Created.Lease != 0 {
				lc.track(lease.ID(c.Created.Lease)).session = c.Created.ID
			}
		}
		if a.Kind == lease.CmdGrace {
			lc.graceNs, lc.graceAt, lc.graced = a.TimeNs, w.now, true
		}
		if len(endsOf(a)) > 0 {
			lc.ends[a.Index] = endsOf(a)
		}
		for _, e := range endsOf(a) {
			w.leaseEnded(&leaseEnd{End: e, index: a.Index, timeNs: a.TimeNs, appendedAt: lc.appendedAt(a.Index), appliedAt: w.now})
		}
	}
}

func endsEqual(a, b []lease.End) bool {
	return slices.EqualFunc(a, b, func(x, y lease.End) bool {
		return x.ID == y.ID && x.Expired == y.Expired && x.TTLNs == y.TTLNs && x.DeadlineNs == y.DeadlineNs &&
			x.Revision == y.Revision && slices.EqualFunc(x.Keys, y.Keys, func(p, q []byte) bool { return string(p) == string(q) })
	})
}

func describeEnds(ends []lease.End) string {
	if len(ends) == 0 {
		return "none"
	}
	s := ""
	for _, e := range ends {
		how := "revoked"
		if e.Expired {
			how = "expired"
		}
		s += fmt.Sprintf("[lease %d %s at revision %d, deadline %d, keys %q]", e.ID, how, e.Revision, e.DeadlineNs, e.Keys)
	}
	return s
}

// leaseEnded checks one lease's end and enters it into the history.
func (w *World) leaseEnded(e *leaseEnd) {
	t := w.lc.track(e.ID)
	if t.end != nil {
		w.check.fail("lease %d ended twice: at index %d and %d", e.ID, t.end.index, e.index)
		return
	}
	t.end = e
	w.res.LeaseKeysDeleted += len(e.Keys)
	if e.Expired {
		w.res.LeasesExpired++
	} else {
		w.res.LeasesRevoked++
	}
	if e.Expired {
		w.checkExpiry(t, e)
	} else if !t.revokeAsked && t.session == "" { // a session's destroy is the lock checker's to check
		w.check.fail("lease %d revoked at index %d, but no client asked to revoke it", e.ID, e.index)
	}
	w.historyLeaseEnd(t, e)
}

// checkExpiry holds an expiry to the deadlines: the lease's own, the one its
// holder was promised, and a new leader's grace of one election timeout,
// which lets keep-alives lost in a failover land. And a lease whose holder
// keeps renewing it in the healed phase, when renewals get through, never
// expires under the leader that acknowledged its last renewal. A new leader
// brings its own clock, which may be seconds ahead of the last one's: then
// replicated time jumps, renewals did not come every TTL/3 of it, and the
// lease may expire after the new leader's grace (swarm-membership seed 37,
// a handover in the healed phase).
func (w *World) checkExpiry(t *leaseTrack, e *leaseEnd) {
	lc := w.lc
	switch {
	case e.DeadlineNs > e.timeNs:
		w.check.fail("lease %d expired at index %d at replicated time %d, before its deadline %d", e.ID, e.index, e.timeNs, e.DeadlineNs)
	case t.promisedNs > e.timeNs:
		w.check.fail("lease %d expired at replicated time %d, before the deadline %d its holder was promised", e.ID, e.timeNs, t.promisedNs)
	case lc.graced && e.timeNs < lc.graceNs+min(lc.electionNs, e.TTLNs):
		w.check.fail("lease %d expired at index %d, %.3fs of replicated time after a new leader's grace (want at least one election timeout, %.3fs)",
			e.ID, e.index, float64(e.timeNs-lc.graceNs)/1e9, float64(lc.electionNs)/1e9)
	case t.keeping && t.healedAck && w.clientsOn && lc.graceAt < t.lastAckAt:
		w.check.fail("lease %d expired at %.3fs in the healed phase while its holder kept it alive (last renewal acknowledged at %.3fs, by the same leader)",
			e.ID, float64(w.now)/1e9, float64(t.lastAckAt)/1e9)
	}
}

// historyLeaseEnd enters the end as a write of each group it touched: its
// keys', and the lease's own group even without keys (a lease the model
// holds keys of must then have deleted them).
func (w *World) historyLeaseEnd(t *leaseTrack, e *leaseEnd) {
	gone := map[int]keySet{}
	for _, key := range e.Keys {
		gk, ok := w.lc.keyIndex[string(key)]
		if !ok {
			w.check.fail("lease %d deleted key %q, which no client attaches to leases", e.ID, key)
			continue
		}
		gone[gk[0]] |= 1 << gk[1]
		w.lc.keyEnds[gk] = append(w.lc.keyEnds[gk], e)
	}
	if _, ok := gone[t.group]; !ok && t.group >= 0 {
		gone[t.group] = 0
	}
	for _, g := range sortedGroups(gone) {
		w.history = append(w.history, porcupine.Operation{ClientId: w.lc.endClient,
			Input:  opInput{Kind: kLeaseEnd, Group: g, Lease: int64(e.ID)},
			Output: opOutput{Rev: e.Revision, Gone: gone[g]},
			Call:   e.appendedAt, Return: e.appliedAt})
	}
}

func sortedGroups(m map[int]keySet) []int {
	out := make([]int, 0, len(m))
	for g := range m {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// checkLeaseReads looks for the plainest lease failure on its own, for a
// clear report: a read that began after a replica applied a lease's end
// (so after its commit) and still shows a key the end deleted, with the
// value from before it. A key put again after the end has a later mod
// revision and passes.
func (w *World) checkLeaseReads() {
	for _, op := range w.history {
		if op.Output.(opOutput).Unknown {
			continue
		}
		for _, rd := range readKeys(op.Input.(opInput), op.Output.(opOutput)) {
			for _, e := range w.lc.keyEnds[[2]int{rd.group, rd.key}] {
				if e.appliedAt < op.Call && rd.Mod < e.Revision {
					w.check.fail("key %q read at %.3fs with mod revision %d, after lease %d deleted it at revision %d (applied at %.3fs)",
						w.names[rd.group][rd.key], float64(op.Call)/1e9, rd.Mod, e.ID, e.Revision, float64(e.appliedAt)/1e9)
				}
			}
		}
	}
}

// keyRead is a read that showed a key.
type keyRead struct {
	group, key int
	readResult
}

// readKeys lists the keys an operation's reads showed present.
func readKeys(in opInput, out opOutput) []keyRead {
	var keys []int
	switch in.Kind {
	case kGet:
		keys = []int{in.Key}
	case kScan, kRange:
		for k := range out.Reads {
			keys = append(keys, k)
		}
	case kTxn:
		branch := in.Then
		if !out.Ok {
			branch = in.Else
		}
		for _, op := range branch {
			if op.Kind == kGet {
				keys = append(keys, op.Key)
			}
		}
	}
	var got []keyRead
	for i, k := range keys {
		if i < len(out.Reads) && out.Reads[i].Present {
			got = append(got, keyRead{group: in.Group, key: k, readResult: out.Reads[i]})
		}
	}
	return got
}

// endsOf returns the leases an applied entry ended, as the lease module
// reported them.
func endsOf(a *node.Applied) []lease.End { return reportOf[lease.End](a) }

// leasesOf lists a replica's live leases.
func leasesOf(n *node.Node) []lease.Lease {
	return n.Hosted("leases").(*lease.Module).Table().List()
}
