package sim

import (
	"fmt"

	"github.com/aspen-db/aspen/core/groups"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/topics"
)

// Topics in the workload ([topics]). One operator, producers and readers
// are clients of their own, each with its own session, after the jobs
// clients. The operator creates the scenario's topics at the start (shapes
// from topicShapes) and then describes one now and then. Producers wait
// for the topics, then publish one message or a batch at a time: keys from
// a small set (so a key's messages share a partition and their order can be
// checked), some messages keyless (round-robin), some naming a partition;
// now and then a publish the store must refuse (an unknown topic, a
// partition the topic does not have). Every message's value names its
// publish and its place in it (topicValue), so a message read anywhere
// says which publish made it. Readers read a partition from an offset
// (the start, just before the end they saw last, or anywhere up to it),
// through any node, after a ReadIndex. Producers and readers stop when the
// clients do. Consumer group members (groups.go) are one more role here,
// reading through the same checker. Nothing here
// draws from the world's stream unless the table is on.

const (
	topicActorsMax = 64
	topicKeys      = 6         // keys k0..k5
	topicReadMax   = 8         // a read asks for 1..this many messages
	topicWaitNs    = 50e6      // a producer or reader waiting for the topics looks again after this
	topicUnknown   = "missing" // a topic no one creates
)

// topicShape is a topic's definition apart from its name.
type topicShape struct {
	partitions int
	retain     int64   // messages a partition keeps
	ageMs      float64 // and how old they may get (0: no limit)
}

// keepAll is retention by count that never bites in a run.
const keepAll = 1_000_000

// topicShapes are the topics a scenario creates, in turn.
var topicShapes = []topicShape{
	{partitions: 3, retain: keepAll},              // every acknowledged message must stay
	{partitions: 4, retain: 6},                    // retention by count
	{partitions: 1, retain: keepAll},              // one partition: total order
	{partitions: 8, retain: 3},                    // batches overflow a partition in one publish
	{partitions: 2, retain: 2},                    // and again
	{partitions: 5, retain: keepAll, ageMs: 2000}, // retention by age: the leader's prunes
	{partitions: 6, retain: 10},                   // retention by count, slower
	{partitions: 7, retain: keepAll, ageMs: 4000}, // by age, slower
}

func topicName(i int) string { return fmt.Sprintf("topic%d", i) }

// topicDef is topic i's definition.
func topicDef(i int) topics.Def {
	s := topicShapes[i]
	return topics.Def{Name: topicName(i), Partitions: s.partitions, RetainMessages: s.retain,
		RetainBytes: topics.RetainBytesDefault, RetainAgeNs: millis(s.ageMs)}
}

type topicRole uint8

const (
	roleTopicOp topicRole = iota + 1 // creates the topics, then describes them
	roleProducer
	roleReader
	roleMember // a consumer group member (groups.go)
)

type topicOpKind uint8

const (
	topCreate topicOpKind = iota + 1
	topGet
	topPublish
	topRead
	gCreate // the operator's group create
	gJoin
	gHeartbeat
	gLeave
	gDescribe
	gRead // a partitioned member's read of a partition
	gCommit
	gFetch
	gSettle
	gSettleBatch
	gFetchable // a competing member's question: would a fetch lease anything now
)

// topicWrite reports whether an op goes through the log (takes a sequence
// number) rather than being a query.
func (k topicOpKind) write() bool {
	switch k {
	case topGet, topRead, gDescribe, gRead, gFetchable:
		return false
	}
	return true
}

type topicActor struct {
	idx, client int
	role        topicRole
	session     uint64
	seq         uint64
	op          *topicOp
	timer       int

	created    int               // the operator's topics created so far
	groupsMade int               // and groups
	mem        *memberState      // a member's
	seen       map[[2]int]uint64 // a reader's end last seen, by topic and partition
}

// topicOp is the request an actor has in flight, across retries.
type topicOp struct {
	kind     topicOpKind
	req      node.Request
	topic    int
	part     int
	from     uint64
	max      int
	pub      int   // a publish's number in the checker's record
	group    bool  // a member's op (groups.go)
	released []int // a heartbeat's released partitions
	handle   groups.Handle
	verb     uint8
	items    []groups.SettleItem // a batch settle's
	lowIndex uint64              // the highest index any replica had applied when a query was sent
	start    int64
	deadline int64
	attempt  int
}

