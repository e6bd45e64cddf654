package sim

import (
	"bytes"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/topics"
)

// topicsChecker follows the topic store through the placements replicas
// report (topics.Change in node.Applied.Reports), read once per index from
// the first replica to apply it; every other replica must report the same
// changes at the same index. From them it keeps a model of every partition:
// which entry placed each offset, and the first offset retention keeps
// (count retention after each placement, age retention at each prune
// entry, as the module does). On that model it checks:
//
//   - offsets are dense and in commit order: each placement takes its
//     partition's end, so a publish's messages are contiguous per partition
//     and in batch order;
//   - after each Ready, the first replica to apply it holds exactly the
//     model's offsets, and each new placement holds a message of the entry
//     that placed it (an offset is never reused);
//   - every message seen (in a read, in an answer, at the end) was published:
//     its value names the publish and its place in it (topicValue), so the
//     key, the topic, the partition rule (a named partition, or the key's
//     hash) and the placement the entry reported must all agree, and a
//     publish is placed at one index only;
//   - an acknowledged publish's placements are those its entry reported, and
//     a key's messages in a partition keep the order their publishes were
//     acknowledged and sent in;
//   - a refused publish places nothing;
//   - a read (a query after a ReadIndex) shows the partition as it stood at
//     one index between the highest any replica had applied when it was
//     sent and the highest applied when it was answered: so a read sent
//     after an acknowledgement sees the acknowledged message unless
//     retention had dropped it;
//   - at the end, the converged replica holds exactly the model's offsets,
//     each with its message, and every acknowledged message retention did
//     not drop.
//
// Each kind of violation is reported three times at most.
type topicsChecker struct {
	seenMax uint64
	changes map[uint64][]topics.Change // by index, as the first replica reported them
	placed  map[uint64][]placement     // by index, in order
	byIndex map[uint64]int             // the publish placed at an index
	topics  map[string]*topicModel
	pubs    []*pubRecord
	keyAcks map[keyPart][]keyAck
	classes map[string]int
}

const topicViolationsPerKind = 3

type placement struct {
	topic string
	p     int
	off   uint64
}

type topicModel struct {
	def   topics.Def
	parts []partModel
}

// partModel is one partition as the applied history makes it.
type partModel struct {
	slots []slot // by offset
	first uint64
	hist  []bound // after every entry that changed the partition, in index order
}

type slot struct {
	index uint64 // the entry that placed it
	atNs  int64  // its replicated time
}

type bound struct{ index, first, end uint64 }

func (pm *partModel) end() uint64 { return uint64(len(pm.slots)) }

// pubRecord is one publish as its producer sent it, and what became of it.
type pubRecord struct {
	topic   string
	msgs    []topics.In
	want    node.Outcome // OK, or the refusal it must get
	sentAt  int64
	index   uint64 // the entry that placed it, once known
	acked   bool
	refused bool
}

type keyPart struct {
	topic, key string
	p          int
}

// keyAck is an acknowledged message of a key, in the order acknowledgements
// arrived; maxOff is the highest offset of this and every earlier one.
type keyAck struct {
	atNs   int64
	maxOff uint64
}

func (w *World) newTopicsChecker() {
	w.tpc = &topicsChecker{changes: map[uint64][]topics.Change{}, placed: map[uint64][]placement{}, byIndex: map[uint64]int{},
		topics: map[string]*topicModel{}, keyAcks: map[keyPart][]keyAck{}, classes: map[string]int{}}
}

func (w *World) topicFail(kind, format string, args ...any) {
	if w.tpc.classes[kind]++; w.tpc.classes[kind] <= topicViolationsPerKind {
		w.check.fail(format, args...)
	}
}

func topicChangesOf(a *node.Applied) []topics.Change {
	for _, r := range a.Reports {
		if c, ok := r.([]topics.Change); ok {
			return c
		}
	}
	return nil
}

// sent records a publish as its producer sends it.
func (tc *topicsChecker) sent(w *World, topic string, msgs []topics.In, want node.Outcome) {
	tc.pubs = append(tc.pubs, &pubRecord{topic: topic, msgs: msgs, want: want, sentAt: w.now})
}

