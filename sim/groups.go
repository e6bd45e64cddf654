package sim

import (
	"fmt"

	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/core/groups"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/topics"
)

// Consumer group members in the topics workload (`members` in [topics]).
// Once the operator has made the topics it creates two groups (groupShapes):
// a partitioned one on topic0 and a competing one on topic2, both topics
// that keep every message, so every message they ever held must reach the
// group. Each group has `members` members, topics clients of their own
// after the readers, one request in flight each.
//
// A partitioned member joins, heartbeats every third of the session
// timeout (releasing in it the partitions the last answer said are being
// revoked), and otherwise takes its assigned partitions in turn: it learns
// a partition's committed offset by a describe, reads from it through a
// topics query, processes what it read (records it with the checker) and
// only then commits the next offset through the log. With the planted
// `commit_before_process` it commits first and processes when the commit
// is answered, so a crash between the two loses the messages.
//
// A competing member fetches one to three messages, then settles them one
// by one: it processes and acks each, naks some (nak_prob, not processed),
// and never settles a poison message (key k5, published before the faults
// end), which must reach the dead letters after deliveries_max deliveries.
// Every settle's answer goes to the checker.
//
// While the faults run, a member may crash at any step (stop without
// leaving; it comes back under the same id, a new incarnation, with
// nothing remembered), leave and come back, or stall past its session or
// ack wait and then go on from where it was (a zombie: its next commit or
// ack names what it held before). Members keep working through the healed
// phase, after the producers stop, so that the groups drain; they start
// nothing in the last memberQuietNs.

const (
	groupMembersMax = 8
	memberIdleNs    = 100e6 // a member with nothing to do looks again after this
	memberGapNs     = 10e6  // between two steps of a busy member
	memberQuietNs   = 1.5e9 // members start nothing this close to the end
	memberReadMax   = 4     // a partitioned member reads up to this many messages at once
	memberFetchMax  = 3
	poisonKey       = "k5"
)

// groupShapes are the two groups the operator creates.
var groupShapes = []struct {
	name  string
	topic int
	mode  groups.Mode
}{
	{"gpart", 0, groups.Partitioned},
	{"gwork", 2, groups.Competing},
}

func (w *World) groupDef(i int) groups.Def {
	t := &w.sc.Topics
	s := groupShapes[i]
	d := groups.Def{Name: s.name, Topic: topicName(s.topic), Mode: s.mode}
	if s.mode == groups.Partitioned {
		d.SessionNs = millis(t.SessionMs)
	} else {
		d.AckWaitNs, d.DeliveriesMax, d.InFlightMax = millis(t.AckWaitMs), t.DeliveriesMax, memberFetchMax
	}
	return d
}

// memberState is one simulated member: what it believes it holds.
type memberState struct {
	group    int
	id       string
	joined   bool
	gen      uint64
	assigned []int
	revoking []int
	pos      map[int]uint64 // the next offset to read, by partition, once known
	turn     int
	hbAt     int64             // the next heartbeat is due
	read     []topics.Message  // commit_before_process: read, committed, not yet processed
	held     []groups.Delivery // competing: fetched, not yet settled
	empty    bool              // competing: its last fetch leased nothing
}

func (w *World) newMembers(add func(topicRole) *topicActor) {
	for g := range groupShapes {
		for i := 0; i < w.sc.Topics.Members; i++ {
			a := add(roleMember)
			a.mem = &memberState{group: g, id: fmt.Sprintf("%s-m%d", groupShapes[g].name, i), pos: map[int]uint64{}}
			w.wakeTopicActor(a, w.now+topicWaitNs)
		}
	}
}

func (w *World) memberGroup(m *memberState) string { return groupShapes[m.group].name }

// memberStep is a member's next step, or a fault that befalls it.
func (w *World) memberStep(a *topicActor) {
	m := a.mem
	t := &w.sc.Topics
	switch {
	case w.now >= w.end-memberQuietNs:
		return
	case w.topicActors[0].groupsMade < len(groupShapes):
		w.wakeTopicActor(a, w.now+topicWaitNs)
		return
	}
	if w.faultsOn && w.now < w.faultEnd {
		r := w.rng.Float64()
		switch {
		case r < t.MemberCrashProb:
			w.memberCrash(a)
			return
		case r < t.MemberCrashProb+t.MemberLeaveProb && m.joined:
			w.memberSend(a, &topicOp{kind: gLeave, req: node.Request{Call: call(groups.Leave(w.memberGroup(m), m.id))}})
			return
		case r < t.MemberCrashProb+t.MemberLeaveProb+t.MemberStallProb:
			wait := t.SessionMs
			if groupShapes[m.group].mode == groups.Competing {
				wait = t.AckWaitMs
			}
			w.wakeTopicActor(a, w.now+millis(w.uniform(0.3, 2)*wait))
			return
		}
	}
	if groupShapes[m.group].mode == groups.Partitioned {
		w.partitionedStep(a)
	} else {
		w.competingStep(a)
	}
}

