package sim

import (
	"fmt"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/locks"
	"github.com/aspen-db/aspen/core/node"
)

// Sessions and locks in the workload ([locks]). Lock clients are clients of
// their own, after the topics clients, each with a client session of its
// own and one request in flight. A lock client creates a Consul session
// (with a TTL or without, behavior release or delete, a lock delay), renews
// it every TTL/3 of its own time (give or take 10%), and takes locks with
// it: it acquires a lock key (lk/<n>) the way Consul's ?acquire does, a txn
// guarded by a Lockable compare; while it holds the key it writes the key's
// data key (fk/<n>) now and then, each write guarded by a compare that its
// session holds the lock (fencing); after a while it releases the key, or
// destroys its session while holding it (so the key goes through the
// session's invalidation and lock delay). While the faults run, a client
// may end a hold by crashing (it forgets its TTL session, which stops being
// renewed and must expire, releasing or deleting the key) or by stalling
// past twice its TTL and then going on with stale beliefs: it still thinks
// it holds the lock and writes under it, which the guard must refuse once
// the session is gone. Between steps clients read lock keys. A client that
// does not learn the outcome of a create or an acquire destroys the
// session, as a careful client does, until a destroy is acknowledged.
// Nothing here draws from the world's stream unless the table is on.

const (
	lockClientsMax = 32
	lockKeysMax    = 8
	// lockTTLMinNs is the session TTL floor the simulated nodes accept
	// (locks.Limits.TTLMinNs; Consul's is 10 s, too long for a run).
	lockTTLMinNs = 1e9
	// lockRetryMs: a client whose acquire said no tries again (or reads)
	// after a draw from this range.
	lockRetryMsMin, lockRetryMsMax = 50, 150
	// sessionUsesMax: a session takes at most this many locks, then is
	// destroyed (sessions without a TTL live until then).
	sessionUsesMax = 3
	// lockStallTTLs: a stalled client is away this many TTLs, past its
	// session's lease of two, plus lockStallExtraNs for failover graces.
	lockStallTTLs    = 2.5
	lockStallExtraNs = 1e9
)

// LockSpec sets the lock workload (locks.go). Off while clients = 0, and
// then the run draws exactly as it would without the table.
type LockSpec struct {
	Clients        int     `toml:"clients"`           // lock clients, each with one session at a time
	Locks          int     `toml:"locks"`             // lock keys lk/0.., each with a data key fk/0..
	TTLMsMin       float64 `toml:"ttl_ms_min"`        // a session's TTL is drawn in [min, max]
	TTLMsMax       float64 `toml:"ttl_ms_max"`        //
	TTLProb        float64 `toml:"ttl_prob"`          // a session has a TTL (else it lives until destroyed)
	DeleteProb     float64 `toml:"delete_prob"`       // a session's behavior is delete (else release)
	LockDelayMsMax float64 `toml:"lock_delay_ms_max"` // a session's lock delay is drawn in [0, this]
	HoldMsMin      float64 `toml:"hold_ms_min"`       // a hold lasts a draw in [min, max]
	HoldMsMax      float64 `toml:"hold_ms_max"`       //
	WriteMs        float64 `toml:"write_ms"`          // a holder writes its data key about this often
	ReadProb       float64 `toml:"read_prob"`         // a step reads a lock key instead
	PlainProb      float64 `toml:"plain_prob"`        // a step is a plain put or delete of a lock key (no lock op)
	DestroyProb    float64 `toml:"destroy_prob"`      // a hold ends with its session destroyed (else released)
	CrashProb      float64 `toml:"crash_prob"`        // a hold ends with a crash (fault phase, TTL sessions)
	StallProb      float64 `toml:"stall_prob"`        // a hold ends with a stall past 2×TTL (fault phase, TTL sessions)
}

func (l LockSpec) on() bool { return l.Clients > 0 }

