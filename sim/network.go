package sim

import (
	"github.com/aspen-db/aspen/core/node"
	"go.etcd.io/raft/v3/raftpb"
)

// network decides the fate of every message: dropped, delayed, reordered (by
// an extra random delay), duplicated, or cut off by a partition.
type network struct {
	spec    NetworkSpec
	blocked [][]bool // blocked[from][to]

	// A partition that strands clients puts each client (the operator is the
	// last) on one side; a client then reaches only the nodes on its side.
	strands    bool
	nodeSide   []bool
	clientSide []bool

	wire []byte // the chunk marshalled messages are cut from (marshal)
}

// Marshalled messages are cut from shared chunks rather than allocated one
// by one (a message was 7% of a run's allocations): a chunk is freed once
// every message cut from it is delivered or dropped. Larger messages
// (snapshots, long appends) get their own.
const (
	wireChunkBytes  = 32 << 10
	wireOwnBytesMin = wireChunkBytes / 8
)

// marshal encodes m into bytes nothing else writes to.
func (n *network) marshal(m *raftpb.Message) []byte {
	size := m.Size()
	var b []byte
	if size >= wireOwnBytesMin {
		b = make([]byte, size)
	} else {
		if len(n.wire)+size > cap(n.wire) {
			n.wire = make([]byte, 0, wireChunkBytes)
		}
		end := len(n.wire) + size
		b = n.wire[len(n.wire):end:end]
		n.wire = n.wire[:end]
	}
	if _, err := m.MarshalToSizedBuffer(b); err != nil {
		panic("sim: marshal: " + err.Error())
	}
	return b
}

func newNetwork(nodes int, spec NetworkSpec) network {
	b := make([][]bool, nodes)
	for i := range b {
		b[i] = make([]bool, nodes)
	}
	return network{spec: spec, blocked: b}
}

func (n *network) heal() {
	for i := range n.blocked {
		clear(n.blocked[i])
	}
	n.strands = false
}

// cutOff says whether client (by index) and node are on different sides of
// a partition that strands clients.
func (n *network) cutOff(client, node int) bool {
	return n.strands && client >= 0 && client < len(n.clientSide) && node < len(n.nodeSide) && n.clientSide[client] != n.nodeSide[node]
}

// delay draws a message's flight time, or ok=false when the message is lost.
func (w *World) flight() (delay int64, ok bool) {
	s := w.net.spec
	if s.DropProb > 0 && w.rng.Float64() < s.DropProb {
		return 0, false
	}
	d := w.uniform(s.DelayMinMs, s.DelayMaxMs)
	if s.ReorderProb > 0 && w.rng.Float64() < s.ReorderProb {
		d += w.uniform(0, s.ReorderDelayMs)
	}
	return millis(d), true
}

func (w *World) duplicated() bool {
	return w.net.spec.DuplicateProb > 0 && w.rng.Float64() < w.net.spec.DuplicateProb
}

// send puts a raft message on the wire. It is marshalled here: the bytes are
// the copy the receiver gets (no aliasing between replicas) and what the trace
// hashes.
func (w *World) send(from *simNode, m *raftpb.Message) {
	to := int(m.To) - 1
	if to < 0 || to >= len(w.nodes) {
		w.check.fail("node %d sent a message to unknown node %d", from.id, m.To)
		return
	}
	w.res.Messages++
	if m.Type == raftpb.MsgVoteResp && !m.Reject && on(w.sc.Checkers.Invariants) {
		w.check.vote(from.id, m.Term, m.To)
	}
	data := w.net.marshal(m)
	isSnap := m.Type == raftpb.MsgSnap
	copies := 1
	if w.duplicated() {
		copies = 2
	}
	for c := 0; c < copies; c++ {
		delay, ok := w.flight()
		if !ok || w.net.blocked[from.idx][to] {
			if isSnap && c == 0 {
				from.n.ReportSnapshot(m.To, false)
			}
			if w.net.blocked[from.idx][to] && c == 0 {
				from.n.ReportUnreachable(m.To) // as the transport does when it cannot connect
			}
			continue
		}
		w.schedule(event{at: w.now + delay, kind: evDeliver, node: to, inc: w.nodes[to].inc, from: from.idx, snap: isSnap && c == 0, msg: data})
	}
}

// clientCount is how many client numbers there are: the KV clients, the
// admin, the lease holders, and the jobs, topics and lock clients.
func (w *World) clientCount() int { return w.lockBase() + len(w.lockClients) }

