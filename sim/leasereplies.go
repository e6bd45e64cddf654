package sim

import (
	"bytes"
	"slices"

	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/node"
)

// What holders are told about their leases, checked against the lease ends
// the replicas applied (leasecheck.go). A lease is gone for a request once a
// replica applied its end before the answer (the replica that answered
// applied the end first); a lease is still there for a request that started
// before any replica applied its end.

// leaseAnswer reads a lease call's answer; a missing one is a violation.
func (w *World) leaseAnswer(h *leaseHolder, r node.Response) (lease.Answer, bool) {
	a, ok := r.Value.(lease.Answer)
	if !ok {
		w.check.fail("lease holder %d: answer %T to a lease call, want lease.Answer", h.idx, r.Value)
	}
	return a, ok
}

// granted takes a new lease: its id (the one named, or the table's pick),
// its TTL and its first deadline.
func (w *World) granted(h *leaseHolder, r node.Response) {
	held := h.held
	if r.Outcome != node.OK {
		w.check.fail("lease holder %d: valid grant of %d ms refused: %v", h.idx, held.ttlNs/1e6, r.Err())
		h.held = nil
		return
	}
	a, ok := w.leaseAnswer(h, r)
	switch {
	case !ok:
		h.held = nil
		return
	case held.named != 0 && a.Lease.ID != held.named:
		w.check.fail("lease holder %d: asked for lease %d, was granted %d", h.idx, held.named, a.Lease.ID)
	case a.Lease.TTLNs != held.ttlNs:
		w.check.fail("lease holder %d: lease %d granted with TTL %d, asked for %d", h.idx, a.Lease.ID, a.Lease.TTLNs, held.ttlNs)
	}
	w.res.LeasesGranted++
	t := w.lc.track(a.Lease.ID)
	t.group, t.ttlNs, t.keeping = held.group, held.ttlNs, held.keep
	held.t, held.nextKeep = t, w.now+held.ttlNs/3
	w.acked(h, t, a)
}

// acked checks the deadline a grant or renewal gave: a full TTL from the
// time it applied, never earlier than a deadline given before, and never
// after the lease expired.
func (w *World) acked(h *leaseHolder, t *leaseTrack, a lease.Answer) {
	switch {
	case a.Lease.ID != t.id:
		w.check.fail("lease holder %d: renewal of lease %d answered for lease %d", h.idx, t.id, a.Lease.ID)
	case a.RemainingNs <= 0 || a.RemainingNs > t.ttlNs:
		w.check.fail("lease holder %d: lease %d renewed with %d ns left, want 0 < left <= TTL %d", h.idx, t.id, a.RemainingNs, t.ttlNs)
	case a.Lease.ExpiryNs < t.promisedNs:
		w.check.fail("lease holder %d: lease %d renewed to deadline %d, earlier than the %d given before", h.idx, t.id, a.Lease.ExpiryNs, t.promisedNs)
	}
	t.promisedNs, t.lastAckAt = max(t.promisedNs, a.Lease.ExpiryNs), w.now
	if e := t.end; e != nil && e.Expired && e.timeNs < t.promisedNs {
		w.check.fail("lease %d expired at replicated time %d, before the deadline %d its holder was promised", t.id, e.timeNs, t.promisedNs)
	}
}

func (w *World) keptAlive(h *leaseHolder, r node.Response) {
	t := h.held.t
	switch r.Outcome {
	case node.OK:
		if a, ok := w.leaseAnswer(h, r); ok {
			w.acked(h, t, a)
			t.healedAck = t.healedAck || t.keeping && w.now >= w.faultEnd
		}
	case node.NotFound:
		w.mustHaveEnded(h, t, "keep-alive")
		h.held = nil
	default:
		w.check.fail("lease holder %d: keep-alive of lease %d refused: %v", h.idx, t.id, r.Err())
		h.held = nil
	}
}

// mustHaveEnded checks a "not found" for lease t: some replica must have
// applied its end.
func (w *World) mustHaveEnded(h *leaseHolder, t *leaseTrack, what string) {
	if t.end == nil {
		w.check.fail("lease holder %d: %s of lease %d answered not found, but no replica ended it", h.idx, what, t.id)
	}
}

func (w *World) revoked(h *leaseHolder, r node.Response) {
	t := h.held.t
	switch r.Outcome {
	case node.OK:
		a, ok := w.leaseAnswer(h, r)
		switch e := t.end; {
		case !ok:
		case e == nil:
			w.check.fail("lease holder %d: revoke of lease %d acknowledged, but no replica ended it", h.idx, t.id)
		case e.Expired || e.Revision != a.Revision:
			w.check.fail("lease holder %d: revoke of lease %d answered revision %d, but the lease ended by %s",
				h.idx, t.id, a.Revision, describeEnds([]lease.End{e.End}))
		}
	case node.NotFound:
		w.mustHaveEnded(h, t, "revoke")
	default:
		w.check.fail("lease holder %d: revoke of lease %d refused: %v", h.idx, t.id, r.Err())
	}
}

