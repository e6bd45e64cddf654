package server

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/node"
)

var (
	// ErrUnavailable means no answer came in time; a write may or may not have
	// been applied.
	ErrUnavailable = errors.New("no answer from the cluster in time (is there a leader?); a write may or may not have been applied")
	// ErrStopped means the node is shutting down.
	ErrStopped = errors.New("node is stopping")
	// ErrSuperseded refuses a write of a caller's own session (CallAs) whose
	// sequence number is below one already applied: a leftover retry.
	ErrSuperseded = errors.New("a later write of this client (X-Aspen-Seq) was applied already: this one is a leftover and was not applied")
)

type session struct {
	id  uint64
	seq uint64
}

// sessionPool hands out client sessions; a session serves one write at a
// time. It is a stack: the most recently used session goes out first, so a
// server under light load touches few sessions and the replicated session
// table (bounded, evicting the idlest) does not churn.
type sessionPool struct {
	slots chan struct{} // one token per session not in use
	mu    sync.Mutex
	free  []*session
}

func newSessionPool(n int) *sessionPool {
	p := &sessionPool{slots: make(chan struct{}, n)}
	for i := 0; i < n; i++ {
		p.slots <- struct{}{}
		p.free = append(p.free, &session{id: randomID()})
	}
	return p
}

func (p *sessionPool) acquire(ctx context.Context) (*session, error) {
	select {
	case <-p.slots:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return s, nil
}

func (p *sessionPool) release(s *session) {
	p.mu.Lock()
	p.free = append(p.free, s)
	p.mu.Unlock()
	p.slots <- struct{}{}
}

// withSession runs a write under a session of its own, with the next
// sequence number.
func (s *Server) withSession(ctx context.Context, req node.Request) (node.Response, error) {
	sess, err := s.pool.acquire(ctx)
	if err != nil {
		return node.Response{}, err
	}
	defer s.pool.release(sess)
	sess.seq++
	req.Client, req.Seq = sess.id, sess.seq
	return s.retry(ctx, req)
}

// asRead gives a request the read client and a fresh sequence number: reads
// apply nothing, so they need no session, only a distinct key to wait on.
func (s *Server) asRead(req node.Request) node.Request {
	req.Client, req.Seq = s.readID, s.readSeq.Add(1)
	return req
}

// Write proposes a txn with writes and waits until it is applied.
func (s *Server) Write(ctx context.Context, txn kv.Txn) (kv.Response, error) {
	s.metrics.proposals.Inc()
	resp, err := s.withSession(ctx, node.Request{Txn: txn})
	return resp.Result, err
}

// Read runs a read-only txn: linearizable through ReadIndex, or from this
// node's state at once when stale is set.
func (s *Server) Read(ctx context.Context, txn kv.Txn, stale bool) (kv.Response, error) {
	resp, err := s.retry(ctx, s.asRead(node.Request{Txn: txn, Stale: stale}))
	return resp.Result, err
}

// Call proposes a module's command (lease.Grant, ...) and returns its
// answer, of the module's type, once applied. Like Write, it runs under a
// session, so a retry inside the server applies it once.
func (s *Server) Call(ctx context.Context, cmd module.Command) (any, error) {
	s.metrics.proposals.Inc()
	resp, err := s.withSession(ctx, node.Request{Call: &cmd})
	return resp.Value, err
}

// CallAs runs a module's command under the caller's own session: client
// names it (any text; it is hashed into the ids no node hands out) and seq
// numbers the caller's writes, each higher than the one before. A retry
// with the same seq gets the first answer and applies nothing again, on
// whichever node it lands; a lower seq is refused (ErrSuperseded). A
// producer that retries a publish after losing its answer thus publishes
// once. The table keeps the last answer of at most the configured number
// of clients: one idle longest is forgotten first.
func (s *Server) CallAs(ctx context.Context, client string, seq uint64, cmd module.Command) (any, error) {
	s.metrics.proposals.Inc()
	resp, err := s.retry(ctx, node.Request{Call: &cmd, Client: ClientID(client), Seq: seq})
	return resp.Value, err
}

// ClientID is the session id of a caller-named client: the top bit set,
// which the node's own random session ids never have.
func ClientID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("aspen-client\x00" + name))
	return h.Sum64() | 1<<63
}

