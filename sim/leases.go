package sim

import (
	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/node"
)

// Leases in the workload ([leases]). Holders are clients of their own, each
// with its own session, so a keep-alive never waits behind a KV write of the
// same client (a session has one write in flight). A holder holds at most one
// lease at a time: it grants one (now and then naming the id), keeps it alive
// every TTL/3 of its own time for a while and then revokes it or lets it
// lapse, or lets it lapse from the start; between steps it asks how long a
// lease has left, lists the leases, or sends a request the store must refuse.
// KV clients attach keys to held leases (mix weight lease_put), each lease to
// keys of one group only, so that a lease's end touches one group and the
// linearizability checker can still check groups one by one.

const (
	leaseHoldersMax = 64
	// Ids holders name count down from leaseChosenIDBase in steps of
	// leaseChosenIDGap. The table picks one above the highest id granted so
	// far, so after a named id it picks the ids just above it; named grants
	// may apply out of order, and only the gap keeps the table's picks
	// short of the named ids above (within a run's grants).
	leaseChosenIDBase = 1 << 40
	leaseChosenIDGap  = 1 << 20
	// leaseUnknownID is never granted: below every named id, and far above
	// the table's picks before the first named one.
	leaseUnknownID = 1 << 39
	// keepAliveJitter: keep-alives go out every TTL/3, give or take this share.
	keepAliveJitter = 0.1
	// lapseWaitTTLs: a holder letting its lease lapse looks it up after this
	// many TTLs, and then forgets it.
	lapseWaitTTLs = 1.5
)

type holderAction uint8

const (
	actGrant holderAction = iota + 1
	actKeepAlive
	actRevoke
	actTimeToLive
	actList
	actInvalid
)

type leaseHolder struct {
	idx     int // among the holders
	client  int // its number among all clients (after the KV clients and the admin)
	session uint64
	seq     uint64
	op      *holderOp
	held    *heldLease
	timer   int // generation of its wake-up timer; older ones are void
}

// heldLease is the holder's lease, as the holder knows it.
type heldLease struct {
	t         *leaseTrack // nil until the grant is acknowledged
	named     lease.ID    // the id the holder named, if it did (else the table picks)
	group     int
	ttlNs     int64
	keep      bool  // keeping it alive every TTL/3
	keepUntil int64 // then revoke it, or let it lapse
	revoke    bool
	nextKeep  int64 // the next keep-alive is due then
	lapseAt   int64 // a lapsing lease is looked up, then forgotten, then
}

// holderOp is the request a holder has in flight, across retries.
type holderOp struct {
	action   holderAction
	req      node.Request
	invalid  int  // actInvalid: which request of invalidLeaseRequests
	keys     bool // actTimeToLive: with the lease's keys
	forget   bool // forget the lease once answered
	start    int64
	deadline int64
	attempt  int
}

func (w *World) newHolders() {
	for i := 0; i < w.sc.Leases.Holders; i++ {
		client := len(w.clients) + 1 + i
		h := &leaseHolder{idx: i, client: client, session: uint64(clientIDBase + client)}
		w.holders = append(w.holders, h)
		w.wakeHolder(h, w.thinkTime())
	}
}

// holder returns the holder numbered client, or nil.
func (w *World) holder(client int) *leaseHolder {
	if i := client - len(w.clients) - 1; i >= 0 && i < len(w.holders) {
		return w.holders[i]
	}
	return nil
}

func (w *World) wakeHolder(h *leaseHolder, at int64) {
	h.timer++
	w.schedule(event{at: at, kind: evHolder, node: -1, client: h.client, n: h.timer})
}

func (w *World) holderWake(e event) {
	if h := w.holder(e.client); h != nil && e.n == h.timer {
		w.holderStep(h)
	}
}

// holderStep starts the holder's next request, or sleeps until one is due.
func (w *World) holderStep(h *leaseHolder) {
	if h.op != nil || !w.clientsOn {
		return
	}
	l, held := &w.sc.Leases, h.held
	switch {
	case held == nil && w.rng.Float64() < l.InvalidProb:
		w.holderInvalid(h)
	case held == nil:
		w.holderGrant(h)
	case held.keep && w.now >= held.keepUntil:
		w.endHold(h)
	case held.keep && w.now >= held.nextKeep:
		held.nextKeep = w.now + int64(float64(held.ttlNs)/3*w.uniform(1-keepAliveJitter, 1+keepAliveJitter))
		w.holderSend(h, &holderOp{action: actKeepAlive, req: node.Request{Call: call(lease.KeepAlive(held.t.id))}})
	case !held.keep && w.now >= held.lapseAt:
		w.holderSend(h, &holderOp{action: actTimeToLive, keys: true, forget: true, req: node.Request{Call: call(lease.TimeToLive(held.t.id, true))}})
	case w.rng.Float64() < l.QueryProb:
		w.holderQuery(h)
	default:
		next := held.lapseAt
		if held.keep {
			next = min(held.keepUntil, held.nextKeep)
		}
		w.wakeHolder(h, next)
	}
}

func call(c module.Command) *module.Command { return &c }