func (w *World) newTopicActors() {
	t := &w.sc.Topics
	base := w.topicBase()
	add := func(role topicRole) *topicActor {
		a := &topicActor{idx: len(w.topicActors), client: base + len(w.topicActors), role: role}
		a.session = uint64(clientIDBase + a.client)
		w.topicActors = append(w.topicActors, a)
		return a
	}
	w.wakeTopicActor(add(roleTopicOp), w.now+topicWaitNs)
	for i := 0; i < t.Producers; i++ {
		w.wakeTopicActor(add(roleProducer), w.now+topicWaitNs)
	}
	for i := 0; i < t.Readers; i++ {
		a := add(roleReader)
		a.seen = map[[2]int]uint64{}
		w.wakeTopicActor(a, w.now+topicWaitNs)
	}
	if t.groupsOn() {
		w.newMembers(add)
	}
}

// topicBase is the client number of the first topics client: after the KV
// clients, the admin, the lease holders and the jobs clients.
func (w *World) topicBase() int { return len(w.clients) + 1 + len(w.holders) + len(w.jobActors) }

// topicActor returns the topics client numbered client, or nil.
func (w *World) topicActor(client int) *topicActor {
	if i := client - w.topicBase(); i >= 0 && i < len(w.topicActors) {
		return w.topicActors[i]
	}
	return nil
}

func (w *World) wakeTopicActor(a *topicActor, at int64) {
	a.timer++
	w.schedule(event{at: at, kind: evTopics, node: -1, client: a.client, n: a.timer})
}

func (w *World) topicActorWake(e event) {
	a := w.topicActor(e.client)
	if a == nil || e.n != a.timer || a.op != nil {
		return
	}
	switch {
	case a.role == roleTopicOp:
		w.topicOpStep(a)
	case a.role == roleMember:
		w.memberStep(a)
	case !w.clientsOn:
	case w.topicsMade() < w.sc.Topics.Topics:
		w.wakeTopicActor(a, w.now+topicWaitNs) // the topics are not all there yet
	case a.role == roleProducer:
		w.producerStep(a)
	case a.role == roleReader:
		w.readerStep(a)
	}
}

// topicsMade is how many topics the operator has seen created.
func (w *World) topicsMade() int { return w.topicActors[0].created }

func (w *World) topicOpStep(a *topicActor) {
	switch {
	case a.created < w.sc.Topics.Topics:
		w.topicSend(a, &topicOp{kind: topCreate, topic: a.created, req: node.Request{Call: call(topics.Create(topicDef(a.created)))}})
	case w.sc.Topics.groupsOn() && a.groupsMade < len(groupShapes):
		w.topicSend(a, &topicOp{kind: gCreate, req: node.Request{Call: call(groups.Create(w.groupDef(a.groupsMade)))}})
	case w.clientsOn && w.sc.Topics.DescribeMs > 0:
		i := w.rng.IntN(w.sc.Topics.Topics)
		w.topicSend(a, &topicOp{kind: topGet, topic: i, req: node.Request{Call: call(topics.Get(topicName(i)))}})
	}
}

func (w *World) producerStep(a *topicActor) {
	t := &w.sc.Topics
	i := w.rng.IntN(t.Topics)
	name, shape := topicName(i), topicShapes[i]
	n := 1
	if t.BatchMax > 1 && w.rng.Float64() < t.BatchProb {
		n = 2 + w.rng.IntN(t.BatchMax-1)
	}
	pub := len(w.tpc.pubs)
	msgs := make([]topics.In, n)
	for k := range msgs {
		m := &msgs[k]
		m.Value, m.Partition = []byte(topicValue(pub, k)), -1
		if w.rng.Float64() >= t.KeylessProb {
			m.Key = fmt.Appendf(nil, "k%d", w.rng.IntN(topicKeys))
		}
		if w.rng.Float64() < t.NamedPartitionProb {
			m.Partition = w.rng.IntN(shape.partitions)
		}
	}
	want := node.OK
	if w.rng.Float64() < t.InvalidProb {
		if w.rng.IntN(2) == 0 {
			name, want = topicUnknown, node.NotFound
		} else {
			msgs[w.rng.IntN(n)].Partition, want = shape.partitions+w.rng.IntN(3), node.Invalid
		}
	}
	w.tpc.sent(w, name, msgs, want)
	w.topicSend(a, &topicOp{kind: topPublish, topic: i, pub: pub, req: node.Request{Call: call(topics.Publish(name, msgs))}})
}

