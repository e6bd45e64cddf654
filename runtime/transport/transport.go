// Package transport carries raft messages between Aspen peers over TCP.
//
// Each node dials one connection to every peer it sends to and accepts the
// connections its peers dial to it, so every connection carries messages one
// way. A peer has its own writer goroutine and bounded queue: Send only
// enqueues, a slow or dead peer fills and then overflows its own queue, and
// raft is told through Handler.Unreachable whenever a message is dropped, as
// raft retransmits what matters. The wire format is described in frame.go.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// Config configures a Transport. Zero values take the defaults below. All
// peers of a cluster must agree on FrameBytesMax and SnapshotBytesMax: a
// receiver closes a connection whose frames exceed its own limits.
type Config struct {
	ID     uint64
	Listen string            // host:port to accept peers on
	Peers  map[uint64]string // id -> address; may include ID itself, which is ignored

	QueueMax         int   // messages queued per peer before new ones are dropped (default 4096)
	FrameBytesMax    int   // largest frame payload accepted (default 4 MiB); larger messages are chunked
	SnapshotBytesMax int64 // largest reassembled message accepted (default 1 GiB)

	DialTimeout  time.Duration // one dial attempt, and the wait for an inbound hello (default 1 s)
	BackoffMin   time.Duration // first wait after a failed connection (default 100 ms)
	BackoffMax   time.Duration // cap on the doubling wait (default 5 s)
	WriteTimeout time.Duration // one socket write, before the peer is deemed stuck (default 10 s)

	// Logf receives reasons for closed connections and peer errors; nil
	// means the standard logger.
	Logf func(format string, args ...any)
}

const (
	defaultQueueMax         = 4096
	defaultFrameBytesMax    = 4 << 20
	defaultSnapshotBytesMax = 1 << 30
	defaultDialTimeout      = time.Second
	defaultBackoffMin       = 100 * time.Millisecond
	defaultBackoffMax       = 5 * time.Second
	defaultWriteTimeout     = 10 * time.Second

	// frameBytesMin leaves a chunk room for data after its header.
	frameBytesMin = 1 << 10
)