// topicRecords reads a replica's applied records: the first replica to
// apply an index gives the model its changes, every other one must report
// the same. The first replica's state after the Ready must then match.
func (w *World) topicRecords(sn *simNode, recs []node.Applied) {
	tc := w.tpc
	var fresh []placement
	touched := map[placement]bool{} // partitions (off unused) the Ready's new entries changed
	for i := range recs {
		a := &recs[i]
		cs := topicChangesOf(a)
		if a.Index <= tc.seenMax {
			if first := tc.changes[a.Index]; !reflect.DeepEqual(first, cs) && len(first)+len(cs) > 0 {
				w.topicFail("replicas", "replicas report topic changes differently at index %d: node %d %s, the first to apply it %s",
					a.Index, sn.id, describeChanges(cs), describeChanges(first))
			}
			continue
		}
		tc.seenMax = a.Index
		if len(cs) > 0 {
			tc.changes[a.Index] = cs
		}
		fresh = append(fresh, w.topicApplied(a, cs, touched)...)
	}
	if len(touched) > 0 {
		w.topicMatchReplica(sn, fresh, touched)
	}
}

func describeChanges(cs []topics.Change) string {
	var b strings.Builder
	for _, c := range cs {
		switch {
		case c.Created:
			fmt.Fprintf(&b, "[create %s]", c.Topic)
		case c.Deleted:
			fmt.Fprintf(&b, "[delete %s]", c.Topic)
		case c.Published != nil:
			fmt.Fprintf(&b, "[%s/%d@%d]", c.Topic, c.Published.Partition, c.Published.Offset)
		}
	}
	return b.String()
}

// topicApplied moves the model over one entry and returns its placements.
func (w *World) topicApplied(a *node.Applied, cs []topics.Change, touched map[placement]bool) []placement {
	tc := w.tpc
	var out []placement
	changed := map[placement]bool{}
	for _, c := range cs {
		switch {
		case c.Created:
			i, err := strconv.Atoi(strings.TrimPrefix(c.Topic, "topic"))
			if err != nil || i < 0 || i >= len(topicShapes) || tc.topics[c.Topic] != nil {
				w.topicFail("create", "topic %q created at index %d: not one of the workload's, or created twice", c.Topic, a.Index)
				continue
			}
			def := topicDef(i)
			tc.topics[c.Topic] = &topicModel{def: def, parts: make([]partModel, def.Partitions)}
		case c.Deleted:
			delete(tc.topics, c.Topic)
		case c.Published != nil:
			if pl, ok := w.topicPlaced(a, c.Topic, *c.Published); ok {
				out = append(out, pl)
				changed[placement{topic: pl.topic, p: pl.p}] = true
			}
		}
	}
	if a.Kind == topics.CmdPrune {
		tc.prune(a, changed)
	}
	for _, k := range slices.SortedFunc(maps.Keys(changed), comparePlacement) {
		pm := &tc.topics[k.topic].parts[k.p]
		pm.hist = append(pm.hist, bound{index: a.Index, first: pm.first, end: pm.end()})
		touched[k] = true
	}
	tc.placed[a.Index] = out
	w.res.TopicMessages += len(out)
	return out
}

func comparePlacement(a, b placement) int {
	if c := strings.Compare(a.topic, b.topic); c != 0 {
		return c
	}
	if a.p != b.p {
		return a.p - b.p
	}
	return int(a.off) - int(b.off)
}

// topicPlaced takes one placement into the model: it must take the
// partition's end. Count retention follows, as in the module.
func (w *World) topicPlaced(a *node.Applied, topic string, pl topics.Placed) (placement, bool) {
	tm := w.tpc.topics[topic]
	if tm == nil || pl.Partition < 0 || pl.Partition >= len(tm.parts) {
		w.topicFail("placed", "index %d placed a message in %s/%d: no such topic or partition", a.Index, topic, pl.Partition)
		return placement{}, false
	}
	pm := &tm.parts[pl.Partition]
	if end := pm.end(); pl.Offset != end {
		w.topicFail("dense", "offsets not dense: index %d placed a message in %s/%d at offset %d, the partition's end is %d (offsets %d..%d retained)",
			a.Index, topic, pl.Partition, pl.Offset, end, pm.first, end)
		for pm.end() < pl.Offset {
			pm.slots = append(pm.slots, slot{})
		}
		pm.slots = pm.slots[:pl.Offset]
		pm.first = min(pm.first, pl.Offset)
	}
	pm.slots = append(pm.slots, slot{index: a.Index, atNs: a.TimeNs})
	if n := pm.end() - pm.first; int64(n) > tm.def.RetainMessages {
		pm.first = pm.end() - uint64(tm.def.RetainMessages)
	}
	return placement{topic: topic, p: pl.Partition, off: pl.Offset}, true
}