// toClient sends a response from node idx back to its client.
func (w *World) toClient(from int, resp node.Response) {
	idx := int(resp.Client) - clientIDBase
	if idx < 0 || idx >= w.clientCount() || (idx == len(w.clients) && w.admin == nil) {
		return
	}
	if delay, ok := w.flight(); ok && !w.net.cutOff(idx, from) {
		w.schedule(event{at: w.now + delay, kind: evToClient, node: -1, client: idx, resp: resp})
	}
}

// toNode sends a client request to a node.
func (w *World) toNode(target int, req node.Request) {
	if delay, ok := w.flight(); ok && !w.net.cutOff(int(req.Client)-clientIDBase, target) {
		w.schedule(event{at: w.now + delay, kind: evToNode, node: target, inc: w.nodes[target].inc, req: &req})
	}
}

type marshaler interface{ Marshal() ([]byte, error) }

func mustMarshal(m marshaler) []byte {
	b, err := m.Marshal()
	if err != nil {
		panic("sim: marshal: " + err.Error())
	}
	return b
}

// nemesis injects one fault, chosen by the scenario's weights, then schedules
// its next visit.
func (w *World) nemesis() {
	if !w.faultsOn {
		return
	}
	f := w.sc.Faults
	if kind, ok := w.pickWeighted(f.Partition, f.OneWayPartition, f.Crash, f.Pause); ok {
		w.inject(kind)
	}
	w.schedule(event{at: w.nemesisGap(), kind: evNemesis, node: -1})
}

// pickWeighted draws an index with probability proportional to its weight;
// ok is false when every weight is zero (and nothing is drawn then).
func (w *World) pickWeighted(weights ...float64) (i int, ok bool) {
	total := 0.0
	for _, x := range weights {
		total += x
	}
	if total == 0 {
		return 0, false
	}
	pick := w.rng.Float64() * total
	for i, x := range weights {
		if pick < x {
			return i, true
		}
		pick -= x
	}
	return 0, false // rounding left pick past the last weight: pick nothing
}

func (w *World) nemesisGap() int64 {
	return w.now + int64(w.rng.ExpFloat64()*w.sc.Faults.IntervalMs*1e6)
}

func (w *World) inject(kind int) {
	switch kind {
	case 0, 1:
		w.partition(kind == 1)
	case 2, 3:
		sn := w.pickVictim()
		if sn == nil {
			return
		}
		if kind == 2 {
			w.crash(sn)
		} else {
			w.pause(sn)
		}
	}
}

// partition splits the nodes in two at random; one-way partitions drop only the
// messages from the first side to the second.
func (w *World) partition(oneWay bool) {
	n := len(w.nodes)
	if n < 2 {
		return
	}
	order := w.rng.Perm(n)
	cut := 1 + w.rng.IntN(n-1)
	side := make([]bool, n)
	for _, i := range order[:cut] {
		side[i] = true
	}
	w.net.heal()
	for a := 0; a < n; a++ {
		for b := 0; b < n; b++ {
			if side[a] && !side[b] || (!oneWay && !side[a] && side[b]) {
				w.net.blocked[a][b] = true
			}
		}
	}
	w.partitions++
	w.res.Partitions++
	w.trace.note("partition %d: side %v one-way %v", w.partitions, side, oneWay)
	if w.sc.Faults.StrandClients {
		w.strandClients(side)
	}
	w.schedule(event{at: w.now + w.downTime(), kind: evPartitionEnd, node: -1, n: w.partitions})
}

// strandClients puts every client, and the operator, on a random side of the
// partition: requests and answers between a client and the nodes across the
// cut are lost both ways, one-way partition or not.
func (w *World) strandClients(nodeSide []bool) {
	w.net.strands, w.net.nodeSide = true, nodeSide
	w.net.clientSide = make([]bool, w.clientCount()) // holders, jobs, topics and lock clients: no extra draws without them
	for i := range w.net.clientSide {
		w.net.clientSide[i] = w.rng.IntN(2) == 0
	}
	w.trace.note("clients stranded: side %v", w.net.clientSide)
}

// pickVictim chooses a running node to crash or pause, keeping at most
// CrashesMax nodes down at once.
func (w *World) pickVictim() *simNode {
	if w.nodesDown() >= w.sc.Faults.CrashesMax {
		return nil
	}
	var up []*simNode
	for _, sn := range w.nodes {
		if !sn.gone && sn.n != nil && !sn.paused {
			up = append(up, sn)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[w.rng.IntN(len(up))]
}

// nodesDown counts the members crashed or paused (retired ones do not count).
func (w *World) nodesDown() int {
	down := 0
	for _, sn := range w.nodes {
		if !sn.gone && (sn.n == nil || sn.paused) {
			down++
		}
	}
	return down
}
