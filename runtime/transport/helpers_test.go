package transport

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// waitTimeout bounds every wait in these tests; on a healthy machine each
// condition holds within milliseconds.
const waitTimeout = 10 * time.Second

// recorder is a Handler that keeps everything it is told and wakes waiters.
type recorder struct {
	mu          sync.Mutex
	received    []raftpb.Message
	unreachable map[uint64]int
	snapshots   []snapshotStatus
	changed     chan struct{} // holds a token after any change
}

type snapshotStatus struct {
	peer uint64
	ok   bool
}

func newRecorder() *recorder {
	return &recorder{unreachable: make(map[uint64]int), changed: make(chan struct{}, 1)}
}

func (r *recorder) Receive(m raftpb.Message) {
	r.mu.Lock()
	r.received = append(r.received, m)
	r.mu.Unlock()
	r.notify()
}

func (r *recorder) Unreachable(peer uint64) {
	r.mu.Lock()
	r.unreachable[peer]++
	r.mu.Unlock()
	r.notify()
}

func (r *recorder) SnapshotStatus(peer uint64, ok bool) {
	r.mu.Lock()
	r.snapshots = append(r.snapshots, snapshotStatus{peer, ok})
	r.mu.Unlock()
	r.notify()
}

func (r *recorder) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// waitFor blocks until cond, called with r locked, holds.
func (r *recorder) waitFor(t *testing.T, what string, cond func(r *recorder) bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond(r)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
	}
}

// waitReceived waits until n messages have arrived and returns them.
func (r *recorder) waitReceived(t *testing.T, n int) []raftpb.Message {
	t.Helper()
	r.waitFor(t, "messages", func(r *recorder) bool { return len(r.received) >= n })
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]raftpb.Message(nil), r.received...)
}

func (r *recorder) count() (received, unreachable, snapshots int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.unreachable {
		unreachable += n
	}
	return len(r.received), unreachable, len(r.snapshots)
}

// eventually polls cond, for state (such as Stats) that signals no change.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		<-tick.C
	}
}

// logSink collects a transport's log lines so tests can wait for a reason.
type logSink struct {
	t       *testing.T
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

func newLogSink(t *testing.T) *logSink {
	return &logSink{t: t, changed: make(chan struct{}, 1)}
}

func (s *logSink) logf(format string, args ...any) {
	s.t.Logf(format, args...)
	s.mu.Lock()
	s.lines = append(s.lines, fmt.Sprintf(format, args...))
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// waitFor waits for a line containing substr logged after line from.
func (s *logSink) waitFor(t *testing.T, from int, substr string) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		lines := s.lines[min(from, len(s.lines)):]
		found := false
		for _, l := range lines {
			found = found || strings.Contains(l, substr)
		}
		s.mu.Unlock()
		if found {
			return
		}
		select {
		case <-s.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for a log line containing %q; got %q", substr, lines)
		}
	}
}

func (s *logSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// testConfig is a config for node id with quick retries and logs to t.
func testConfig(t *testing.T, id uint64) Config {
	return Config{
		ID:         id,
		Listen:     "127.0.0.1:0",
		BackoffMin: 5 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond,
		Logf:       t.Logf,
	}
}

// start starts a transport and closes it when the test ends.
func start(t *testing.T, cfg Config) (*Transport, *recorder) {
	t.Helper()
	r := newRecorder()
	tr, err := New(cfg, r)
	if err != nil {
		t.Fatalf("New(%d): %v", cfg.ID, err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, r
}

// startCluster starts n transports with ids 1..n that know each other.
func startCluster(t *testing.T, n int, tweak func(*Config)) ([]*Transport, []*recorder) {
	t.Helper()
	trs := make([]*Transport, n)
	recs := make([]*recorder, n)
	for i := range n {
		cfg := testConfig(t, uint64(i+1))
		if tweak != nil {
			tweak(&cfg)
		}
		trs[i], recs[i] = start(t, cfg)
	}
	for _, a := range trs {
		for j, b := range trs {
			a.AddPeer(uint64(j+1), b.Addr())
		}
	}
	return trs, recs
}

// msgApp is a MsgApp carrying one entry of payload, numbered by index so
// tests can check order.
func msgApp(from, to, index uint64, payload []byte) raftpb.Message {
	return raftpb.Message{
		Type: raftpb.MsgApp, From: from, To: to, Term: 1, Index: index,
		Entries: []raftpb.Entry{{Term: 1, Index: index, Data: payload}},
	}
}

// reserveAddr returns a loopback address nothing listens on (until a test
// listens there itself).
func reserveAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// frameBytes encodes one frame as a peer would write it.
func frameBytes(t *testing.T, head, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	fw := &frameWriter{w: w}
	if err := fw.write(head, body); err != nil {
		t.Fatalf("write frame: %v", err)
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("flush frame: %v", err)
	}
	return buf.Bytes()
}

func chunkFrame(t *testing.T, c chunk) []byte {
	t.Helper()
	var head [chunkHeaderBytes]byte
	encodeChunkHeader(&head, c)
	return frameBytes(t, head[:], c.data)
}
