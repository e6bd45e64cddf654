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
)

var evNames = [...]string{evTick: "tick", evDeliver: "deliver", evReadyDone: "ready-done", evToNode: "request",
	evToClient: "response", evAttemptTimeout: "attempt-timeout", evClientNext: "client-next", evNemesis: "nemesis",
	evRestart: "restart", evUnpause: "unpause", evPartitionEnd: "partition-end", evHeal: "heal",
	evStopClients: "stop-clients", evEnd: "end", evAdmin: "admin"}

// event is one thing that happens at a virtual instant. Events at the same
// instant run in the order they were scheduled (seq), which keeps runs replayable.
type event struct {
	at     int64
	seq    uint64
	kind   evKind
	node   int    // node index, or -1
	inc    uint64 // node incarnation the event belongs to
	from   int    // sending node index for messages
	snap   bool   // the message is a snapshot (its sender wants to hear whether it arrived)
	msg    []byte // marshalled raft message
	req    node.Request
	resp   node.Response
	client int
	n      int // attempt number, partition epoch, ...
}

// queue is a binary min-heap of events by (at, seq), kept by value to spare
// the garbage collector.
type queue struct {
	items []event
	seq   uint64
}

func (q *queue) less(i, j int) bool {
	a, b := &q.items[i], &q.items[j]
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

func (q *queue) push(e event) {
	q.seq++
	e.seq = q.seq
	q.items = append(q.items, e)
	i := len(q.items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q.items[i], q.items[p] = q.items[p], q.items[i]
		i = p
	}
}

func (q *queue) pop() event {
	top := q.items[0]
	last := len(q.items) - 1
	q.items[0] = q.items[last]
	q.items[last] = event{}
	q.items = q.items[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && q.less(l, m) {
			m = l
		}
		if r < last && q.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		q.items[i], q.items[m] = q.items[m], q.items[i]
		i = m
	}
	return top
}

func (q *queue) len() int { return len(q.items) }
