package sim

import (
	"github.com/aspen-db/aspen/core/node"
)

type evKind uint8

const (
	evTick evKind = iota + 1
	evDeliver
	evReadyDone
	evToNode
	evToClient
	evAttemptTimeout
	evClientNext
	evNemesis
	evRestart
	evUnpause
	evPartitionEnd
	evHeal
	evStopClients
	evEnd
	evAdmin
	evHolder // a lease holder's timer (leases.go)
	evJobs   // a jobs client's timer (jobs.go)
	evTopics // a topics client's timer (topics.go)
	evLocks  // a lock client's timer (locks.go)
	evRound  // a node's loop round ends: it runs its Ready (nodes.go, endInput)
)

// forNode says whether the event is an input to a node (nodeEvent's).
func (k evKind) forNode() bool {
	return k == evTick || k == evDeliver || k == evReadyDone || k == evToNode || k == evRound
}

var evNames = [...]string{evTick: "tick", evDeliver: "deliver", evReadyDone: "ready-done", evToNode: "request",
	evToClient: "response", evAttemptTimeout: "attempt-timeout", evClientNext: "client-next", evNemesis: "nemesis",
	evRestart: "restart", evUnpause: "unpause", evPartitionEnd: "partition-end", evHeal: "heal",
	evStopClients: "stop-clients", evEnd: "end", evAdmin: "admin", evHolder: "lease-holder", evJobs: "jobs-client", evTopics: "topics-client", evLocks: "lock-client", evRound: "round"}

// event is one thing that happens at a virtual instant. Events at the same
// instant run in the order they were scheduled (seq), which keeps runs replayable.
type event struct {
	at     int64
	seq    uint64
	kind   evKind
	node   int           // node index, or -1
	inc    uint64        // node incarnation the event belongs to
	from   int           // sending node index for messages
	snap   bool          // the message is a snapshot (its sender wants to hear whether it arrived)
	msg    []byte        // marshalled raft message
	req    *node.Request // a client's request (evToNode): by pointer, as the event is copied into and out of the queue
	resp   node.Response
	client int
	n      int // attempt number, partition epoch, ...
}

// queue is a binary min-heap of events by (at, seq). The heap holds small
// pointer-free keys; the events themselves sit in a slab with a free list, so
// sifting moves 24 bytes without write barriers and nothing is allocated per
// event once the slab has grown. pop hands the event out in place, not as a
// copy (copying a 360-byte event out, clearing it and copying it again into
// each handler was 5% of a run).
type queue struct {
	keys []qkey
	slab []event
	free []int32
	seq  uint64
	held int32 // slot of the event pop handed out last, +1 (0: none)
}

type qkey struct {
	at   int64
	seq  uint64
	slot int32
}

func (a qkey) less(b qkey) bool { return a.at < b.at || (a.at == b.at && a.seq < b.seq) }

func (q *queue) push(e event) {
	q.seq++
	e.seq = q.seq
	var slot int32
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
		q.slab[slot] = e
	} else {
		slot = int32(len(q.slab))
		q.slab = append(q.slab, e)
	}
	q.keys = append(q.keys, qkey{at: e.at, seq: e.seq, slot: slot})
	i := len(q.keys) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.keys[i].less(q.keys[p]) {
			break
		}
		q.keys[i], q.keys[p] = q.keys[p], q.keys[i]
		i = p
	}
}

// pop removes the earliest event and returns it in its slot. The event stays
// valid, and its slot taken, until the next pop: handlers may schedule events
// meanwhile (a slab that grows leaves the old copy readable).
func (q *queue) pop() *event {
	q.release()
	top := q.keys[0]
	last := len(q.keys) - 1
	q.keys[0] = q.keys[last]
	q.keys = q.keys[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && q.keys[l].less(q.keys[m]) {
			m = l
		}
		if r < last && q.keys[r].less(q.keys[m]) {
			m = r
		}
		if m == i {
			break
		}
		q.keys[i], q.keys[m] = q.keys[m], q.keys[i]
		i = m
	}
	q.held = top.slot + 1
	return &q.slab[top.slot]
}

// release frees the slot of the event pop handed out last. The slot is not
// cleared: the next push overwrites it (free slots are reused last freed
// first), and clearing it with write barriers on cost more than what a
// free slot keeps alive for a while.
func (q *queue) release() {
	if q.held == 0 {
		return
	}
	q.free = append(q.free, q.held-1)
	q.held = 0
}

func (q *queue) len() int { return len(q.keys) }