// memberCrash stops a member without leaving: everything it held is gone,
// and it comes back as a new incarnation a while later.
func (w *World) memberCrash(a *topicActor) {
	m := a.mem
	*m = memberState{group: m.group, id: m.id, pos: map[int]uint64{}}
	w.res.GroupCrashes++
	w.wakeTopicActor(a, w.now+millis(w.uniform(500, 3000)))
}

func (w *World) partitionedStep(a *topicActor) {
	m := a.mem
	name := w.memberGroup(m)
	topic := groupShapes[m.group].topic
	switch {
	case !m.joined:
		w.memberSend(a, &topicOp{kind: gJoin, req: node.Request{Call: call(groups.Join(name, m.id))}})
		return
	case w.now >= m.hbAt:
		rel := append([]int(nil), m.revoking...)
		w.memberSend(a, &topicOp{kind: gHeartbeat, released: rel, req: node.Request{Call: call(groups.Heartbeat(name, m.id, rel...))}})
		return
	case len(m.assigned) == 0:
		w.wakeTopicActor(a, min(m.hbAt, w.now+memberIdleNs))
		return
	}
	m.turn = (m.turn + 1) % len(m.assigned)
	p := m.assigned[m.turn]
	from, ok := m.pos[p]
	if !ok {
		w.memberSend(a, &topicOp{kind: gDescribe, part: p, req: node.Request{Call: call(groups.Describe(name))}})
		return
	}
	w.memberSend(a, &topicOp{kind: gRead, topic: topic, part: p, from: from, max: memberReadMax,
		req: node.Request{Call: call(topics.Read(topicName(topic), p, from, memberReadMax))}})
}

func (w *World) competingStep(a *topicActor) {
	m := a.mem
	name := w.memberGroup(m)
	if len(m.held) == 0 {
		n := 1 + w.rng.IntN(memberFetchMax)
		if p := w.sc.Topics.FetchCheckProb; p > 0 && m.empty && w.rng.Float64() < p {
			// As the HTTP fetch does: ask first, fetch only when it would
			// lease; the end checks catch a question that says no for ever.
			w.memberSend(a, &topicOp{kind: gFetchable, max: n, req: node.Request{Call: call(groups.FetchableQuery(name, m.id, n))}})
			return
		}
		w.memberSend(a, &topicOp{kind: gFetch, req: node.Request{Call: call(groups.Fetch(name, m.id, n))}})
		return
	}
	if p := w.sc.Topics.SettleBatchProb; p > 0 && len(m.held) > 1 && w.rng.Float64() < p {
		w.settleBatch(a)
		return
	}
	d := m.held[0]
	m.held = m.held[1:]
	if w.poison(d.Message) {
		w.wakeTopicActor(a, w.now+memberGapNs) // never settled: it must go to the dead letters
		return
	}
	it := w.settleOne(m, d)
	w.memberSend(a, &topicOp{kind: gSettle, handle: d.Handle, verb: it.Verb,
		req: node.Request{Call: call(groups.Settle(name, m.id, it.Verb, d.Handle, it.DelayNs))}})
}

// settleOne processes and acks delivery d, or naks it (nak_prob, not processed).
func (w *World) settleOne(m *memberState, d groups.Delivery) groups.SettleItem {
	if w.rng.Float64() < w.sc.Topics.NakProb {
		return groups.SettleItem{Verb: groups.Nak, Handle: d.Handle, DelayNs: millis(w.uniform(0, 200))}
	}
	w.gpc.process(w, m, d.Message)
	return groups.SettleItem{Verb: groups.Ack, Handle: d.Handle}
}

// settleBatch settles everything the member holds in one command, as
// settleOne would one by one; poison messages are left out.
func (w *World) settleBatch(a *topicActor) {
	m := a.mem
	var items []groups.SettleItem
	for _, d := range m.held {
		if !w.poison(d.Message) {
			items = append(items, w.settleOne(m, d))
		}
	}
	m.held = nil
	if len(items) == 0 {
		w.wakeTopicActor(a, w.now+memberGapNs)
		return
	}
	w.memberSend(a, &topicOp{kind: gSettleBatch, items: items,
		req: node.Request{Call: call(groups.SettleBatch(w.memberGroup(m), m.id, items))}})
}

