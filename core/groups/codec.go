package groups

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/topics"
)

// Encodings, as (u)varints and length-prefixed bytes in field order.
//
// A definition (commands, records, answers):
//
//	name | topic | mode uvarint | start latest uvarint | session varint |
//	ack wait varint | deliveries max uvarint | in flight max uvarint
//
// A group record (g/g/<name>) and a group in the snapshot:
//
//	definition | created varint | partitions uvarint | generation uvarint |
//	stats (7 uvarint) | rr uvarint | dead seq uvarint |
//	member count uvarint | members by id (id | epoch uvarint | deadline varint) |
//	per partition: target uvarint | owner uvarint (0 none, else 1 + the
//	member's place in id order) | per partition: offset uvarint
//
// An unsettled message (g/p/<name>/<p>/<off>): p | off | delivery | member | at varint.
// A dead letter (g/d/<name>/<seq>): seq | p | off | deliveries | reason | at varint.

func appendDef(b []byte, d *Def) []byte {
	b = module.AppendBytes(b, []byte(d.Name))
	b = module.AppendBytes(b, []byte(d.Topic))
	b = binary.AppendUvarint(b, uint64(d.Mode))
	b = appendFlag(b, d.StartLatest)
	b = binary.AppendVarint(b, d.SessionNs)
	b = binary.AppendVarint(b, d.AckWaitNs)
	b = binary.AppendUvarint(b, uint64(d.DeliveriesMax))
	return binary.AppendUvarint(b, uint64(d.InFlightMax))
}

func readDef(r *module.Reader) Def {
	d := Def{Name: r.String(), Topic: r.String(), Mode: Mode(min(r.Uvarint(), 255)), StartLatest: readFlag(r)}
	d.SessionNs, d.AckWaitNs = r.Varint(), r.Varint()
	d.DeliveriesMax, d.InFlightMax = int(min(r.Uvarint(), 1<<30)), int(min(r.Uvarint(), 1<<30))
	return d
}

func appendFlag(b []byte, f bool) []byte {
	if f {
		return append(b, 1)
	}
	return append(b, 0)
}

func readFlag(r *module.Reader) bool {
	v := r.Uvarint()
	if v > 1 {
		r.Fail("flag %d", v)
	}
	return v == 1
}

func appendGroup(b []byte, g *group) []byte {
	b = appendDef(b, &g.Def)
	b = binary.AppendVarint(b, g.createdNs)
	b = binary.AppendUvarint(b, uint64(g.parts))
	b = binary.AppendUvarint(b, g.gen)
	for _, p := range g.stats.fields() {
		b = binary.AppendUvarint(b, *p)
	}
	b = binary.AppendUvarint(b, uint64(g.rr))
	b = binary.AppendUvarint(b, g.deadSeq)
	b = binary.AppendUvarint(b, uint64(len(g.ids)))
	place := make(map[string]uint64, len(g.ids))
	for i, id := range g.ids {
		m := g.members[id]
		b = module.AppendBytes(b, []byte(id))
		b = binary.AppendUvarint(b, m.Epoch)
		b = binary.AppendVarint(b, m.DeadlineNs)
		place[id] = uint64(i + 1)
	}
	for p := range g.parts {
		b = binary.AppendUvarint(b, place[g.target[p]])
		b = binary.AppendUvarint(b, place[g.owner[p]])
	}
	for _, o := range g.offsets {
		b = binary.AppendUvarint(b, o)
	}
	return b
}