// prune drops, in topics with an age limit, the messages older than it at
// the prune entry's time.
func (tc *topicsChecker) prune(a *node.Applied, changed map[placement]bool) {
	for _, name := range slices.Sorted(maps.Keys(tc.topics)) {
		tm := tc.topics[name]
		if tm.def.RetainAgeNs == 0 {
			continue
		}
		for p := range tm.parts {
			pm := &tm.parts[p]
			was := pm.first
			for pm.first < pm.end() && pm.slots[pm.first].atNs < a.TimeNs-tm.def.RetainAgeNs {
				pm.first++
			}
			if pm.first != was {
				changed[placement{topic: name, p: p}] = true
			}
		}
	}
}

// topicMatchReplica compares the first replica to apply the Ready's new
// entries with the model: bounds of every partition they changed, and each
// new placement still retained holds a message of the entry that placed it.
func (w *World) topicMatchReplica(sn *simNode, fresh []placement, touched map[placement]bool) {
	mod := sn.n.Hosted("topics").(*topics.Module)
	for _, k := range slices.SortedFunc(maps.Keys(touched), comparePlacement) {
		tm := w.tpc.topics[k.topic]
		if tm == nil {
			continue
		}
		pm := &tm.parts[k.p]
		if first, end := mod.Bounds(k.topic, k.p); first != pm.first || end != pm.end() {
			w.topicFail("bounds", "node %d holds offsets %d..%d of %s/%d after index %d, the applied history says %d..%d",
				sn.id, first, end, k.topic, k.p, w.tpc.seenMax, pm.first, pm.end())
		}
	}
	for _, pl := range fresh {
		tm := w.tpc.topics[pl.topic]
		if tm == nil || pl.off < tm.parts[pl.p].first {
			continue // dropped since
		}
		got := mod.Read(pl.topic, pl.p, pl.off, 1, readBytesAll)
		if len(got) == 0 || got[0].Offset != pl.off {
			w.topicFail("lost", "node %d does not hold %s/%d offset %d right after index %d placed it", sn.id, pl.topic, pl.p, pl.off, tm.parts[pl.p].slots[pl.off].index)
			continue
		}
		w.topicObserve(got[0], fmt.Sprintf("node %d", sn.id))
	}
}

// readBytesAll: the checker's own reads are never cut short by bytes.
const readBytesAll = 1 << 30

// topicObserve checks a message seen somewhere (where says where) against
// the publishes and the model, and places its publish at its index.
func (w *World) topicObserve(m topics.Message, where string) {
	tc := w.tpc
	pub, k, ok := parseTopicValue(m.Value)
	if !ok || pub >= len(tc.pubs) || k >= len(tc.pubs[pub].msgs) {
		w.topicFail("unpublished", "%s: message %q at %s/%d offset %d (index %d) was never published", where, m.Value, m.Topic, m.Partition, m.Offset, m.Index)
		return
	}
	rec := tc.pubs[pub]
	in := &rec.msgs[k]
	if m.Topic != rec.topic || !bytes.Equal(m.Key, in.Key) || (m.Key == nil) != (in.Key == nil) {
		w.topicFail("content", "%s: message %q in %s with key %q, but it was published to %s with key %q", where, m.Value, m.Topic, m.Key, rec.topic, in.Key)
		return
	}
	tm := tc.topics[m.Topic]
	if tm == nil || m.Partition < 0 || m.Partition >= len(tm.parts) || m.Offset >= tm.parts[m.Partition].end() {
		w.topicFail("unplaced", "%s: message %q at %s/%d offset %d, which no entry placed", where, m.Value, m.Topic, m.Partition, m.Offset)
		return
	}
	if s := tm.parts[m.Partition].slots[m.Offset]; s.index != m.Index {
		w.topicFail("reused", "%s: %s/%d offset %d holds message %q of index %d, but index %d placed that offset (an offset reused)",
			where, m.Topic, m.Partition, m.Offset, m.Value, m.Index, s.index)
		return
	}
	if !w.topicBind(pub, m.Index) {
		return
	}
	if pls := tc.placed[m.Index]; k >= len(pls) {
		w.topicFail("count", "%s: message %q is message %d of its publish, but its entry (index %d) placed %d", where, m.Value, k, m.Index, len(pls))
	} else if pl := pls[k]; pl.p != m.Partition || pl.off != m.Offset {
		w.topicFail("content", "%s: message %q at %s/%d offset %d, but its entry (index %d) placed it at %d/%d", where, m.Value, m.Topic, m.Partition, m.Offset, m.Index, pl.p, pl.off)
	}
}