func (sc *Scenario) validateLocks() error {
	l := sc.Locks
	electionMs := float64(sc.Cluster.TickMs * sc.Cluster.ElectionTicks)
	switch {
	case !l.on():
		return nil
	case l.Clients > lockClientsMax || l.Locks < 1 || l.Locks > lockKeysMax:
		return fmt.Errorf("locks: want clients in 1..%d and locks in 1..%d", lockClientsMax, lockKeysMax)
	case millis(l.TTLMsMin) < lockTTLMinNs || l.TTLMsMax < l.TTLMsMin || l.TTLMsMin < 2*electionMs:
		return fmt.Errorf("locks: want %d <= ttl_ms_min <= ttl_ms_max, and ttl_ms_min at least two election timeouts (%v ms)", int64(lockTTLMinNs/1e6), 2*electionMs)
	case l.LockDelayMsMax < 0 || millis(l.LockDelayMsMax) > locks.DefaultLimits().LockDelayMax:
		return fmt.Errorf("locks.lock_delay_ms_max = %v, want 0..%d", l.LockDelayMsMax, locks.DefaultLimits().LockDelayMax/1e6)
	case l.HoldMsMin < 0 || l.HoldMsMax < l.HoldMsMin || l.WriteMs <= 0:
		return fmt.Errorf("locks: want 0 <= hold_ms_min <= hold_ms_max and write_ms > 0")
	case l.DestroyProb+l.CrashProb+l.StallProb > 1:
		return fmt.Errorf("locks: destroy_prob + crash_prob + stall_prob must be at most 1")
	case !on(sc.Checkers.Invariants):
		return fmt.Errorf("locks need checkers.invariants (invalidations are read from the applied records)")
	}
	for _, p := range []float64{l.TTLProb, l.DeleteProb, l.ReadProb, l.PlainProb, l.DestroyProb, l.CrashProb, l.StallProb} {
		if p < 0 || p > 1 {
			return fmt.Errorf("locks: probability %v outside [0, 1]", p)
		}
	}
	return nil
}

func lockKey(i int) string { return fmt.Sprintf("lk/%d", i) }
func dataKey(i int) string { return fmt.Sprintf("fk/%d", i) }

type lockOpKind uint8

var lockOpNames = [...]string{lkCreate: "create", lkRenew: "renewal", lkDestroy: "destroy", lkAcquire: "acquire",
	lkRelease: "release", lkRead: "read", lkFence: "guarded write", lkPut: "plain put", lkDelete: "plain delete", lkInvalidate: "invalidation"}

const (
	lkCreate lockOpKind = iota + 1
	lkRenew
	lkDestroy
	lkAcquire
	lkRelease
	lkRead
	lkFence      // a write of the data key guarded by holding the lock
	lkPut        // a plain put of a lock key: it keeps the key's lock as it is
	lkDelete     // a plain delete of a lock key: the lock goes with it
	lkInvalidate // a session's end, from the replicas' reports (lockcheck.go)
)

// lockClient is one client of the lock workload.
type lockClient struct {
	idx, client int
	session     uint64 // its client session, for requests
	seq         uint64
	op          *lockOp
	timer       int
	sess        *lockSess // the session it believes it has
	sessions    int       // sessions it created, for ids
	values      int       // values it wrote, for unique values
	destroy     []string  // sessions it must destroy: outcome of a create or acquire unknown
	stallUntil  int64
}

// lockSess is a client's session as the client believes it.
type lockSess struct {
	t         *sessionTrack
	nextRenew int64
	key       int // the lock key it holds or wants; -1 for none yet
	held      bool
	holdUntil int64
	nextWrite int64
	uses      int
	stale     bool // back from a stall: it may have lost the lock without knowing
}

// lockOp is the request a lock client has in flight, across retries.
type lockOp struct {
	client   int // the lock client's index
	kind     lockOpKind
	stale    bool // a guarded write by a client back from a stall
	req      node.Request
	in       lockInput // for the history
	sid      string
	start    int64
	deadline int64
	attempt  int
}

// stopLockClients stops renewing when clients stop: every TTL session then
// lapses, which the checkers must not mistake for a lost renewal.
func (w *World) stopLockClients() {
	for _, c := range w.lockClients {
		if c.sess != nil {
			c.sess.t.renewing = false
		}
	}
}