// Query runs a module's query (lease.TimeToLive, ...) after a ReadIndex,
// as linearizable as Read, and returns its answer.
func (s *Server) Query(ctx context.Context, cmd module.Command) (any, error) {
	resp, err := s.retry(ctx, s.asRead(node.Request{Call: &cmd}))
	return resp.Value, err
}

// Do runs txn as a read when it has no writes, else as a write.
func (s *Server) Do(ctx context.Context, txn kv.Txn, stale bool) (kv.Response, error) {
	if txn.ReadOnly() {
		return s.Read(ctx, txn, stale)
	}
	return s.Write(ctx, txn)
}

// retry resubmits the same request (same session and sequence number, so it
// applies once) while the replica answers with a retryable error, or at
// once when the leader changes while it waits (see leadership).
func (s *Server) retry(ctx context.Context, req node.Request) (node.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, callDeadlineMs*time.Millisecond)
	defer cancel()
	backoff := retryBackoffMsMin * time.Millisecond
	for {
		changed := s.leadership.changed()
		resp, err := s.call(ctx, req, changed)
		switch {
		case errors.Is(err, errLeaderChanged):
			continue
		case err != nil:
			return node.Response{}, err
		case resp.Outcome == node.OK:
			return resp, nil
		case resp.Outcome.Refused():
			return node.Response{}, resp.Err() // a *node.Error: nothing applied, and a retry would not help
		case resp.Outcome == node.NotLeader:
			return node.Response{}, s.notLeader()
		case resp.Outcome == node.Stale:
			return node.Response{}, ErrSuperseded // a caller's own session moved past this seq
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, retryBackoffMsMax*time.Millisecond)
		case <-changed: // a leader to send it to, at last
		case <-ctx.Done():
			return node.Response{}, ErrUnavailable
		case <-s.stop:
			return node.Response{}, ErrStopped
		}
	}
}

// call submits one request and waits for its answer, or until the leader
// changes (errLeaderChanged).
func (s *Server) call(ctx context.Context, req node.Request, leaderChanged <-chan struct{}) (node.Response, error) {
	ch := make(chan node.Response, 1)
	k := waitKey{req.Client, req.Seq}
	if !s.post(func() { s.waiters[k] = ch; s.node.Submit(req) }) {
		return node.Response{}, ErrStopped
	}
	select {
	case r := <-ch:
		return r, nil
	case <-leaderChanged:
		// Forgotten before the caller submits again: the inbox is FIFO.
		s.post(func() { delete(s.waiters, k) })
		return node.Response{}, errLeaderChanged
	case <-ctx.Done():
		s.post(func() { delete(s.waiters, k) })
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return node.Response{}, ErrUnavailable
		}
		return node.Response{}, ctx.Err()
	case <-s.stop:
		return node.Response{}, ErrStopped
	}
}

// errLeaderChanged says the replica's leader changed while a call waited.
var errLeaderChanged = errors.New("the leader changed")

// leadership wakes calls when the leader this replica knows changes. A write
// forwarded to a leader that then died, or appended by one that lost its
// term before committing it, gets no answer until the replica's request
// timeout (requestTimeoutMs), longer than a lease's shortest TTL: a
// keep-alive lost in a failover would let a healthy lease expire. Submitted
// again under the same session, it goes to the new leader and applies once.
type leadership struct {
	mu         sync.Mutex
	term, lead uint64
	ch         chan struct{} // closed and replaced when term or leader changes
}

func newLeadership() *leadership { return &leadership{ch: make(chan struct{})} }

// observe records the replica's view; the loop calls it with every status.
func (l *leadership) observe(term, lead uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if term != l.term || lead != l.lead {
		l.term, l.lead = term, lead
		close(l.ch)
		l.ch = make(chan struct{})
	}
}

// changed returns a channel closed at the next change.
func (l *leadership) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ch
}

// Status is this node's latest view of the cluster.
func (s *Server) Status() node.Status { return *s.status.Load() }

// LeaderAddr is the leader's peer address, or "" when there is none.
func (s *Server) LeaderAddr() string { return s.member(s.Status().Lead).PeerAddr }
