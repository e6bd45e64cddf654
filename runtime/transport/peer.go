package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// writeBufferBytes is the size of each outbound connection's write buffer.
const writeBufferBytes = 64 << 10

var errPeerHungUp = errors.New("peer closed the connection")

// peer sends to one remote node. Its writer goroutine owns the connection:
// it dials only when messages are waiting, writes them in order, and backs off
// after a failure, so a dead peer costs one idle goroutine and a bounded queue
// and never delays messages to anyone else.
type peer struct {
	t      *Transport
	id     uint64
	q      *queue
	ctx    context.Context // canceled when the peer is removed or the transport closes
	cancel context.CancelFunc

	chunkID uint64 // last chunked message's id; writer only

	sent, dropped atomic.Uint64
	connected     atomic.Bool

	mu      sync.Mutex
	addr    string
	conn    net.Conn // the live connection, so stop and redirect can break it
	lastErr string
}

func newPeer(t *Transport, id uint64, addr string) *peer {
	ctx, cancel := context.WithCancel(t.ctx)
	return &peer{t: t, id: id, addr: addr, q: newQueue(t.cfg.QueueMax), ctx: ctx, cancel: cancel}
}

// run is the writer goroutine.
func (p *peer) run() {
	defer p.t.wg.Done()
	b := backoff{min: p.t.cfg.BackoffMin, max: p.t.cfg.BackoffMax}
	for p.waitWork() {
		conn, err := p.dial()
		if err != nil {
			p.dialFailed(err)
		} else {
			b.reset()
			err = p.stream(conn)
			p.disconnect(conn)
			p.record(err)
		}
		if !p.sleep(b.next()) {
			return
		}
	}
}

// waitWork blocks until a message is queued, and reports false once the peer
// is stopped. Dialling only for queued work keeps an idle or absent peer from
// costing connections.
func (p *peer) waitWork() bool {
	for p.q.len() == 0 {
		select {
		case <-p.q.ready:
		case <-p.ctx.Done():
			return false
		}
	}
	return p.ctx.Err() == nil
}

func (p *peer) dial() (net.Conn, error) {
	addr := p.address()
	d := net.Dialer{Timeout: p.t.cfg.DialTimeout}
	conn, err := d.DialContext(p.ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil || addr != p.addr { // stopped or redirected while dialling
		conn.Close()
		return nil, fmt.Errorf("dial %s: abandoned", addr)
	}
	p.conn = conn
	return conn, nil
}

// dialFailed tells raft the queued messages are stuck. Ordinary messages stay
// queued for the next attempt (the queue bounds them); snapshots are failed at
// once so raft can retry them later instead of pinning one in memory.
func (p *peer) dialFailed(err error) {
	p.record(err)
	p.drop(p.q.takeSnapshots())
	p.unreachable()
}

func (p *peer) disconnect(conn net.Conn) {
	p.mu.Lock()
	p.conn = nil
	p.mu.Unlock()
	conn.Close()
}

// stream sends the hello and then every queued message until the connection
// fails or the peer is stopped. It flushes whenever the queue runs dry, so
// bursts share syscalls and a lone message still goes out at once.
func (p *peer) stream(conn net.Conn) error {
	w := bufio.NewWriterSize(deadlineWriter{conn: conn, timeout: p.t.cfg.WriteTimeout}, writeBufferBytes)
	fw := &frameWriter{w: w}
	h := hello{version: protocolVersion, from: p.t.cfg.ID, to: p.id}
	if err := fw.write(h.encode(), nil); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	p.connected.Store(true)
	defer p.connected.Store(false)
	hungUp := p.watch(conn)
	var batch []raftpb.Message
	for {
		batch = p.q.swap(batch)
		if len(batch) == 0 {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("flush: %w", err)
			}
			if err := p.idle(hungUp); err != nil {
				return err
			}
			continue
		}
		err := p.writeBatch(fw, batch)
		clear(batch) // let sent messages' entries be collected
		if err != nil {
			return err
		}
	}
}