func (w *World) newLockClients() {
	base := w.lockBase()
	for i := 0; i < w.sc.Locks.Clients; i++ {
		c := &lockClient{idx: i, client: base + i}
		c.session = uint64(clientIDBase + c.client)
		w.lockClients = append(w.lockClients, c)
		w.wakeLockClient(c, w.now+millis(w.uniform(0, lockRetryMsMax))) // with or without KV clients
	}
}

// lockBase is the client number of the first lock client: after the topics
// clients.
func (w *World) lockBase() int { return w.topicBase() + len(w.topicActors) }

// lockClient returns the lock client numbered client, or nil.
func (w *World) lockClient(client int) *lockClient {
	if i := client - w.lockBase(); i >= 0 && i < len(w.lockClients) {
		return w.lockClients[i]
	}
	return nil
}

func (w *World) wakeLockClient(c *lockClient, at int64) {
	c.timer++
	w.schedule(event{at: at, kind: evLocks, node: -1, client: c.client, n: c.timer})
}

func (w *World) lockClientWake(e event) {
	if c := w.lockClient(e.client); c != nil && e.n == c.timer {
		w.lockStep(c)
	}
}

// lockStep starts the client's next request, or sleeps until one is due.
func (w *World) lockStep(c *lockClient) {
	if c.op != nil || !w.clientsOn {
		return
	}
	if w.now < c.stallUntil {
		w.wakeLockClient(c, c.stallUntil)
		return
	}
	l, s := &w.sc.Locks, c.sess
	switch {
	case len(c.destroy) > 0:
		w.lockSend(c, &lockOp{kind: lkDestroy, sid: c.destroy[0], req: node.Request{Call: call(locks.Destroy(c.destroy[0]))}})
	case s == nil:
		w.createSession(c)
	case s.stale:
		s.stale = false // it writes under the lock it believes it holds, first thing
		w.lockFence(c)
		c.op.stale = true
	case s.t.ttlNs > 0 && w.now >= s.nextRenew:
		s.nextRenew = w.now + int64(float64(s.t.ttlNs)/3*w.uniform(1-keepAliveJitter, 1+keepAliveJitter))
		s.t.lastSentAt = w.now
		w.lockSend(c, &lockOp{kind: lkRenew, sid: s.t.id, req: node.Request{Call: call(locks.Renew(s.t.id))}})
	case !s.held && s.uses >= sessionUsesMax:
		w.destroySession(c)
	case s.key < 0:
		s.key = w.rng.IntN(l.Locks)
		w.lockStep(c)
	case w.rng.Float64() < l.ReadProb:
		w.lockRead(c)
	case l.PlainProb > 0 && w.rng.Float64() < l.PlainProb:
		w.lockPlain(c)
	case !s.held:
		w.lockAcquire(c)
	case w.now >= s.holdUntil:
		w.endLockHold(c)
	case w.now >= s.nextWrite:
		s.nextWrite = w.now + millis(w.uniform(0.5, 1.5)*l.WriteMs)
		w.lockFence(c)
	default:
		next := min(s.holdUntil, s.nextWrite)
		if s.t.ttlNs > 0 {
			next = min(next, s.nextRenew)
		}
		w.wakeLockClient(c, next)
	}
}

// createSession asks for a new session: a TTL or none, a behavior, a lock
// delay, each drawn.
func (w *World) createSession(c *lockClient) {
	l := &w.sc.Locks
	c.sessions++
	s := locks.Session{ID: fmt.Sprintf("s%d.%d", c.idx, c.sessions), Name: "sim", Node: fmt.Sprintf("lc%d", c.idx)}
	if w.rng.Float64() < l.TTLProb {
		s.TTLNs = millis(w.uniform(l.TTLMsMin, l.TTLMsMax))
	}
	if w.rng.Float64() < l.DeleteProb {
		s.Behavior = locks.Delete
	}
	s.LockDelayNs = millis(w.uniform(0, l.LockDelayMsMax))
	w.lkc.sessionAsked(c, s, w.now)
	w.lockSend(c, &lockOp{kind: lkCreate, sid: s.ID, req: node.Request{Call: call(locks.Create(s))}})
}

func (w *World) destroySession(c *lockClient) {
	s := c.sess
	s.t.destroyAsked = true
	w.lockSend(c, &lockOp{kind: lkDestroy, sid: s.t.id, req: node.Request{Call: call(locks.Destroy(s.t.id))}})
}

