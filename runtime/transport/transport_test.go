package transport

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

func TestDeliversInOrderPerPeer(t *testing.T) {
	const perPeer, batch = 2000, 50
	trs, recs := startCluster(t, 3, nil)
	var wg sync.WaitGroup
	for i, tr := range trs {
		from := uint64(i + 1)
		wg.Go(func() {
			for index := uint64(1); index <= perPeer; index += batch {
				var msgs []raftpb.Message
				for k := range uint64(batch) {
					for to := uint64(1); to <= 3; to++ {
						if to != from {
							msgs = append(msgs, msgApp(from, to, index+k, []byte("x")))
						}
					}
				}
				tr.Send(msgs)
			}
		})
	}
	wg.Wait()
	for i, r := range recs {
		got := r.waitReceived(t, 2*perPeer)
		next := map[uint64]uint64{}
		for _, m := range got {
			if want := next[m.From] + 1; m.Index != want {
				t.Fatalf("node %d: from %d got index %d, want %d", i+1, m.From, m.Index, want)
			}
			next[m.From] = m.Index
		}
		if len(got) != 2*perPeer {
			t.Errorf("node %d: got %d messages, want %d", i+1, len(got), 2*perPeer)
		}
	}
	for i, tr := range trs {
		for id, s := range tr.Stats() {
			if s.Sent != perPeer || s.Dropped != 0 {
				t.Errorf("node %d -> %d: got sent %d dropped %d, want %d and 0", i+1, id, s.Sent, s.Dropped, perPeer)
			}
		}
	}
}

func TestChunkedSnapshotArrivesIntact(t *testing.T) {
	for _, frameBytesMax := range []int{0, 64 << 10} { // the default (4 MiB), and many small chunks
		t.Run(fmt.Sprintf("frame=%d", frameBytesMax), func(t *testing.T) {
			trs, recs := startCluster(t, 2, func(c *Config) { c.FrameBytesMax = frameBytesMax })
			data := make([]byte, 10<<20)
			rand.NewChaCha8([32]byte{1}).Read(data)
			snap := raftpb.Message{
				Type: raftpb.MsgSnap, From: 1, To: 2, Term: 3,
				Snapshot: &raftpb.Snapshot{
					Data:     data,
					Metadata: raftpb.SnapshotMetadata{Index: 77, Term: 3, ConfState: raftpb.ConfState{Voters: []uint64{1, 2}}},
				},
			}
			trs[0].Send([]raftpb.Message{msgApp(1, 2, 1, nil), snap, msgApp(1, 2, 2, nil)})

			got := recs[1].waitReceived(t, 3)
			if got[0].Index != 1 || got[1].Type != raftpb.MsgSnap || got[2].Index != 2 {
				t.Fatalf("got %s #%d, %s, %s #%d; want MsgApp #1, MsgSnap, MsgApp #2",
					got[0].Type, got[0].Index, got[1].Type, got[2].Type, got[2].Index)
			}
			gs := got[1].Snapshot
			if !bytes.Equal(gs.Data, data) {
				t.Errorf("got snapshot data of %d bytes differing from the %d sent", len(gs.Data), len(data))
			}
			if gs.Metadata.Index != 77 || len(gs.Metadata.ConfState.Voters) != 2 {
				t.Errorf("got metadata %+v, want index 77 and voters [1 2]", gs.Metadata)
			}
			recs[0].waitFor(t, "snapshot status", func(r *recorder) bool { return len(r.snapshots) > 0 })
			if got, want := recs[0].snapshots, []snapshotStatus{{peer: 2, ok: true}}; len(got) != 1 || got[0] != want[0] {
				t.Errorf("got snapshot statuses %v, want %v", got, want)
			}
		})
	}
}