// timeToLiveAnswered checks what a lease has left: its TTL as granted, at
// most that left, something left while it is renewed on time, its keys those
// clients put with it, and its deadline no earlier than promised.
func (w *World) timeToLiveAnswered(h *leaseHolder, r node.Response) {
	t, op := h.held.t, h.op
	if r.Outcome != node.OK {
		if r.Outcome != node.NotFound {
			w.check.fail("lease holder %d: time-to-live of lease %d refused: %v", h.idx, t.id, r.Err())
		}
		w.mustHaveEnded(h, t, "time-to-live")
		return
	}
	a, ok := w.leaseAnswer(h, r)
	switch {
	case !ok:
	case t.end != nil && t.end.appliedAt < op.start:
		w.check.fail("lease holder %d: time-to-live found lease %d, which a replica had ended before the query began", h.idx, t.id)
	case a.Lease.ID != t.id || a.Lease.TTLNs != t.ttlNs:
		w.check.fail("lease holder %d: time-to-live of lease %d (TTL %d) answered lease %d with TTL %d", h.idx, t.id, t.ttlNs, a.Lease.ID, a.Lease.TTLNs)
	case a.RemainingNs < 0 || a.RemainingNs > t.ttlNs:
		w.check.fail("lease holder %d: lease %d has %d ns left, want 0..%d", h.idx, t.id, a.RemainingNs, t.ttlNs)
	case t.keeping && w.now-t.lastAckAt <= t.ttlNs/3 && a.RemainingNs == 0:
		// Measured to the answer, not to the query's start: the read is
		// linearized anywhere in between, and a query that waited out a
		// failover (2.78 s) rightly found a lease of 2.7 s renewed 11 ms
		// before it began expired (leases seed 1027).
		w.check.fail("lease holder %d: lease %d renewed %.3fs ago has nothing left", h.idx, t.id, float64(w.now-t.lastAckAt)/1e9)
	case a.Lease.ExpiryNs < t.promisedNs:
		w.check.fail("lease holder %d: lease %d has deadline %d, earlier than the %d its holder was promised", h.idx, t.id, a.Lease.ExpiryNs, t.promisedNs)
	case op.keys:
		w.checkLeaseKeys(h, t, a)
	}
}

// checkLeaseKeys requires the keys a lease lists to be in order, as many as
// it counts, and among those clients put with it.
func (w *World) checkLeaseKeys(h *leaseHolder, t *leaseTrack, a lease.Answer) {
	if len(a.Keys) != a.Lease.Keys || !slices.IsSortedFunc(a.Keys, bytes.Compare) {
		w.check.fail("lease holder %d: lease %d counts %d keys, lists %q", h.idx, t.id, a.Lease.Keys, a.Keys)
		return
	}
	for _, k := range a.Keys {
		if gk, ok := w.lc.keyIndex[string(k)]; !ok || gk[0] != t.group || !t.keysPut.has(gk[1]) {
			w.check.fail("lease holder %d: lease %d lists key %q, which no client put with it", h.idx, t.id, k)
			return
		}
	}
}

// listAnswered checks a list of every lease: none a replica ended before the
// query began, and every lease granted before it that no replica ended by the
// answer.
func (w *World) listAnswered(h *leaseHolder, r node.Response) {
	if r.Outcome != node.OK {
		w.check.fail("lease holder %d: list refused: %v", h.idx, r.Err())
		return
	}
	a, ok := w.leaseAnswer(h, r)
	if !ok {
		return
	}
	listed := map[lease.ID]bool{}
	for _, l := range a.Leases {
		listed[l.ID] = true
		if t := w.lc.tracks[l.ID]; t != nil && t.end != nil && t.end.appliedAt < h.op.start {
			w.check.fail("lease holder %d: list shows lease %d, which a replica had ended before the query began", h.idx, l.ID)
		}
	}
	for _, t := range w.lc.order {
		if t.lastAckAt > 0 && t.lastAckAt < h.op.start && t.end == nil && !listed[t.id] {
			w.check.fail("lease holder %d: list leaves out lease %d, granted before the query and never ended", h.idx, t.id)
		}
	}
}

// leasedPutRefused checks a put refused for its lease: some replica must
// have ended the lease. The put changed nothing, so it stays out of the
// history.
func (w *World) leasedPutRefused(c *simClient, r node.Response) {
	id := lease.ID(c.op.in.Lease)
	if t := w.lc.tracks[id]; t == nil || t.end == nil {
		w.check.fail("client %d: put attached to live lease %d refused: %v", c.idx, id, r.Err())
	}
	w.nextOp(c)
}

// leasedPutAcked checks a put acknowledged with its lease: it must have
// applied before the lease ended, which their revisions order (an end takes
// a revision after the put's if it deleted the key, and is at or after a
// later write's otherwise). The model cannot see this: it keeps the key
// attached, as a store that took it would.
func (w *World) leasedPutAcked(c *simClient, rev int64) {
	id := lease.ID(c.op.in.Lease)
	if t := w.lc.tracks[id]; t != nil && t.end != nil && t.end.Revision < rev {
		w.check.fail("client %d: put attached to lease %d acknowledged at revision %d, after the lease ended at revision %d",
			c.idx, id, rev, t.end.Revision)
	}
}

// checkLeasesAtEnd requires the leader to have expired every lease well past
// its deadline on the leader's own clock: expiry must happen, not only be
// safe.
func (w *World) checkLeasesAtEnd() {
	slack := leaseEndSlackNs + 2*w.lc.electionNs
	for _, sn := range w.nodes {
		if sn.gone || sn.n == nil {
			continue
		}
		if _, leads := sn.n.LeaderTerm(); !leads {
			continue
		}
		now := w.localNow(sn)
		for _, l := range leasesOf(sn.n) {
			if l.ExpiryNs < now-slack {
				w.check.fail("lease %d still live at the end, %.3fs past its deadline on the leader's clock", l.ID, float64(now-l.ExpiryNs)/1e9)
			}
		}
	}
}

// leaseEndSlackNs: a leader proposes an expiry at its next tick and asks
// again a second later if it was lost (core/lease proposeRetryNs).
const leaseEndSlackNs = 1e9