// idle waits for more messages.
func (p *peer) idle(hungUp <-chan struct{}) error {
	select {
	case <-p.q.ready:
		return nil
	case <-hungUp:
		return errPeerHungUp
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// watch reads from a connection the peer never writes to, so a peer that
// hangs up is noticed while the queue is idle, not by losing the next message
// into a dead socket. Anything read (EOF, an error, or stray bytes) closes it.
func (p *peer) watch(conn net.Conn) <-chan struct{} {
	hungUp := make(chan struct{})
	p.t.wg.Add(1)
	go func() {
		defer p.t.wg.Done()
		defer close(hungUp)
		var b [1]byte
		_, _ = conn.Read(b[:])
		conn.Close()
	}()
	return hungUp
}

// writeBatch writes batch in order. On a write error the unwritten rest is
// dropped and reported: raft retransmits, so requeueing would only reorder.
func (p *peer) writeBatch(fw *frameWriter, batch []raftpb.Message) error {
	for i := range batch {
		if err := p.write(fw, &batch[i]); err != nil {
			p.drop(batch[i:])
			p.unreachable()
			return err
		}
	}
	return nil
}

// write writes one message, as one frame or as chunks. A MsgSnap is flushed
// and only then reported, because raft takes the report to mean the snapshot
// has left this node.
func (p *peer) write(fw *frameWriter, m *raftpb.Message) error {
	data, err := p.marshal(fw, m)
	if err != nil {
		p.reject(m, err)
		return nil
	}
	if 1+len(data) <= p.t.cfg.FrameBytesMax {
		err = fw.write(messageHead, data)
	} else {
		err = p.writeChunks(fw, data)
	}
	if err != nil {
		return err
	}
	if m.Type == raftpb.MsgSnap {
		if err := fw.w.Flush(); err != nil {
			return fmt.Errorf("flush snapshot: %w", err)
		}
		p.t.h.SnapshotStatus(p.id, true)
	}
	p.sent.Add(1)
	return nil
}

// marshal encodes m: into the writer's reused buffer when it fits one frame,
// else into a buffer of its own, since large messages are rare and must not
// pin their size in the writer.
func (p *peer) marshal(fw *frameWriter, m *raftpb.Message) ([]byte, error) {
	size := m.Size()
	if int64(size) > p.t.cfg.SnapshotBytesMax {
		return nil, fmt.Errorf("%d bytes exceeds limit of %d bytes", size, p.t.cfg.SnapshotBytesMax)
	}
	var data []byte
	if 1+size <= p.t.cfg.FrameBytesMax {
		fw.buf = slices.Grow(fw.buf[:0], size)[:size]
		data = fw.buf
	} else {
		data = make([]byte, size)
	}
	if _, err := m.MarshalToSizedBuffer(data); err != nil {
		return nil, fmt.Errorf("marshal: %w", err)
	}
	return data, nil
}

// writeChunks writes data as consecutive chunk frames of one message.
func (p *peer) writeChunks(fw *frameWriter, data []byte) error {
	p.chunkID++
	step := p.t.cfg.FrameBytesMax - chunkHeaderBytes
	var head [chunkHeaderBytes]byte
	for off := 0; off < len(data); off += step {
		encodeChunkHeader(&head, chunk{id: p.chunkID, total: uint64(len(data)), offset: uint64(off)})
		if err := fw.write(head[:], data[off:min(off+step, len(data))]); err != nil {
			return err
		}
	}
	return nil
}

// reject drops a message that can never be sent, without blaming the peer.
func (p *peer) reject(m *raftpb.Message, err error) {
	p.t.logf("transport: dropping %s to peer %d: %v", m.Type, p.id, err)
	p.drop([]raftpb.Message{*m})
}

// drop counts msgs as dropped and fails any snapshots among them, so raft
// stops waiting on them.
func (p *peer) drop(msgs []raftpb.Message) {
	p.dropped.Add(uint64(len(msgs)))
	if p.ctx.Err() != nil {
		return // removed or closing: nobody is waiting for the reports
	}
	for i := range msgs {
		if msgs[i].Type == raftpb.MsgSnap {
			p.t.h.SnapshotStatus(p.id, false)
		}
	}
}

func (p *peer) unreachable() {
	if p.ctx.Err() == nil {
		p.t.h.Unreachable(p.id)
	}
}

// record keeps err for Stats and logs it when it changes, so a peer that stays
// down logs once rather than at every retry.
func (p *peer) record(err error) {
	if p.ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	changed := err.Error() != p.lastErr
	p.lastErr = err.Error()
	p.mu.Unlock()
	if changed {
		p.t.logf("transport: peer %d: %v", p.id, err)
	}
}

// sleep waits d, and reports false if the peer is stopped first.
func (p *peer) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

func (p *peer) address() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// redirect points the peer at a new address. Breaking the live connection
// makes the writer redial; queued messages stay queued for the new address.
func (p *peer) redirect(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if addr == p.addr {
		return
	}
	p.addr = addr
	if p.conn != nil {
		p.conn.Close()
	}
}

// stop ends the writer without waiting for it: canceling stops a dial or a
// wait, and closing the connection fails a blocked write.
func (p *peer) stop() {
	p.cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close()
	}
}

func (p *peer) stats() PeerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PeerStats{
		Addr:      p.addr,
		Queued:    p.q.len(),
		Sent:      p.sent.Load(),
		Dropped:   p.dropped.Load(),
		Connected: p.connected.Load(),
		LastError: p.lastErr,
	}
}

// deadlineWriter bounds every write, so a peer that stops reading (or a
// network that silently drops) frees its writer instead of holding it until
// TCP gives up many minutes later.
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (d deadlineWriter) Write(b []byte) (int, error) {
	if err := d.conn.SetWriteDeadline(time.Now().Add(d.timeout)); err != nil {
		return 0, err
	}
	return d.conn.Write(b)
}

// backoff yields exponentially growing waits with equal jitter (each wait is
// random in the upper half of its step), so peers that lost a node together do
// not redial it in lockstep.
type backoff struct {
	min, max, step time.Duration
}

func (b *backoff) next() time.Duration {
	if b.step == 0 {
		b.step = b.min
	} else {
		b.step = min(2*b.step, b.max)
	}
	return b.step/2 + rand.N(b.step/2+1)
}

func (b *backoff) reset() {
	b.step = 0
}