// TestDeadPeerDoesNotBlockLivePeer sends to a live peer and to a dead one in
// step: every round must reach the live peer while the dead peer's queue
// stays capped and the excess is counted and reported.
func TestDeadPeerDoesNotBlockLivePeer(t *testing.T) {
	const queueMax, rounds, perRound = 64, 20, 32
	tests := []struct {
		name string
		dead func(t *testing.T) string // returns the dead peer's address
	}{
		{"refused", reserveAddr},
		{"stalled", stalledListener}, // accepts but never reads: writes block
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := make([]byte, 64<<10)
			trs, recs := startCluster(t, 2, func(c *Config) { c.QueueMax = queueMax })
			const deadID = 9
			trs[0].AddPeer(deadID, tt.dead(t))
			for round := range rounds {
				var msgs []raftpb.Message
				for k := range perRound {
					index := uint64(round*perRound + k + 1)
					msgs = append(msgs, msgApp(1, 2, index, payload), msgApp(1, deadID, index, payload))
				}
				trs[0].Send(msgs)
				recs[1].waitReceived(t, (round+1)*perRound)
			}
			s := trs[0].Stats()[deadID]
			if s.Queued > queueMax {
				t.Errorf("got %d queued for the dead peer, want at most %d", s.Queued, queueMax)
			}
			if s.Dropped == 0 {
				t.Errorf("got 0 dropped for the dead peer, want some of the %d sent", rounds*perRound)
			}
			if _, got, _ := recs[0].count(); got == 0 {
				t.Errorf("got %d Unreachable reports for the dead peer, want some", got)
			}
			if live := trs[0].Stats()[2]; live.Dropped != 0 {
				t.Errorf("got %d dropped for the live peer, want 0", live.Dropped)
			}
		})
	}
}

// stalledListener returns the address of a listener that never accepts: the
// kernel completes the handshake and buffers what arrives until it is full.
func stalledListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func TestLatePeerReceivesAfterReconnect(t *testing.T) {
	addr := reserveAddr(t)
	a, ra := start(t, testConfig(t, 1))
	a.AddPeer(2, addr)
	a.Send([]raftpb.Message{msgApp(1, 2, 1, nil), msgApp(1, 2, 2, nil), msgApp(1, 2, 3, nil)})
	ra.waitFor(t, "Unreachable(2) while peer 2 is down", func(r *recorder) bool { return r.unreachable[2] > 0 })

	cfg := testConfig(t, 2)
	cfg.Listen = addr
	b, rb := start(t, cfg)
	got := rb.waitReceived(t, 3)
	for i, m := range got {
		if m.Index != uint64(i+1) {
			t.Errorf("message %d: got index %d, want %d", i, m.Index, i+1)
		}
	}

	// Restart peer 2 on the same address: the old connection dies and the
	// writer must redial. Messages in flight at the crash may be lost, as on
	// a real crash, so keep sending (as raft would) until one arrives.
	if err := b.Close(); err != nil {
		t.Fatalf("close peer 2: %v", err)
	}
	_, rb2 := start(t, cfg)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	for index := uint64(100); ; index++ {
		a.Send([]raftpb.Message{msgApp(1, 2, index, nil)})
		if n, _, _ := rb2.count(); n > 0 {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("restarted peer got nothing within %v", waitTimeout)
		}
	}
	if s := a.Stats()[2]; !s.Connected {
		t.Errorf("got connected %v after the restarted peer received, want true", s.Connected)
	}
}

func TestMembershipChanges(t *testing.T) {
	trs, recs := startCluster(t, 2, nil)
	a := trs[0]
	a.AddPeer(2, reserveAddr(t)) // point at nothing: messages wait in the queue
	a.Send([]raftpb.Message{msgApp(1, 2, 1, nil)})
	recs[0].waitFor(t, "Unreachable(2) at the wrong address", func(r *recorder) bool { return r.unreachable[2] > 0 })
	if got, _, _ := recs[1].count(); got != 0 {
		t.Fatalf("got %d messages at the real peer before redirect, want 0", got)
	}

	a.AddPeer(2, trs[1].Addr())
	if got := recs[1].waitReceived(t, 1); got[0].Index != 1 {
		t.Errorf("got index %d after redirect, want 1", got[0].Index)
	}

	a.RemovePeer(2)
	recs[0].mu.Lock()
	before := recs[0].unreachable[2]
	recs[0].mu.Unlock()
	a.Send([]raftpb.Message{msgApp(1, 2, 2, nil), {Type: raftpb.MsgSnap, From: 1, To: 2, Snapshot: &raftpb.Snapshot{}}})
	recs[0].mu.Lock()
	defer recs[0].mu.Unlock()
	if got := recs[0].unreachable[2] - before; got != 2 {
		t.Errorf("got %d Unreachable reports for a removed peer, want 2", got)
	}
	if got, want := recs[0].snapshots, []snapshotStatus{{2, false}}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("got snapshot statuses %v, want %v", got, want)
	}
	if _, ok := a.Stats()[2]; ok {
		t.Errorf("got stats for removed peer 2, want none")
	}
}