// endLockHold ends a hold: a release, a destroy of the session, or, while
// the faults run and the session has a TTL, a crash or a stall.
func (w *World) endLockHold(c *lockClient) {
	l, s := &w.sc.Locks, c.sess
	r := w.rng.Float64()
	ttl := s.t.ttlNs > 0 && w.faultsOn
	switch {
	case ttl && r < l.CrashProb:
		// The process dies: nothing renews the session, nothing releases
		// the key; the client comes back with no memory after a while.
		w.trace.note("lock client %d crashes holding %s", c.idx, lockKey(s.key))
		s.t.renewing = false
		c.sess = nil
		w.wakeLockClient(c, w.now+millis(w.uniform(0.5, 1.5)*float64(w.sc.Faults.DownMsMax)))
	case ttl && r < l.CrashProb+l.StallProb:
		// The process stops past its session's life and goes on as if
		// nothing happened: it still believes it holds the lock.
		w.trace.note("lock client %d stalls holding %s", c.idx, lockKey(s.key))
		s.t.renewing = false
		s.stale = true
		c.stallUntil = w.now + int64(lockStallTTLs*float64(s.t.ttlNs)) + lockStallExtraNs
		w.wakeLockClient(c, c.stallUntil)
	case r < l.CrashProb+l.StallProb+l.DestroyProb:
		w.destroySession(c)
	default:
		w.lockRelease(c)
	}
}

func (w *World) lockValue(c *lockClient) string {
	c.values++
	return fmt.Sprintf("l%d-%d", c.idx, c.values)
}

// lockAcquire is Consul's PUT ?acquire=S: the put runs when S could take
// the key, and the answer says whether it did.
func (w *World) lockAcquire(c *lockClient) {
	s := c.sess
	k := []byte(lockKey(s.key))
	in := lockInput{Kind: lkAcquire, Key: s.key, Session: s.t.id, Value: w.lockValue(c), TimeLo: w.lkc.timeMax}
	s.t.tried |= 1 << s.key
	w.lockSend(c, &lockOp{kind: lkAcquire, sid: s.t.id, in: in, req: node.Request{Txn: kv.Txn{
		Compares: []kv.Compare{{Key: k, Target: kv.TargetLockable, Result: kv.Equal, Value: []byte(s.t.id)}},
		Then:     []kv.Op{{Type: kv.OpPut, Key: k, Value: []byte(in.Value), Lock: kv.LockAcquire, Session: s.t.id}},
	}}})
}

// lockRelease is Consul's PUT ?release=S.
func (w *World) lockRelease(c *lockClient) {
	s := c.sess
	k := []byte(lockKey(s.key))
	in := lockInput{Kind: lkRelease, Key: s.key, Session: s.t.id, Value: w.lockValue(c)}
	w.lockSend(c, &lockOp{kind: lkRelease, sid: s.t.id, in: in, req: node.Request{Txn: kv.Txn{
		Compares: []kv.Compare{{Key: k, Target: kv.TargetSession, Result: kv.Equal, Value: []byte(s.t.id)}},
		Then:     []kv.Op{{Type: kv.OpPut, Key: k, Value: []byte(in.Value), Lock: kv.LockRelease, Session: s.t.id}},
	}}})
}

// lockFence writes the lock's data key, guarded by the lock: it applies
// only while the client's session holds the lock key.
func (w *World) lockFence(c *lockClient) {
	s := c.sess
	in := lockInput{Kind: lkFence, Key: s.key, Session: s.t.id, Value: w.lockValue(c)}
	w.lockSend(c, &lockOp{kind: lkFence, sid: s.t.id, in: in, req: node.Request{Txn: kv.Txn{
		Compares: []kv.Compare{{Key: []byte(lockKey(s.key)), Target: kv.TargetSession, Result: kv.Equal, Value: []byte(s.t.id)}},
		Then:     []kv.Op{{Type: kv.OpPut, Key: []byte(dataKey(s.key)), Value: []byte(in.Value)}},
	}}})
}