// withDefaults fills zero fields and rejects values that cannot work.
func (c Config) withDefaults() (Config, error) {
	setDefault(&c.QueueMax, defaultQueueMax)
	setDefault(&c.FrameBytesMax, defaultFrameBytesMax)
	setDefault(&c.SnapshotBytesMax, defaultSnapshotBytesMax)
	setDefault(&c.DialTimeout, defaultDialTimeout)
	setDefault(&c.BackoffMin, defaultBackoffMin)
	setDefault(&c.BackoffMax, max(defaultBackoffMax, c.BackoffMin))
	setDefault(&c.WriteTimeout, defaultWriteTimeout)
	if c.Logf == nil {
		c.Logf = log.Printf
	}
	switch {
	case c.ID == 0:
		return c, errors.New("config: ID must not be 0, raft's None")
	case c.QueueMax < 0:
		return c, fmt.Errorf("config: QueueMax %d is negative", c.QueueMax)
	case c.FrameBytesMax < frameBytesMin:
		return c, fmt.Errorf("config: FrameBytesMax %d is below %d", c.FrameBytesMax, frameBytesMin)
	case c.SnapshotBytesMax < int64(c.FrameBytesMax):
		return c, fmt.Errorf("config: SnapshotBytesMax %d is below FrameBytesMax %d", c.SnapshotBytesMax, c.FrameBytesMax)
	case c.DialTimeout < 0 || c.BackoffMin < 0 || c.WriteTimeout < 0:
		return c, errors.New("config: negative duration")
	case c.BackoffMax < c.BackoffMin:
		return c, fmt.Errorf("config: BackoffMax %v is below BackoffMin %v", c.BackoffMax, c.BackoffMin)
	}
	return c, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Handler receives what the transport has to tell raft. Its methods are
// called from the transport's goroutines, concurrently, and must return
// quickly: the node loop should queue what it is told. None is called after
// Close returns.
type Handler interface {
	// Receive delivers a message from a peer, in the order that peer sent it.
	Receive(m raftpb.Message)
	// Unreachable reports that a message to peer could not be sent (raft's
	// ReportUnreachable).
	Unreachable(peer uint64)
	// SnapshotStatus reports that a MsgSnap to peer was fully written to the
	// socket (ok) or was dropped (raft's ReportSnapshot).
	SnapshotStatus(peer uint64, ok bool)
}

// PeerStats describes one peer, for metrics and status pages.
type PeerStats struct {
	Addr      string
	Queued    int    // messages waiting for the writer
	Sent      uint64 // messages written to the connection
	Dropped   uint64 // messages given up on: queue full, write failed, or too large
	Connected bool   // an outbound connection is up
	LastError string // the most recent dial or write error; a string so it prints and serializes as text
}

// Transport sends and receives raft messages. Its methods are safe for
// concurrent use.
type Transport struct {
	cfg Config
	h   Handler
	ln  net.Listener

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the transport starts

	mu      sync.RWMutex
	closed  bool
	peers   map[uint64]*peer
	inbound map[net.Conn]uint64 // accepted connections -> sender id (0 until its hello)
}

// New starts listening on cfg.Listen and starts a writer for each peer; the
// writers dial only once they have messages to send.
func New(cfg Config, h Handler) (*Transport, error) {
	if h == nil {
		return nil, errors.New("new transport: nil handler")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new transport: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("new transport: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	peers := cfg.Peers
	cfg.Peers = nil // membership lives in t.peers from here on; don't alias the caller's map
	t := &Transport{
		cfg: cfg, h: h, ln: ln, ctx: ctx, cancel: cancel,
		peers:   make(map[uint64]*peer),
		inbound: make(map[net.Conn]uint64),
	}
	for id, addr := range peers {
		t.AddPeer(id, addr)
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr returns the address the transport listens on, with the port the
// system chose when Listen asked for port 0.
func (t *Transport) Addr() string {
	return t.ln.Addr().String()
}

// Send enqueues msgs for their peers and never blocks. A message to an
// unknown peer, or to a peer whose queue is full, is dropped and reported
// through Unreachable (and SnapshotStatus for a MsgSnap). After Close, Send
// does nothing.
func (t *Transport) Send(msgs []raftpb.Message) {
	for i := range msgs {
		p, open := t.peer(msgs[i].To)
		switch {
		case !open:
			return
		case p == nil:
			t.dropUnknown(&msgs[i])
		case !p.q.push(msgs[i]):
			p.drop(msgs[i : i+1])
			p.unreachable()
		}
	}
}

func (t *Transport) peer(id uint64) (p *peer, open bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.peers[id], !t.closed
}

func (t *Transport) dropUnknown(m *raftpb.Message) {
	if m.Type == raftpb.MsgSnap {
		t.h.SnapshotStatus(m.To, false)
	}
	t.h.Unreachable(m.To)
}

// AddPeer adds a peer, or points an existing one at a new address. Its own
// ID and raft's None (0) are ignored.
func (t *Transport) AddPeer(id uint64, addr string) {
	if id == t.cfg.ID || id == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if p := t.peers[id]; p != nil {
		p.redirect(addr)
		return
	}
	p := newPeer(t, id, addr)
	t.peers[id] = p
	t.wg.Add(1)
	go p.run()
}

// RemovePeer stops sending to a peer and discards its queue without reports:
// raft no longer tracks a removed peer. Connections it dialled to us stay
// open until it closes them, since it may still be catching up on its removal.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		delete(t.peers, id)
		p.stop()
	}
}

// Stats returns a snapshot of every peer's counters.
func (t *Transport) Stats() map[uint64]PeerStats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := make(map[uint64]PeerStats, len(t.peers))
	for id, p := range t.peers {
		s[id] = p.stats()
	}
	return s
}

// Close stops listening, closes every connection and waits for every
// goroutine of the transport to exit. Queued messages are discarded.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.cancel()
	err := t.ln.Close()
	for _, p := range t.peers {
		p.stop()
	}
	for conn := range t.inbound {
		conn.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	if err != nil {
		return fmt.Errorf("close transport: %w", err)
	}
	return nil
}

func (t *Transport) isClosed() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.closed
}

func (t *Transport) logf(format string, args ...any) {
	t.cfg.Logf(format, args...)
}