func TestBadFrameClosesOnlyItsConnection(t *testing.T) {
	const snapshotBytesMax = 1 << 20
	logs := newLogSink(t)
	trs, recs := startCluster(t, 2, func(c *Config) {
		c.FrameBytesMax = 64 << 10
		c.SnapshotBytesMax = snapshotBytesMax
		if c.ID == 2 {
			c.Logf = logs.logf
		}
	})
	a, b := trs[0], trs[1]
	helloTo2 := frameBytes(t, hello{version: protocolVersion, from: 7, to: 2}.encode(), nil)
	badCRC := bytes.Clone(helloTo2)
	badCRC[5] ^= 0xff
	tests := []struct {
		name   string
		raw    []byte
		reason string
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: aspen\r\n\r\n"), "exceeds limit"},
		{"bad checksum", badCRC, "checksum"},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, "exceeds limit"},
		{"unknown version", frameBytes(t, hello{version: 99, from: 7, to: 2}.encode(), nil), "protocol version 99"},
		{"wrong node", frameBytes(t, hello{version: protocolVersion, from: 7, to: 3}.encode(), nil), "addressed node 3"},
		{"message before hello", frameBytes(t, messageHead, nil), "want hello"},
		{"unknown frame type", cat(helloTo2, frameBytes(t, []byte{42}, nil)), "unknown frame type 42"},
		{"oversized frame", cat(helloTo2, frameBytes(t, messageHead, make([]byte, 64<<10))), "exceeds limit"},
		{"undecodable message", cat(helloTo2, frameBytes(t, messageHead, []byte{0xff, 0xff})), "unmarshal"},
		{"chunked message too large", cat(helloTo2,
			chunkFrame(t, chunk{id: 1, total: snapshotBytesMax + 1, data: []byte("x")})), "exceeds limit"},
		{"chunk gap", cat(helloTo2,
			chunkFrame(t, chunk{id: 1, total: 100, data: make([]byte, 10)}),
			chunkFrame(t, chunk{id: 1, total: 100, offset: 50, data: make([]byte, 10)})), "want 10"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := logs.len()
			conn, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			if _, err := conn.Write(tt.raw); err != nil {
				t.Fatalf("write: %v", err)
			}
			expectClosed(t, conn)
			logs.waitFor(t, from, tt.reason)

			// The established connection from node 1 still delivers.
			index := uint64(i + 1)
			a.Send([]raftpb.Message{msgApp(1, 2, index, nil)})
			got := recs[1].waitReceived(t, i+1)
			if last := got[len(got)-1]; last.Index != index || last.From != 1 {
				t.Errorf("got message %d from %d, want %d from 1", last.Index, last.From, index)
			}
		})
	}
	if s := a.Stats()[2]; !s.Connected || s.LastError != "" || s.Dropped != 0 {
		t.Errorf("got node 1 -> 2 stats %+v, want connected throughout with no error or drop", s)
	}
}

func cat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

// expectClosed waits for the remote end to close conn.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatalf("set deadline: %v", err)
	}
	var b [1]byte
	n, err := conn.Read(b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", waitTimeout)
	}
	if err == nil {
		t.Fatalf("got %d bytes from the transport, want the connection closed", n)
	}
}

func TestSendToUnknownPeerReportsUnreachable(t *testing.T) {
	a, ra := start(t, testConfig(t, 1))
	a.Send([]raftpb.Message{msgApp(1, 5, 1, nil), {Type: raftpb.MsgSnap, From: 1, To: 5, Snapshot: &raftpb.Snapshot{}}})
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if got := ra.unreachable[5]; got != 2 {
		t.Errorf("got %d Unreachable(5), want 2", got)
	}
	if got, want := ra.snapshots, []snapshotStatus{{5, false}}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("got snapshot statuses %v, want %v", got, want)
	}
}