// holderGrant asks for a new lease: TTL from the scenario's range, the id
// named now and then, its keys' group, and what the holder will do with it.
func (w *World) holderGrant(h *leaseHolder) {
	l := &w.sc.Leases
	held := &heldLease{group: w.rng.IntN(w.sc.Workload.Groups), ttlNs: millis(w.uniform(l.TTLMsMin, l.TTLMsMax))}
	held.keep = w.rng.Float64() < l.KeepProb
	if held.keep {
		held.keepUntil = w.now + int64(float64(held.ttlNs)*w.uniform(0, l.HoldTTLsMax))
		held.revoke = w.rng.Float64() < l.RevokeProb
	} else {
		held.lapseAt = w.now + int64(float64(held.ttlNs)*lapseWaitTTLs)
	}
	if w.rng.Float64() < l.ChosenIDProb {
		// Tracked at once: a grant whose outcome stays unknown may still
		// make the lease, and its end then has a group to go to.
		w.leaseIDsNamed++
		held.named = leaseChosenIDBase - w.leaseIDsNamed*leaseChosenIDGap
		t := w.lc.track(held.named)
		t.group, t.ttlNs = held.group, held.ttlNs
	}
	h.held = held
	w.holderSend(h, &holderOp{action: actGrant, req: node.Request{Call: call(lease.Grant(held.named, held.ttlNs))}})
}

// endHold ends a kept lease's hold: revoke it, or stop keeping it alive.
func (w *World) endHold(h *leaseHolder) {
	held := h.held
	held.keep, held.t.keeping = false, false
	if held.revoke {
		held.t.revokeAsked = true
		w.holderSend(h, &holderOp{action: actRevoke, forget: true, req: node.Request{Call: call(lease.Revoke(held.t.id))}})
		return
	}
	held.lapseAt = w.now + int64(float64(held.ttlNs)*lapseWaitTTLs)
	w.holderStep(h)
}

// holderQuery asks how long its lease has left (with its keys or not), or
// lists every lease.
func (w *World) holderQuery(h *leaseHolder) {
	if w.rng.IntN(3) == 0 {
		w.holderSend(h, &holderOp{action: actList, req: node.Request{Call: call(lease.List())}})
		return
	}
	keys := w.rng.IntN(2) == 0
	w.holderSend(h, &holderOp{action: actTimeToLive, keys: keys, req: node.Request{Call: call(lease.TimeToLive(h.held.t.id, keys))}})
}

// holderSend starts op: writes take the holder's next sequence number, reads
// a number no write uses, as clients' do.
func (w *World) holderSend(h *leaseHolder, op *holderOp) {
	op.start, op.deadline = w.numberRequest(&op.req, h.session, &h.seq, holderWrites(op))
	h.op = op
	w.holderAttempt(h)
}

func holderWrites(op *holderOp) bool {
	switch op.action {
	case actTimeToLive, actList:
		return false
	case actInvalid:
		return !invalidLeaseRequests[op.invalid].query
	}
	return true
}

func (w *World) holderAttempt(h *leaseHolder) {
	h.op.attempt++
	w.toNode(w.liveNode(), h.op.req)
	w.timeAttempt(h.client, h.op.attempt)
}

func (w *World) holderTimeout(h *leaseHolder, attempt int) {
	if h.op != nil && h.op.attempt == attempt {
		w.holderRetry(h)
	}
}

// holderRetry sends the same request again (the session applies a write
// once), or gives up at the deadline: the outcome is then unknown.
func (w *World) holderRetry(h *leaseHolder) {
	if w.now < h.op.deadline {
		w.holderAttempt(h)
		return
	}
	op := h.op
	if op.action == actGrant || op.forget {
		h.held = nil // a grant may or may not have applied; the lease lapses either way
	}
	w.holderDone(h)
}

func (w *World) holderResponse(h *leaseHolder, e event) {
	op, r := h.op, e.resp
	if op == nil || r.Seq != op.req.Seq {
		return // an answer to a request already finished
	}
	if r.Outcome != node.OK && !r.Outcome.Refused() {
		w.holderRetry(h)
		return
	}
	switch op.action {
	case actGrant:
		w.granted(h, r)
	case actKeepAlive:
		w.keptAlive(h, r)
	case actRevoke:
		w.revoked(h, r)
	case actTimeToLive:
		w.timeToLiveAnswered(h, r)
	case actList:
		w.listAnswered(h, r)
	case actInvalid:
		if want := invalidLeaseRequests[op.invalid]; r.Outcome != want.outcome {
			w.check.fail("lease holder %d: request with %s answered %v, want %v", h.idx, want.name, r.Err(), want.outcome)
		}
	}
	if op.forget {
		h.held = nil
	}
	w.holderDone(h)
}

// holderDone finishes the request in flight and takes the next step.
func (w *World) holderDone(h *leaseHolder) {
	h.op = nil
	w.holderStep(h)
}

// stopHolders stops keeping leases alive when clients stop: every lease then
// lapses, which the checkers must not mistake for a lost keep-alive.
func (w *World) stopHolders() {
	for _, h := range w.holders {
		if h.held != nil && h.held.t != nil {
			h.held.keep, h.held.t.keeping = false, false
		}
	}
}

// heldLeases lists the leases holders know they hold, in holder order: the
// ones clients attach keys to.
func (w *World) heldLeases() []*heldLease {
	var out []*heldLease
	for _, h := range w.holders {
		if h.held != nil && h.held.t != nil {
			out = append(out, h.held)
		}
	}
	return out
}

// genLeasePut draws a put attached to a held lease, on a key of the lease's
// group; with no lease held it is a plain put.
func (w *World) genLeasePut(c *simClient, in *opInput) {
	in.Kind, in.Value = kPut, w.newValue(c)
	held := w.heldLeases()
	if len(held) == 0 {
		return
	}
	l := held[w.rng.IntN(len(held))]
	in.Group, in.Lease = l.group, int64(l.t.id)
	l.t.keysPut |= 1 << in.Key
}