// lockPlain puts or deletes a random lock key without a lock op, as any KV
// client may: a put keeps the key's lock, a delete takes the lock with it.
func (w *World) lockPlain(c *lockClient) {
	k := w.rng.IntN(w.sc.Locks.Locks)
	if w.rng.IntN(2) == 0 {
		in := lockInput{Kind: lkPut, Key: k, Value: w.lockValue(c)}
		w.lockSend(c, &lockOp{kind: lkPut, in: in,
			req: node.Request{Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte(lockKey(k)), Value: []byte(in.Value)}}}}})
		return
	}
	w.lockSend(c, &lockOp{kind: lkDelete, in: lockInput{Kind: lkDelete, Key: k},
		req: node.Request{Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpDelete, Key: []byte(lockKey(k))}}}}})
}

// lockRead reads a lock key: its holder, lock index and value.
func (w *World) lockRead(c *lockClient) {
	k := w.rng.IntN(w.sc.Locks.Locks)
	w.lockSend(c, &lockOp{kind: lkRead, in: lockInput{Kind: lkRead, Key: k},
		req: node.Request{Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: []byte(lockKey(k))}}}}})
}

// lockSend starts op: writes take the client's next sequence number, reads
// a number no write uses.
func (w *World) lockSend(c *lockClient, op *lockOp) {
	op.client = c.idx
	op.start, op.deadline = w.numberRequest(&op.req, c.session, &c.seq, op.kind != lkRead)
	c.op = op
	w.lockAttempt(c)
}

func (w *World) lockAttempt(c *lockClient) {
	c.op.attempt++
	w.toNode(w.liveNode(), c.op.req)
	w.timeAttempt(c.client, c.op.attempt)
}

func (w *World) lockTimeout(c *lockClient, attempt int) {
	if c.op != nil && c.op.attempt == attempt {
		w.lockRetry(c)
	}
}

// lockRetry sends the same request again, or gives up at the deadline.
func (w *World) lockRetry(c *lockClient) {
	if w.now < c.op.deadline {
		w.lockAttempt(c)
		return
	}
	op := c.op
	switch op.kind {
	case lkAcquire, lkRelease, lkFence, lkPut, lkDelete:
		w.lkc.record(w, op, lockOutput{Unknown: true})
		w.res.OpsUnknown++
	}
	switch op.kind {
	case lkCreate, lkAcquire:
		// The session may exist, and may hold the key: end it to be sure.
		c.destroy = append(c.destroy, op.sid)
		w.lkc.session(op.sid).destroyAsked = true
		w.dropSession(c)
	case lkDestroy:
		// Asked again until acknowledged (a new request: the same one
		// would be answered from the session table, if at all).
		if len(c.destroy) == 0 || c.destroy[0] != op.sid {
			c.destroy = append(c.destroy, op.sid)
		}
		w.dropSession(c)
	case lkRelease:
		c.sess.held, c.sess.key = false, -1 // it let go, as far as it knows
		c.sess.uses++
	}
	w.lockDone(c, 0)
}

func (w *World) dropSession(c *lockClient) {
	if c.sess != nil {
		c.sess.t.renewing = false
	}
	c.sess = nil
}

func (w *World) lockResponse(c *lockClient, e event) {
	op, r := c.op, e.resp
	if op == nil || r.Seq != op.req.Seq {
		return // an answer to a request already finished
	}
	if r.Outcome != node.OK && !r.Outcome.Refused() {
		w.lockRetry(c)
		return
	}
	wait := int64(0)
	switch op.kind {
	case lkCreate:
		w.sessionCreated(c, op, r)
	case lkRenew:
		w.sessionRenewed(c, op, r)
	case lkDestroy:
		w.sessionDestroyed(c, op, r)
	case lkAcquire:
		wait = w.lockAcquired(c, op, r)
	default:
		w.lockAnswered(c, op, r)
	}
	w.lockDone(c, wait)
}

func (w *World) lockDone(c *lockClient, wait int64) {
	c.op = nil
	if wait > 0 {
		w.wakeLockClient(c, w.now+wait)
		return
	}
	w.lockStep(c)
}

