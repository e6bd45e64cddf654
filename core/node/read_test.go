package node

import (
	"encoding/binary"
	"testing"

	"go.etcd.io/raft/v3"
)

// A ReadIndex answer to a context from an earlier incarnation must not release
// a read of this one, even when the counters match.
func TestReadIndexAnswerFromEarlierIncarnationIgnored(t *testing.T) {
	n := &Node{readEpoch: 7}
	r := &pendingRead{ctx: 1}
	n.reads = []*pendingRead{r}
	stale := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 6), 1)
	n.readIndexArrived(raft.ReadState{Index: 3, RequestCtx: stale})
	if r.ready {
		t.Fatal("a read was released by another incarnation's ReadIndex answer")
	}
	n.readIndexArrived(raft.ReadState{Index: 9, RequestCtx: n.readContext(1)})
	if !r.ready || r.index != 9 {
		t.Fatalf("got ready=%v index=%d, want ready at 9", r.ready, r.index)
	}
}
