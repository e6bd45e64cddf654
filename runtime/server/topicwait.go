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
// query is sent. A competing fetch waits here too, with a test of its own
// (until) that the loop runs against the groups module.
type topicReaders struct {
	mu    sync.Mutex
	waits map[*topicWait]struct{}
	count atomic.Int64 // len(waits), for the loop to skip the lock when none wait
}

// topicWait is one waiting read, or a competing fetch's wait (until).
type topicWait struct {
	topic     string
	partition int
	offset    uint64 // woken once the partition holds this offset
	// until, when set, says instead whether the wait is over; the loop
	// calls it (in wake), so it may read the replica's state.
	until func() bool
	ready chan struct{} // closed by wake
}

func newTopicReaders() *topicReaders {
	return &topicReaders{waits: map[*topicWait]struct{}{}}
}

// add registers a wait for partition p of topic to hold offset; it returns
// false when topicReadersMax reads wait already.
func (r *topicReaders) add(topic string, p int, offset uint64) (*topicWait, bool) {
	return r.register(&topicWait{topic: topic, partition: p, offset: offset})
}

// addUntil registers a wait that is over when until, called by the loop
// after a round that applied entries, says so; it returns false when
// topicReadersMax wait already.
func (r *topicReaders) addUntil(until func() bool) (*topicWait, bool) {
	return r.register(&topicWait{until: until})
}

func (r *topicReaders) register(w *topicWait) (*topicWait, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waits) >= topicReadersMax {
		return nil, false
	}
	w.ready = make(chan struct{})
	r.waits[w] = struct{}{}
	r.count.Store(int64(len(r.waits)))
	return w, true
}

// remove forgets w, woken or not (nil: none).
func (r *topicReaders) remove(w *topicWait) {
	if w == nil {
		return
	}
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
		if !w.over(log) {
			continue
		}
		close(w.ready)
		delete(r.waits, w)
	}
	r.count.Store(int64(len(r.waits)))
}

// over reports whether w's partition holds its offset, or is gone, or
// w's own until says so.
func (w *topicWait) over(log topics.Log) bool {
	if w.until != nil {
		return w.until()
	}
	n, ok := log.Partitions(w.topic)
	if !ok || w.partition >= n {
		return true
	}
	_, end := log.Bounds(w.topic, w.partition)
	return end > w.offset
}