func parseTopicValue(v []byte) (pub, k int, ok bool) {
	a, b, found := strings.Cut(strings.TrimPrefix(string(v), "m"), ".")
	if !found || len(v) == 0 || v[0] != 'm' {
		return 0, 0, false
	}
	pub, err1 := strconv.Atoi(a)
	k, err2 := strconv.Atoi(b)
	return pub, k, err1 == nil && err2 == nil && pub >= 0 && k >= 0
}

// topicBind records that publish pub was placed at index, and checks the
// entry's placements against what was published: as many, in its topic,
// each in the partition its message named or its key hashes to. It reports
// false when they cannot be compared.
func (w *World) topicBind(pub int, index uint64) bool {
	tc := w.tpc
	rec := tc.pubs[pub]
	if rec.index == index {
		return true
	}
	if rec.index != 0 {
		w.topicFail("twice", "publish %d to %s placed twice: at index %d and %d", pub, rec.topic, rec.index, index)
		return false
	}
	if other, ok := tc.byIndex[index]; ok {
		w.topicFail("twice", "index %d placed both publish %d and publish %d", index, other, pub)
		return false
	}
	rec.index, tc.byIndex[index] = index, pub
	if rec.refused {
		w.topicFail("refused", "publish %d to %s was refused, yet index %d placed its messages", pub, rec.topic, index)
	}
	pls := tc.placed[index]
	if len(pls) != len(rec.msgs) {
		w.topicFail("count", "publish %d of %d messages to %s: index %d placed %d", pub, len(rec.msgs), rec.topic, index, len(pls))
		return false
	}
	tm := tc.topics[rec.topic]
	for k, pl := range pls {
		in := &rec.msgs[k]
		want := in.Partition
		if want < 0 && in.Key != nil {
			want = topics.KeyPartition(in.Key, len(tm.parts))
		}
		if pl.topic != rec.topic || want >= 0 && pl.p != want {
			w.topicFail("partition", "message %d of publish %d (key %q, partition %d asked) placed in %s/%d, want %s/%d", k, pub, in.Key, in.Partition, pl.topic, pl.p, rec.topic, want)
		}
	}
	return true
}

// published checks a publish's answer: an acknowledgement names the entry
// that placed it and where; a refusal is the one it must get (or the store
// was full, when it is bounded).
func (tc *topicsChecker) published(w *World, op *topicOp, r node.Response, ans topics.Answer) {
	rec := tc.pubs[op.pub]
	switch {
	case r.Outcome == node.OK && rec.want != node.OK:
		w.topicFail("answer", "publish %d to %s was acknowledged, want %v", op.pub, rec.topic, rec.want)
	case r.Outcome == node.OK:
		rec.acked = true
		w.res.TopicAcked++
		pls, ok := tc.placed[ans.Index]
		if !ok || len(pls) != len(ans.Placed) {
			w.topicFail("ack", "publish %d acknowledged at index %d with %d placements, but that index placed %d (applied: %v)", op.pub, ans.Index, len(ans.Placed), len(pls), ok)
			return
		}
		for k, p := range ans.Placed {
			if pls[k].p != p.Partition || pls[k].off != p.Offset {
				w.topicFail("ack", "publish %d acknowledged message %d at %s/%d offset %d, index %d placed it at %d/%d", op.pub, k, rec.topic, p.Partition, p.Offset, ans.Index, pls[k].p, pls[k].off)
			}
		}
		if w.topicBind(op.pub, ans.Index) {
			tc.keyOrder(w, op.pub, rec)
		}
	case r.Outcome == rec.want, r.Outcome == node.TooLarge && rec.want == node.OK && w.sc.Topics.StoreBytesMax > 0:
		rec.refused = true
		if r.Outcome == node.TooLarge {
			w.res.TopicFull++
		}
		if rec.index != 0 {
			w.topicFail("refused", "publish %d to %s answered %v, yet index %d placed its messages", op.pub, rec.topic, r.Err(), rec.index)
		}
	default:
		w.topicFail("answer", "publish %d to %s answered %v, want %v", op.pub, rec.topic, r.Err(), rec.want)
	}
}