// poison reports whether a competing member never settles msg.
func (w *World) poison(msg topics.Message) bool {
	return string(msg.Key) == poisonKey && w.gpc.publishedBefore(w, msg, w.faultEnd)
}

func (w *World) memberSend(a *topicActor, op *topicOp) {
	op.group = true
	w.topicSend(a, op)
}

// commitBeforeProcess is the planted consumer-side defect.
func (w *World) commitBeforeProcess() bool { return w.sc.plantedBugs().Has(bugs.CommitBeforeProcess) }

// memberResponse takes a member's answer and starts its next step.
func (w *World) memberResponse(a *topicActor, op *topicOp, r node.Response) {
	m := a.mem
	a.op = nil
	gans, _ := r.Value.(groups.Answer)
	next := int64(memberGapNs)
	switch op.kind {
	case gJoin, gHeartbeat:
		if r.Outcome != node.OK {
			m.joined = false // its session ended, or it released what it no longer owned
			break
		}
		m.joined = true
		w.memberAssigned(m, gans.Assignment)
	case gLeave:
		*m = memberState{group: m.group, id: m.id, pos: map[int]uint64{}}
		next = millis(w.uniform(500, 2000))
	case gDescribe:
		if r.Outcome == node.OK && len(gans.Groups) == 1 && op.part < len(gans.Groups[0].Offsets) && m.owns(op.part) {
			m.pos[op.part] = gans.Groups[0].Offsets[op.part].Offset
		}
	case gRead:
		tans, _ := r.Value.(topics.Answer)
		if r.Outcome != node.OK || len(tans.Messages) == 0 || !m.owns(op.part) {
			next = memberIdleNs
			break
		}
		msgs := tans.Messages
		if w.commitBeforeProcess() {
			m.read = msgs
		} else {
			for _, msg := range msgs {
				w.gpc.process(w, m, msg)
			}
		}
		off := msgs[len(msgs)-1].Offset + 1
		w.memberSend(a, &topicOp{kind: gCommit, part: op.part, from: off,
			req: node.Request{Call: call(groups.Commit(w.memberGroup(m), m.id, m.gen, op.part, off))}})
		return
	case gCommit:
		read := m.read
		m.read = nil
		if r.Outcome != node.OK {
			delete(m.pos, op.part)
			m.hbAt = w.now // learn its generation and partitions again
			break
		}
		if w.faultsOn && w.now < w.faultEnd && w.rng.Float64() < w.sc.Topics.MemberCrashProb {
			w.memberCrash(a) // between the commit and what follows it
			return
		}
		for _, msg := range read {
			w.gpc.process(w, m, msg)
		}
		m.pos[op.part] = op.from
	case gFetch:
		if r.Outcome == node.OK {
			m.held = append(m.held, gans.Deliveries...)
		}
		m.empty = len(m.held) == 0
		if m.empty {
			next = memberIdleNs
		}
	case gFetchable:
		if rd := gans.Ready; r.Outcome == node.OK && rd != nil && (rd.Ready || rd.NextNs != 0 && rd.NextNs <= w.now) {
			w.memberSend(a, &topicOp{kind: gFetch, req: node.Request{Call: call(groups.Fetch(w.memberGroup(m), m.id, op.max))}})
			return
		}
		next = memberIdleNs
	case gSettle:
		w.gpc.settled(w, m, groups.SettleItem{Verb: op.verb, Handle: op.handle}, r.Outcome == node.OK, r.Err())
	case gSettleBatch:
		w.gpc.settledBatch(w, m, op, r)
	}
	w.wakeTopicActor(a, w.now+next)
}

// memberAssigned takes a join's or heartbeat's answer.
func (w *World) memberAssigned(m *memberState, as *groups.Assignment) {
	if as == nil {
		m.joined = false
		return
	}
	m.gen, m.assigned, m.revoking = as.Generation, as.Assigned, as.Revoking
	for p := range m.pos {
		if !m.owns(p) {
			delete(m.pos, p)
		}
	}
	m.hbAt = w.now + millis(w.sc.Topics.SessionMs/3)
}

func (m *memberState) owns(p int) bool {
	for _, q := range m.assigned {
		if q == p {
			return true
		}
	}
	return false
}