// readGroup reads what appendGroup wrote, checking what it can alone.
func readGroup(r *module.Reader) *group {
	d := readDef(r)
	created, parts := r.Varint(), r.Uvarint()
	if parts > uint64(len(r.B)) {
		r.Fail("%d partitions in %d bytes", parts, len(r.B))
		return nil
	}
	g := newGroup(d, int(parts), created)
	g.gen = r.Uvarint()
	for _, p := range g.stats.fields() {
		*p = r.Uvarint()
	}
	g.rr, g.deadSeq = uint32(min(r.Uvarint(), uint64(parts))), r.Uvarint()
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		m := &member{ID: r.String(), Epoch: r.Uvarint(), DeadlineNs: r.Varint()}
		if r.Err == nil && (g.members[m.ID] != nil || len(g.ids) > 0 && g.ids[len(g.ids)-1] >= m.ID) {
			r.Fail("member %q out of order", m.ID)
		}
		g.members[m.ID] = m
		g.ids = append(g.ids, m.ID)
	}
	at := func() string {
		i := r.Uvarint()
		if i > uint64(len(g.ids)) {
			r.Fail("member place %d of %d", i, len(g.ids))
			return ""
		}
		if i == 0 {
			return ""
		}
		return g.ids[i-1]
	}
	for p := 0; p < g.parts && r.Err == nil; p++ {
		g.target[p], g.owner[p] = at(), at()
	}
	for p := 0; p < g.parts && r.Err == nil; p++ {
		g.offsets[p] = r.Uvarint()
	}
	return g
}

func appendEntry(b []byte, e *entry) []byte {
	b = appendHandle(b, Handle{P: e.P, Off: e.Off, Delivery: e.Delivery})
	b = module.AppendBytes(b, []byte(e.Member))
	return binary.AppendVarint(b, e.At)
}

func readEntry(r *module.Reader) *entry {
	h := readHandle(r)
	return &entry{P: h.P, Off: h.Off, Delivery: h.Delivery, Member: r.String(), At: r.Varint()}
}

func appendDead(b []byte, d *DeadLetter) []byte {
	b = binary.AppendUvarint(b, d.Seq)
	b = appendHandle(b, Handle{P: d.P, Off: d.Off, Delivery: d.Deliveries})
	b = binary.AppendUvarint(b, uint64(d.Reason))
	return binary.AppendVarint(b, d.AtNs)
}

func readDead(r *module.Reader) DeadLetter {
	d := DeadLetter{Seq: r.Uvarint()}
	h := readHandle(r)
	d.P, d.Off, d.Deliveries = h.P, h.Off, h.Delivery
	d.Reason, d.AtNs = uint8(min(r.Uvarint(), 255)), r.Varint()
	return d
}

func digest(parts ...[]byte) uint64 {
	f := fnv.New64a()
	for _, p := range parts {
		f.Write(p)
		f.Write([]byte{0})
	}
	return mix64(f.Sum64())
}

func groupHash(g *group) uint64 { return digest([]byte("group"), appendGroup(nil, g)) }
func entryHash(name string, e *entry) uint64 {
	return digest([]byte("pending"), []byte(name), appendEntry(nil, e))
}
func deadHash(name string, d *DeadLetter) uint64 {
	return digest([]byte("dead"), []byte(name), appendDead(nil, d))
}

// Answer is the reply to every command and query; each fills its fields.
type Answer struct {
	Groups     []Group     // create and describe: one; list: a page
	Next       string      // list: pass as after for the next page; "" at the end
	Assignment *Assignment // join and heartbeat
	Deliveries []Delivery  // fetch: the messages leased; settle: the lease after
	Dead       []DeadLetter
	NextSeq    uint64 // dead-letter query: pass as after for the next page; 0 at the end
	// Items answers a batch settle, item by item in the order asked, and
	// Ready a fetchable query; the other fields are then empty.
	Items []ItemAnswer
	Ready *Readiness
}

// Assignment is what a partitioned member holds, as join and heartbeat answer it.
type Assignment struct {
	Member     string
	Generation uint64 // the member's: commits must carry it
	Assigned   []int  // partitions it owns and keeps
	Revoking   []int  // partitions it owns but must release (commit, then heartbeat with them)
	DeadlineNs int64  // its session ends here
}

// Delivery is one leased message of a competing group.
type Delivery struct {
	Handle
	Member     string
	DeadlineNs int64
	Message    topics.Message // empty in a settle's answer
}

// Group is a group as clients see it.
type Group struct {
	Def
	CreatedNs   int64
	Partitions  int
	Generation  uint64
	Members     []MemberView    // describe only
	Offsets     []PartitionView // describe only
	Pending     int             // competing: messages leased or waiting
	DeadLetters int
	Stats       Stats
}