// keyOrder: a key's message acknowledged now must sit after every message
// of that key in that partition acknowledged before this publish was sent.
func (tc *topicsChecker) keyOrder(w *World, pub int, rec *pubRecord) {
	for k, pl := range tc.placed[rec.index] {
		key := rec.msgs[k].Key
		if key == nil {
			continue
		}
		kp := keyPart{topic: rec.topic, key: string(key), p: pl.p}
		acks := tc.keyAcks[kp]
		before := sort.Search(len(acks), func(i int) bool { return acks[i].atNs >= rec.sentAt })
		if before > 0 && acks[before-1].maxOff >= pl.off {
			w.topicFail("order", "key %q in %s/%d: publish %d's message at offset %d, but a message of the key acknowledged before it was sent is at offset %d",
				key, rec.topic, pl.p, pub, pl.off, acks[before-1].maxOff)
		}
		ack := keyAck{atNs: w.now, maxOff: pl.off}
		if len(acks) > 0 {
			ack.maxOff = max(ack.maxOff, acks[len(acks)-1].maxOff)
		}
		tc.keyAcks[kp] = append(acks, ack)
	}
}

// read checks a read's answer: consecutive offsets from where it asked,
// every message one that was placed there, and the partition as it stood
// at one index the read may have been served at.
func (tc *topicsChecker) read(w *World, a *topicActor, op *topicOp, r node.Response, ans topics.Answer) {
	name := topicName(op.topic)
	if r.Outcome != node.OK {
		w.topicFail("answer", "read of %s/%d from %d answered %v", name, op.part, op.from, r.Err())
		return
	}
	w.res.TopicReads++
	msgs := ans.Messages
	for j, m := range msgs {
		if m.Topic != name || m.Partition != op.part || j == 0 && m.Offset < op.from || j > 0 && m.Offset != msgs[j-1].Offset+1 || j >= op.max {
			w.topicFail("read", "read of %s/%d from %d (max %d) returned %s/%d offset %d as message %d", name, op.part, op.from, op.max, m.Topic, m.Partition, m.Offset, j)
			return
		}
		w.topicObserve(m, fmt.Sprintf("read of %s/%d from %d", name, op.part, op.from))
	}
	fits := func(first, end uint64) bool {
		start := max(op.from, first)
		if len(msgs) == 0 {
			return start >= end
		}
		last := msgs[len(msgs)-1].Offset + 1
		return msgs[0].Offset == start && (last == end || len(msgs) == op.max && last <= end)
	}
	if !tc.heldAtSome(name, op.part, op.lowIndex, tc.seenMax, fits) {
		got := "nothing"
		if len(msgs) > 0 {
			got = fmt.Sprintf("offsets %d..%d", msgs[0].Offset, msgs[len(msgs)-1].Offset)
		}
		w.topicFail("stale", "read of %s/%d from %d (max %d), sent at %.3fs, returned %s: the partition held that at no index from %d (applied when it was sent) to %d (%s)",
			name, op.part, op.from, op.max, float64(op.start)/1e9, got, op.lowIndex, tc.seenMax, tc.describeHist(name, op.part, op.lowIndex, tc.seenMax))
	}
	if len(msgs) > 0 {
		k := [2]int{op.topic, op.part}
		a.seen[k] = max(a.seen[k], msgs[len(msgs)-1].Offset+1)
	}
}

// described checks an operator's topic description against the model.
func (tc *topicsChecker) described(w *World, op *topicOp, r node.Response, ans topics.Answer) {
	name := topicName(op.topic)
	if r.Outcome != node.OK || len(ans.Topics) != 1 || ans.Topics[0].Name != name || len(ans.Topics[0].Partitions) != topicShapes[op.topic].partitions {
		w.topicFail("answer", "describe of %s answered %v with %d topics", name, r.Err(), len(ans.Topics))
		return
	}
	for p, info := range ans.Topics[0].Partitions {
		fits := func(first, end uint64) bool { return info.First == first && info.End == end }
		if !tc.heldAtSome(name, p, op.lowIndex, tc.seenMax, fits) {
			w.topicFail("stale", "describe of %s shows partition %d at offsets %d..%d: it held that at no index from %d to %d (%s)",
				name, p, info.First, info.End, op.lowIndex, tc.seenMax, tc.describeHist(name, p, op.lowIndex, tc.seenMax))
		}
	}
}

