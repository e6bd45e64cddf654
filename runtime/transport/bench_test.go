package transport

import (
	"sync/atomic"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// counter is a Handler that counts arrivals and wakes the sender.
type counter struct {
	received atomic.Int64
	progress chan struct{}
}

func (c *counter) Receive(raftpb.Message) {
	c.received.Add(1)
	select {
	case c.progress <- struct{}{}:
	default:
	}
}
func (c *counter) Unreachable(uint64)          {}
func (c *counter) SnapshotStatus(uint64, bool) {}

// BenchmarkSendMsgApp1KiB streams MsgApps carrying a 1 KiB entry from one
// transport to another over loopback. The sender keeps at most half a queue
// in flight, so nothing is dropped and every message is counted on arrival.
func BenchmarkSendMsgApp1KiB(b *testing.B) {
	const queueMax, batch = 4096, 64
	recv := &counter{progress: make(chan struct{}, 1)}
	cfgB := Config{ID: 2, Listen: "127.0.0.1:0", QueueMax: queueMax, Logf: b.Logf}
	tb, err := New(cfgB, recv)
	if err != nil {
		b.Fatalf("new receiver: %v", err)
	}
	defer tb.Close()
	cfgA := Config{ID: 1, Listen: "127.0.0.1:0", QueueMax: queueMax, Peers: map[uint64]string{2: tb.Addr()}, Logf: b.Logf}
	ta, err := New(cfgA, &counter{progress: make(chan struct{}, 1)})
	if err != nil {
		b.Fatalf("new sender: %v", err)
	}
	defer ta.Close()

	payload := make([]byte, 1<<10)
	msgs := make([]raftpb.Message, batch)
	for i := range msgs {
		msgs[i] = msgApp(1, 2, uint64(i+1), payload)
	}
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		if sent-int(recv.received.Load()) > queueMax/2 {
			<-recv.progress
			continue
		}
		n := min(batch, b.N-sent)
		ta.Send(msgs[:n])
		sent += n
	}
	for recv.received.Load() < int64(b.N) {
		<-recv.progress
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if d := ta.Stats()[2].Dropped; d != 0 {
		b.Fatalf("got %d dropped, want 0", d)
	}
}
