package transport

import (
	"sync"

	"go.etcd.io/raft/v3/raftpb"
)

// queue holds the messages waiting for one peer's writer. It is bounded so
// that a dead or slow peer costs at most max messages here (plus the batch its
// writer has taken), and push never waits so Send never blocks.
type queue struct {
	mu    sync.Mutex
	msgs  []raftpb.Message
	max   int
	ready chan struct{} // holds a token whenever msgs may be non-empty
}

func newQueue(max int) *queue {
	return &queue{max: max, ready: make(chan struct{}, 1)}
}

// push appends m, or reports false if the queue is full.
func (q *queue) push(m raftpb.Message) bool {
	q.mu.Lock()
	full := len(q.msgs) >= q.max
	if !full {
		q.msgs = append(q.msgs, m)
	}
	q.mu.Unlock()
	if full {
		return false
	}
	select {
	case q.ready <- struct{}{}:
	default: // a token is already waiting
	}
	return true
}

// swap takes every queued message and leaves spare (emptied) in their place,
// so the writer and Send trade two slices instead of allocating.
func (q *queue) swap(spare []raftpb.Message) []raftpb.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	msgs := q.msgs
	q.msgs = spare[:0]
	return msgs
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

// takeSnapshots removes and returns the queued MsgSnaps, keeping the order of
// the rest: a snapshot is the one message too large to hold for a peer that
// cannot be reached.
func (q *queue) takeSnapshots() []raftpb.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	var snaps []raftpb.Message
	kept := q.msgs[:0]
	for _, m := range q.msgs {
		if m.Type == raftpb.MsgSnap {
			snaps = append(snaps, m)
		} else {
			kept = append(kept, m)
		}
	}
	clear(q.msgs[len(kept):]) // drop references to the removed messages
	q.msgs = kept
	return snaps
}