// topicValue is the value of message k of publish pub: unique in the run.
func topicValue(pub, k int) string { return fmt.Sprintf("m%d.%d", pub, k) }

func (w *World) readerStep(a *topicActor) {
	i := w.rng.IntN(w.sc.Topics.Topics)
	p := w.rng.IntN(topicShapes[i].partitions)
	seen := a.seen[[2]int{i, p}]
	var from uint64
	switch w.rng.IntN(3) {
	case 0: // from the beginning
	case 1: // just before the end seen last
		from = seen - min(seen, uint64(w.rng.IntN(3)))
	default:
		from = w.rng.Uint64N(seen + 3)
	}
	max := 1 + w.rng.IntN(topicReadMax)
	w.topicSend(a, &topicOp{kind: topRead, topic: i, part: p, from: from, max: max,
		req: node.Request{Call: call(topics.Read(topicName(i), p, from, max))}})
}

// topicSend starts op: a write takes the actor's next sequence number, a
// query a number no write uses.
func (w *World) topicSend(a *topicActor, op *topicOp) {
	op.req.Client = a.session
	if op.kind.write() {
		a.seq++
		op.req.Seq = a.seq
	} else {
		w.readSeq++
		op.req.Seq = 1<<63 | w.readSeq
		op.lowIndex = w.tpc.seenMax
	}
	op.start, op.deadline = w.now, w.now+millis(float64(w.sc.Workload.OpDeadlineMs))
	a.op = op
	w.topicAttempt(a)
}

func (w *World) topicAttempt(a *topicActor) {
	a.op.attempt++
	w.toNode(w.liveNode(), a.op.req)
	w.timeAttempt(a.client, a.op.attempt)
}

func (w *World) topicTimeout(a *topicActor, attempt int) {
	if a.op != nil && a.op.attempt == attempt {
		w.topicRetry(a)
	}
}

// topicRetry sends the same request again, or gives up at the deadline: a
// publish given up may still apply at any later time.
func (w *World) topicRetry(a *topicActor) {
	if w.now < a.op.deadline {
		w.topicAttempt(a)
		return
	}
	w.topicDone(a)
}

func (w *World) topicResponse(a *topicActor, e event) {
	op, r := a.op, e.resp
	if op == nil || r.Seq != op.req.Seq {
		return
	}
	if r.Outcome != node.OK && !r.Outcome.Refused() {
		w.topicRetry(a)
		return
	}
	if op.group {
		w.memberResponse(a, op, r)
		return
	}
	ans, _ := r.Value.(topics.Answer)
	switch op.kind {
	case gCreate:
		if r.Outcome != node.OK && r.Outcome != node.Conflict {
			w.check.fail("topic operator: create of group %s answered %v", groupShapes[a.groupsMade].name, r.Err())
		}
		a.groupsMade++
	case topCreate:
		// Conflict: an earlier attempt made it.
		if r.Outcome != node.OK && r.Outcome != node.Conflict {
			w.check.fail("topic operator: create of %s answered %v", topicName(op.topic), r.Err())
		}
		a.created++
	case topGet:
		w.tpc.described(w, op, r, ans)
	case topPublish:
		w.tpc.published(w, op, r, ans)
	case topRead:
		w.tpc.read(w, a, op, r, ans)
	}
	w.topicDone(a)
}

func (w *World) topicDone(a *topicActor) {
	a.op = nil
	t := &w.sc.Topics
	switch a.role {
	case roleMember:
		a.mem.read = nil                        // never committed: read again
		w.wakeTopicActor(a, w.now+memberIdleNs) // gave up: the next step decides again
	case roleTopicOp:
		if a.created < t.Topics || t.groupsOn() && a.groupsMade < len(groupShapes) {
			w.wakeTopicActor(a, w.now)
		} else if t.DescribeMs > 0 {
			w.wakeTopicActor(a, w.now+millis(w.uniform(0.5, 1.5)*t.DescribeMs))
		}
	case roleProducer:
		w.wakeTopicActor(a, w.now+int64(w.rng.ExpFloat64()/(t.PublishesPerSecond/float64(t.Producers))*1e9))
	case roleReader:
		w.wakeTopicActor(a, w.now+int64(w.rng.ExpFloat64()/(t.ReadsPerSecond/float64(t.Readers))*1e9))
	}
}