// MemberView is one member in a describe: partitioned members, or the
// competing members that hold leases.
type MemberView struct {
	ID         string
	Generation uint64
	DeadlineNs int64
	Assigned   []int
	Revoking   []int
	InFlight   int
}

// PartitionView is one partition in a describe.
type PartitionView struct {
	P      int
	Owner  string // partitioned: "" while released and not yet assigned
	Target string
	Offset uint64 // partitioned: committed; competing: the ack floor
	First  uint64 // the topic's bounds now
	End    uint64
	Lag    uint64 // End minus the later of Offset and First
}

// An encoded answer opens with its version: 1 for the fields above Items,
// 2 for a batch's items alone, 3 for a readiness alone. Answers saved in
// sessions before batches keep their bytes and decode as version 1.
const (
	answerVersion      = 1
	answerVersionItems = 2
	answerVersionReady = 3
)

// Encode lays the answer out field by field.
func (a *Answer) Encode() []byte {
	switch {
	case a.Items != nil:
		return appendItems([]byte{answerVersionItems}, a.Items)
	case a.Ready != nil:
		return appendReadiness([]byte{answerVersionReady}, a.Ready)
	}
	b := binary.AppendUvarint([]byte{answerVersion}, uint64(len(a.Groups)))
	for i := range a.Groups {
		b = appendView(b, &a.Groups[i])
	}
	b = module.AppendBytes(b, []byte(a.Next))
	b = appendFlag(b, a.Assignment != nil)
	if s := a.Assignment; s != nil {
		b = module.AppendBytes(b, []byte(s.Member))
		b = binary.AppendUvarint(b, s.Generation)
		b = appendInts(appendInts(b, s.Assigned), s.Revoking)
		b = binary.AppendVarint(b, s.DeadlineNs)
	}
	b = binary.AppendUvarint(b, uint64(len(a.Deliveries)))
	for i := range a.Deliveries {
		d := &a.Deliveries[i]
		b = appendHandle(b, d.Handle)
		b = module.AppendBytes(b, []byte(d.Member))
		b = binary.AppendVarint(b, d.DeadlineNs)
		b = appendMessage(b, &d.Message)
	}
	b = binary.AppendUvarint(b, uint64(len(a.Dead)))
	for i := range a.Dead {
		b = appendDead(b, &a.Dead[i])
	}
	return binary.AppendUvarint(b, a.NextSeq)
}

// DecodeAnswer reads what Answer.Encode wrote.
func DecodeAnswer(data []byte) (Answer, error) {
	if len(data) > 0 && (data[0] == answerVersionItems || data[0] == answerVersionReady) {
		r := &module.Reader{B: data[1:]}
		var a Answer
		if data[0] == answerVersionItems {
			a.Items = readItems(r)
		} else {
			a.Ready = readReadiness(r)
		}
		return a, r.Done("group answer")
	}
	if len(data) == 0 || data[0] != answerVersion {
		return Answer{}, fmt.Errorf("group answer: %w: version", module.ErrMalformed)
	}
	r := &module.Reader{B: data[1:]}
	var a Answer
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		a.Groups = append(a.Groups, readView(r))
	}
	a.Next = r.String()
	if readFlag(r) {
		a.Assignment = &Assignment{Member: r.String(), Generation: r.Uvarint()}
		a.Assignment.Assigned, a.Assignment.Revoking = readInts(r), readInts(r)
		a.Assignment.DeadlineNs = r.Varint()
	}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		d := Delivery{Handle: readHandle(r), Member: r.String(), DeadlineNs: r.Varint()}
		d.Message = readMessage(r)
		a.Deliveries = append(a.Deliveries, d)
	}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		a.Dead = append(a.Dead, readDead(r))
	}
	a.NextSeq = r.Uvarint()
	return a, r.Done("group answer")
}