func (w *World) sessionCreated(c *lockClient, op *lockOp, r node.Response) {
	if r.Outcome != node.OK && r.Outcome != node.Conflict { // conflict: an earlier attempt made it
		w.check.fail("lock client %d: create of session %s answered %v", c.idx, op.sid, r.Err())
		return
	}
	t := w.lkc.session(op.sid)
	t.renewing = t.ttlNs > 0 && w.clientsOn
	t.lastAckAt = w.now
	c.sess = &lockSess{t: t, key: -1, nextRenew: w.now + t.ttlNs/3}
}

func (w *World) sessionRenewed(c *lockClient, op *lockOp, r node.Response) {
	t := w.lkc.session(op.sid)
	switch {
	case r.Outcome == node.NotFound:
		w.lkc.goneAnswered(w, t, "renewal", op.start)
		w.dropSession(c)
	case r.Outcome != node.OK:
		w.check.fail("lock client %d: renewal of session %s answered %v", c.idx, op.sid, r.Err())
	default:
		w.lkc.renewed(w, t, op.start)
	}
}

func (w *World) sessionDestroyed(c *lockClient, op *lockOp, r node.Response) {
	if r.Outcome != node.OK {
		w.check.fail("lock client %d: destroy of session %s answered %v", c.idx, op.sid, r.Err())
	}
	if len(c.destroy) > 0 && c.destroy[0] == op.sid {
		c.destroy = c.destroy[1:]
	}
	if c.sess != nil && c.sess.t.id == op.sid {
		w.dropSession(c)
	}
}

// lockAcquired takes an acquire's answer; it returns how long to wait
// before the next step.
func (w *World) lockAcquired(c *lockClient, op *lockOp, r node.Response) int64 {
	s := c.sess
	if r.Outcome == node.Invalid {
		// Its session is gone: some replica must have ended it.
		w.lkc.goneAnswered(w, s.t, "acquire", op.start)
		w.dropSession(c)
		return 0
	}
	if r.Outcome != node.OK {
		w.check.fail("lock client %d: acquire of %s answered %v", c.idx, lockKey(op.in.Key), r.Err())
		return 0
	}
	w.lkc.record(w, op, lockOutput{Ok: r.Result.Succeeded, Rev: r.Result.Revision, TimeHi: w.lkc.timeMax})
	if !r.Result.Succeeded {
		if w.rng.IntN(3) == 0 {
			s.key = -1 // try another key next
		}
		return millis(w.uniform(lockRetryMsMin, lockRetryMsMax))
	}
	l := &w.sc.Locks
	s.held, s.uses = true, s.uses+1
	s.holdUntil = w.now + millis(w.uniform(l.HoldMsMin, l.HoldMsMax))
	s.nextWrite = w.now + millis(w.uniform(0, l.WriteMs))
	return 0
}

// lockAnswered takes the answer to a release, a guarded write or a read.
func (w *World) lockAnswered(c *lockClient, op *lockOp, r node.Response) {
	if r.Outcome != node.OK {
		w.check.fail("lock client %d: %s of %s answered %v", c.idx, lockOpNames[op.kind], lockKey(op.in.Key), r.Err())
		return
	}
	out := lockOutput{Ok: r.Result.Succeeded, Rev: r.Result.Revision}
	switch op.kind {
	case lkRead:
		out = lockReadOutput(r.Result)
	case lkDelete:
		out.Ok = result(r.Result, 0).Deleted > 0
	}
	w.lkc.record(w, op, out)
	switch {
	case op.kind == lkFence && out.Ok:
		w.lkc.fenced(w, op, out.Rev)
	case op.kind == lkFence:
		if op.stale {
			w.res.LockStaleRefused++
		}
		c.sess.held, c.sess.key = false, -1 // it lost the lock: find out by acquiring again
	case op.kind == lkRelease:
		c.sess.held, c.sess.key = false, -1
		c.sess.uses++
	}
}

// lockReadOutput is a lock key's get as the model sees it.
func lockReadOutput(r kv.Response) lockOutput {
	out := lockOutput{Ok: true, Rev: r.Revision}
	if recs := result(r, 0).Records; len(recs) > 0 {
		rec := recs[0]
		out.Present, out.Holder, out.LockIndex, out.Value, out.Mod = true, rec.Session, rec.LockIndex, string(rec.Value), rec.ModRev
	}
	return out
}