// heldAtSome reports whether partition p of topic stood as fits wants at
// some index in [low, high].
func (tc *topicsChecker) heldAtSome(topic string, p int, low, high uint64, fits func(first, end uint64) bool) bool {
	tm := tc.topics[topic]
	if tm == nil || p >= len(tm.parts) {
		return fits(0, 0)
	}
	hist := tm.parts[p].hist
	j := sort.Search(len(hist), func(i int) bool { return hist[i].index > low })
	if j == 0 && fits(0, 0) || j > 0 && fits(hist[j-1].first, hist[j-1].end) {
		return true
	}
	for ; j < len(hist) && hist[j].index <= high; j++ {
		if fits(hist[j].first, hist[j].end) {
			return true
		}
	}
	return false
}

func (tc *topicsChecker) describeHist(topic string, p int, low, high uint64) string {
	tm := tc.topics[topic]
	if tm == nil || p >= len(tm.parts) {
		return "no such partition"
	}
	var b strings.Builder
	for _, h := range tm.parts[p].hist {
		if h.index+64 >= low && h.index <= high+64 {
			fmt.Fprintf(&b, "@%d:%d..%d ", h.index, h.first, h.end)
		}
	}
	return strings.TrimSpace(b.String())
}

// checkTopicsAtEnd compares a converged replica with the model: the same
// offsets in every partition, each holding the message its entry placed,
// and every acknowledged message still there unless retention dropped it.
func (w *World) checkTopicsAtEnd(sn *simNode) {
	tc := w.tpc
	mod := sn.n.Hosted("topics").(*topics.Module)
	held := map[placement][]byte{}
	for _, name := range slices.Sorted(maps.Keys(tc.topics)) {
		tm := tc.topics[name]
		if n, ok := mod.Partitions(name); !ok || n != len(tm.parts) {
			w.topicFail("end", "node %d has topic %s with %d partitions (found %v), want %d", sn.id, name, n, ok, len(tm.parts))
			continue
		}
		for p := range tm.parts {
			pm := &tm.parts[p]
			w.res.TopicDropped += int(pm.first)
			if first, end := mod.Bounds(name, p); first != pm.first || end != pm.end() {
				w.topicFail("end", "node %d holds offsets %d..%d of %s/%d at the end, the applied history says %d..%d", sn.id, first, end, name, p, pm.first, pm.end())
			}
			for from := pm.first; from < pm.end(); {
				got := mod.Read(name, p, from, topics.DefaultLimits().ReadMax, readBytesAll)
				if len(got) == 0 {
					break
				}
				for _, m := range got {
					w.topicObserve(m, fmt.Sprintf("node %d at the end", sn.id))
					held[placement{topic: name, p: p, off: m.Offset}] = m.Value
				}
				from = got[len(got)-1].Offset + 1
			}
		}
	}
	for pub, rec := range tc.pubs {
		if !rec.acked {
			continue
		}
		for k, pl := range tc.placed[rec.index] {
			if tm := tc.topics[pl.topic]; tm == nil || pl.off < tm.parts[pl.p].first {
				continue // retention dropped it
			}
			if v := held[pl]; string(v) != topicValue(pub, k) {
				w.topicFail("lost", "acknowledged message %s at %s/%d offset %d is lost: node %d holds %q there at the end", topicValue(pub, k), pl.topic, pl.p, pl.off, sn.id, v)
			}
		}
	}
}

// checkTopicsEnd runs after the healed phase: every topics client is done,
// and the first live replica (all are converged by now, or that failed
// already) matches the history.
func (w *World) checkTopicsEnd() {
	for _, a := range w.topicActors {
		if a.op != nil {
			w.topicFail("waiting", "healed phase ended with topics client %d still waiting (request started at %.3fs)", a.idx, float64(a.op.start)/1e9)
		}
	}
	if w.topicsMade() < w.sc.Topics.Topics {
		w.topicFail("waiting", "healed phase ended with %d of %d topics created", w.topicsMade(), w.sc.Topics.Topics)
	}
	for _, sn := range w.nodes {
		if !sn.gone && sn.n != nil {
			w.checkTopicsAtEnd(sn)
			return
		}
	}
}