func appendView(b []byte, v *Group) []byte {
	b = appendDef(b, &v.Def)
	b = binary.AppendVarint(b, v.CreatedNs)
	for _, x := range []uint64{uint64(v.Partitions), v.Generation, uint64(v.Pending), uint64(v.DeadLetters)} {
		b = binary.AppendUvarint(b, x)
	}
	for _, p := range v.Stats.fields() {
		b = binary.AppendUvarint(b, *p)
	}
	b = binary.AppendUvarint(b, uint64(len(v.Members)))
	for i := range v.Members {
		m := &v.Members[i]
		b = module.AppendBytes(b, []byte(m.ID))
		b = binary.AppendUvarint(b, m.Generation)
		b = binary.AppendVarint(b, m.DeadlineNs)
		b = appendInts(appendInts(b, m.Assigned), m.Revoking)
		b = binary.AppendUvarint(b, uint64(m.InFlight))
	}
	b = binary.AppendUvarint(b, uint64(len(v.Offsets)))
	for i := range v.Offsets {
		o := &v.Offsets[i]
		b = binary.AppendUvarint(b, uint64(o.P))
		b = module.AppendBytes(b, []byte(o.Owner))
		b = module.AppendBytes(b, []byte(o.Target))
		for _, x := range []uint64{o.Offset, o.First, o.End, o.Lag} {
			b = binary.AppendUvarint(b, x)
		}
	}
	return b
}

func readView(r *module.Reader) Group {
	v := Group{Def: readDef(r), CreatedNs: r.Varint()}
	v.Partitions, v.Generation = int(min(r.Uvarint(), 1<<30)), r.Uvarint()
	v.Pending, v.DeadLetters = int(min(r.Uvarint(), 1<<30)), int(min(r.Uvarint(), 1<<30))
	for _, p := range v.Stats.fields() {
		*p = r.Uvarint()
	}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		m := MemberView{ID: r.String(), Generation: r.Uvarint(), DeadlineNs: r.Varint()}
		m.Assigned, m.Revoking, m.InFlight = readInts(r), readInts(r), int(min(r.Uvarint(), 1<<30))
		v.Members = append(v.Members, m)
	}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		o := PartitionView{P: partition(r), Owner: r.String(), Target: r.String()}
		o.Offset, o.First, o.End, o.Lag = r.Uvarint(), r.Uvarint(), r.Uvarint(), r.Uvarint()
		v.Offsets = append(v.Offsets, o)
	}
	return v
}

func appendInts(b []byte, ps []int) []byte {
	b = binary.AppendUvarint(b, uint64(len(ps)))
	for _, p := range ps {
		b = binary.AppendUvarint(b, uint64(p))
	}
	return b
}

func readInts(r *module.Reader) []int {
	var out []int
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		out = append(out, partition(r))
	}
	return out
}

func appendMessage(b []byte, m *topics.Message) []byte {
	b = module.AppendBytes(b, []byte(m.Topic))
	b = binary.AppendUvarint(b, uint64(m.Partition))
	b = binary.AppendUvarint(b, m.Offset)
	b = appendFlag(b, m.Key != nil)
	b = module.AppendBytes(b, m.Key)
	b = module.AppendBytes(b, m.Value)
	b = binary.AppendUvarint(b, uint64(len(m.Headers)))
	for _, h := range m.Headers {
		b = module.AppendBytes(module.AppendBytes(b, []byte(h.Key)), h.Value)
	}
	b = binary.AppendUvarint(b, m.Index)
	return binary.AppendVarint(b, m.AtNs)
}

func readMessage(r *module.Reader) topics.Message {
	m := topics.Message{Topic: r.String(), Partition: partition(r), Offset: r.Uvarint()}
	keyed := readFlag(r)
	m.Key = clone(r.Bytes())
	if keyed && m.Key == nil {
		m.Key = []byte{}
	}
	m.Value = clone(r.Bytes())
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		m.Headers = append(m.Headers, topics.Header{Key: r.String(), Value: clone(r.Bytes())})
	}
	m.Index, m.AtNs = r.Uvarint(), r.Varint()
	return m
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
