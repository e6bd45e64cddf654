package transport

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// readBufferBytes is the size of each inbound connection's read buffer.
const readBufferBytes = 64 << 10

// acceptLoop accepts peers' connections and starts a reader for each.
func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	b := backoff{min: t.cfg.BackoffMin, max: t.cfg.BackoffMax}
	for {
		conn, err := t.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // e.g. out of file descriptors: wait for some to free up
			t.logf("transport: accept: %v", err)
			if !t.sleep(b.next()) {
				return
			}
			continue
		}
		b.reset()
		if !t.track(conn) {
			conn.Close()
			return
		}
		go t.serveInbound(conn)
	}
}

// track registers conn so Close can break it, and counts its reader in wg;
// it reports false once the transport is closed.
func (t *Transport) track(conn net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.inbound[conn] = 0
	t.wg.Add(1)
	return true
}

func (t *Transport) untrack(conn net.Conn) {
	t.mu.Lock()
	delete(t.inbound, conn)
	t.mu.Unlock()
	conn.Close()
}

// serveInbound is the reader goroutine of one accepted connection. Any error,
// including a bad frame, closes this connection and no other.
func (t *Transport) serveInbound(conn net.Conn) {
	defer t.wg.Done()
	defer t.untrack(conn)
	fr := &frameReader{r: bufio.NewReaderSize(conn, readBufferBytes)}
	from, err := t.handshake(conn, fr)
	if err == nil {
		t.claim(from, conn)
		err = t.receive(fr)
	}
	if t.isClosed() {
		return // Close broke the connection; that is no news
	}
	if from == 0 {
		t.logf("transport: closing connection from %s: %v", conn.RemoteAddr(), err)
		return
	}
	t.logf("transport: closing connection from peer %d at %s: %v", from, conn.RemoteAddr(), err)
}

// handshake reads the hello. It must arrive within DialTimeout, so a
// connection that never speaks does not hold a goroutine.
func (t *Transport) handshake(conn net.Conn, fr *frameReader) (uint64, error) {
	if err := conn.SetReadDeadline(time.Now().Add(t.cfg.DialTimeout)); err != nil {
		return 0, fmt.Errorf("handshake: %w", err)
	}
	p, err := fr.next(helloBytes)
	if err != nil {
		return 0, fmt.Errorf("handshake: %w", err)
	}
	h, err := decodeHello(p)
	switch {
	case err != nil:
		return 0, fmt.Errorf("handshake: %w", err)
	case h.version != protocolVersion:
		return 0, fmt.Errorf("handshake: protocol version %d, want %d", h.version, protocolVersion)
	case h.from == 0:
		return 0, errors.New("handshake: sender id 0")
	case h.to != t.cfg.ID:
		return 0, fmt.Errorf("handshake: peer %d addressed node %d, this is node %d", h.from, h.to, t.cfg.ID)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return 0, fmt.Errorf("handshake: %w", err)
	}
	return h.from, nil
}

// claim records conn as from's connection and closes any older one from the
// same peer: a peer redials only after giving up on its old connection, which
// may be half-open (the peer crashed) and would otherwise hold its reader
// until Close.
func (t *Transport) claim(from uint64, conn net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for other, id := range t.inbound {
		if id == from && other != conn {
			other.Close()
		}
	}
	t.inbound[conn] = from
}

// receive delivers messages until the connection fails.
func (t *Transport) receive(fr *frameReader) error {
	ra := reassembly{bytesMax: uint64(t.cfg.SnapshotBytesMax)}
	for {
		p, err := fr.next(t.cfg.FrameBytesMax)
		if err != nil {
			return err
		}
		data, err := messageBytes(p, &ra)
		if err != nil {
			return err
		}
		if data == nil {
			continue // a chunk of a message still incomplete
		}
		var m raftpb.Message
		if err := m.Unmarshal(data); err != nil {
			return fmt.Errorf("unmarshal message: %w", err)
		}
		t.h.Receive(m)
	}
}

// messageBytes returns the marshalled message a frame completes, or nil when
// the frame is a chunk of one still incomplete.
func messageBytes(p []byte, ra *reassembly) ([]byte, error) {
	switch p[0] {
	case frameMessage:
		if ra.active() {
			return nil, fmt.Errorf("message frame inside chunked message %d", ra.id)
		}
		return p[1:], nil
	case frameChunk:
		c, err := decodeChunk(p)
		if err != nil {
			return nil, err
		}
		return ra.add(c)
	default:
		return nil, fmt.Errorf("unknown frame type %d", p[0])
	}
}

// sleep waits d, and reports false if the transport closes first.
func (t *Transport) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}
