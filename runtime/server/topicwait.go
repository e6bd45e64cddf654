package server

import (
	"sync"
	"sync/atomic"

	"github.com/aspen-db/aspen/core/topics"
)

// topicReaders holds the long-polling topic reads (WaitMs) that found no
// message yet: each waits for its partition's end to pass the offset it
// reads from. The loop wakes them after a round that applied entries, from
// the replica's own topic table, so a waiting read costs nothing until its
// partition moves (no polling), and a message applied between a read's
// query and its wait still wakes it: the wait is registered before the
// query is sent.
type topicReaders struct {
	mu    sync.Mutex
	waits map[*topicWait]struct{}
	count atomic.Int64 // len(waits), for the loop to skip the lock when none wait
}

// topicWait is one waiting read.
type topicWait struct {
	topic     string
	partition int
	offset    uint64        // woken once the partition holds this offset
	ready     chan struct{} // closed by wake
}

func newTopicReaders() *topicReaders {
	return &topicReaders{waits: map[*topicWait]struct{}{}}
}

// add registers a wait for partition p of topic to hold offset; it returns
// false when topicReadersMax reads wait already.
func (r *topicReaders) add(topic string, p int, offset uint64) (*topicWait, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waits) >= topicReadersMax {
		return nil, false
	}
	w := &topicWait{topic: topic, partition: p, offset: offset, ready: make(chan struct{})}
	r.waits[w] = struct{}{}
	r.count.Store(int64(len(r.waits)))
	return w, true
}

// remove forgets w, woken or not.
func (r *topicReaders) remove(w *topicWait) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.waits, w)
	r.count.Store(int64(len(r.waits)))
}

// wake closes the wait of every read whose partition now holds its offset,
// or whose topic or partition is gone (its next query answers why). Only
// the loop may call it: log is the replica's table.
func (r *topicReaders) wake(log topics.Log) {
	if r.count.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for w := range r.waits {
		n, ok := log.Partitions(w.topic)
		if ok && w.partition < n {
			if _, end := log.Bounds(w.topic, w.partition); end <= w.offset {
				continue
			}
		}
		close(w.ready)
		delete(r.waits, w)
	}
	r.count.Store(int64(len(r.waits)))
}