// TestCloseStopsEveryGoroutine closes transports in every state a goroutine
// can be in: streaming, idle, backing off from a refused peer, blocked writing
// to a stalled one, and waiting for a hello that never comes.
func TestCloseStopsEveryGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	trs, recs := startCluster(t, 3, func(c *Config) { c.DialTimeout = waitTimeout })
	trs[0].AddPeer(8, reserveAddr(t))
	trs[0].AddPeer(9, stalledListener(t))
	silent, err := net.Dial("tcp", trs[1].Addr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer silent.Close()
	big := make([]byte, 1<<20)
	var msgs []raftpb.Message
	for i := range uint64(16) {
		msgs = append(msgs, msgApp(1, 2, i+1, nil), msgApp(1, 3, i+1, nil), msgApp(1, 8, i+1, nil), msgApp(1, 9, i+1, big))
	}
	trs[0].Send(msgs)
	recs[1].waitReceived(t, 16)
	recs[2].waitReceived(t, 16)
	eventually(t, "a dial to the refused peer failing", func() bool { return trs[0].Stats()[8].LastError != "" })

	for i, tr := range trs {
		if err := tr.Close(); err != nil {
			t.Errorf("close %d: got %v, want nil", i+1, err)
		}
		if err := tr.Close(); err != nil {
			t.Errorf("second close %d: got %v, want nil", i+1, err)
		}
	}
	r0, u0, s0 := recs[0].count()
	trs[0].Send(msgs)
	if r, u, s := recs[0].count(); r != r0 || u != u0 || s != s0 {
		t.Errorf("Send after Close reported (%d, %d, %d), want (%d, %d, %d)", r, u, s, r0, u0, s0)
	}

	// Close has waited for its goroutines; the runtime may still be
	// retiring them, so allow it a bounded while.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("got %d goroutines after Close, want at most %d:\n%s",
				runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"zero id", Config{Listen: "127.0.0.1:0"}},
		{"tiny frames", Config{ID: 1, Listen: "127.0.0.1:0", FrameBytesMax: 100}},
		{"snapshot below frame", Config{ID: 1, Listen: "127.0.0.1:0", FrameBytesMax: 1 << 20, SnapshotBytesMax: 1 << 10}},
		{"backoff inverted", Config{ID: 1, Listen: "127.0.0.1:0", BackoffMin: time.Second, BackoffMax: time.Millisecond}},
		{"bad listen", Config{ID: 1, Listen: "127.0.0.1:notaport"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := New(tt.cfg, newRecorder())
			if err == nil {
				tr.Close()
				t.Fatalf("got nil error, want one")
			}
		})
	}
}

// TestUndeliverableSnapshotsFail checks that raft hears of every snapshot the
// transport gives up on, since raft waits for that report before retrying.
func TestUndeliverableSnapshotsFail(t *testing.T) {
	snap := func(dataBytes int) raftpb.Message {
		return raftpb.Message{Type: raftpb.MsgSnap, From: 1, To: 2, Snapshot: &raftpb.Snapshot{Data: make([]byte, dataBytes)}}
	}
	t.Run("larger than SnapshotBytesMax", func(t *testing.T) {
		trs, recs := startCluster(t, 2, func(c *Config) {
			c.FrameBytesMax = 64 << 10
			c.SnapshotBytesMax = 1 << 20
		})
		trs[0].Send([]raftpb.Message{snap(2 << 20), msgApp(1, 2, 1, nil)})
		if got := recs[1].waitReceived(t, 1); got[0].Type != raftpb.MsgApp {
			t.Errorf("got %s, want the MsgApp behind the oversized snapshot", got[0].Type)
		}
		recs[0].waitFor(t, "SnapshotStatus(2, false)", func(r *recorder) bool {
			return len(r.snapshots) == 1 && r.snapshots[0] == snapshotStatus{2, false}
		})
		if s := trs[0].Stats()[2]; s.Dropped != 1 || s.Sent != 1 {
			t.Errorf("got dropped %d sent %d, want 1 and 1", s.Dropped, s.Sent)
		}
	})
	t.Run("peer unreachable", func(t *testing.T) {
		a, ra := start(t, testConfig(t, 1))
		a.AddPeer(2, reserveAddr(t))
		a.Send([]raftpb.Message{msgApp(1, 2, 1, nil), snap(1 << 10)})
		ra.waitFor(t, "SnapshotStatus(2, false)", func(r *recorder) bool {
			return len(r.snapshots) == 1 && r.snapshots[0] == snapshotStatus{2, false}
		})
		if s := a.Stats()[2]; s.Queued != 1 || s.Dropped != 1 {
			t.Errorf("got queued %d dropped %d, want the MsgApp kept and the snapshot dropped", s.Queued, s.Dropped)
		}
	})
}
