package topics

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Command kinds of the topics module. Clients send the first three; the
// leader proposes age pruning itself (Due). Queries are served after a
// ReadIndex.
const (
	CmdCreate  byte = 112
	CmdDelete  byte = 113
	CmdPublish byte = 114
	CmdPrune   byte = 115 // the leader's: drop messages past their topic's age

	QueryGet      byte = 120
	QueryList     byte = 121
	QueryRead     byte = 122
	QueryOffsetAt byte = 123 // the first offset at or after a time, answered as one Placed
)

// Records on disk: one per topic, and segments: the messages one publish
// placed in one partition, in one record keyed by its first offset. "t/" is
// the tokens module's (the simulator's first topics run found both loading
// each other's records).
//
// A record per message cost three quarters of publish throughput: 100
// messages a publish were 100 memtable inserts per replica, flushed and
// compacted again, and deleted again by retention (26k against 76-91k
// messages/s with no records at all, BenchmarkTopicPublish). A segment of a
// batch is one insert, and its bytes go to Badger's value log.
var (
	prefix        = []byte("p/")
	prefixTopic   = []byte("p/t/")
	prefixSegment = []byte("p/s/")
)

// pruneEveryNs is how often the leader looks for messages past their age.
const pruneEveryNs = 1e9

// Module is the topic table as a replicated module.
type Module struct {
	limits Limits
	topics map[string]*topic
	bytes  int64 // every retained message's size
	digest uint64

	askedNs int64 // the leader's last prune proposal; not replicated

	module.Reports[Change] // what the entry being applied did (module.Reporter)

	planted planted // defects a test plants (planted_bugs.go); nothing in production builds
}

// NewModule returns an empty topic table.
func NewModule(limits Limits) *Module {
	return &Module{limits: limits, topics: map[string]*topic{}}
}

func (m *Module) Name() string       { return "topics" }
func (m *Module) Version() uint64    { return 1 }
func (m *Module) Kinds() []byte      { return []byte{CmdCreate, CmdDelete, CmdPublish, CmdPrune} }
func (m *Module) QueryKinds() []byte { return []byte{QueryGet, QueryList, QueryRead, QueryOffsetAt} }
func (m *Module) Prefixes() [][]byte { return [][]byte{prefix} }
func (m *Module) Hash() uint64       { return m.digest }

// Create asks to add a topic.
func Create(d Def) module.Command { return module.Command{Kind: CmdCreate, Body: appendDef(nil, &d)} }

// Delete asks to remove a topic and its messages.
func Delete(name string) module.Command {
	return module.Command{Kind: CmdDelete, Body: module.AppendBytes(nil, []byte(name))}
}

// Publish asks to append msgs to topic, in order.
func Publish(topic string, msgs []In) module.Command {
	n := len(topic) + binary.MaxVarintLen64
	for i := range msgs {
		n += messageBytesMax(&Message{Key: msgs[i].Key, Value: msgs[i].Value, Headers: msgs[i].Headers})
	}
	b := module.AppendBytes(make([]byte, 0, n), []byte(topic))
	b = binary.AppendUvarint(b, uint64(len(msgs)))
	for i := range msgs {
		b = appendIn(b, &msgs[i])
	}
	return module.Command{Kind: CmdPublish, Body: b}
}

// Get asks for one topic's description; List for a page of them.
func Get(name string) module.Command {
	return module.Command{Kind: QueryGet, Body: module.AppendBytes(nil, []byte(name))}
}

func List(after string, n int) module.Command {
	return module.Command{Kind: QueryList, Body: binary.AppendUvarint(module.AppendBytes(nil, []byte(after)), uint64(n))}
}

// Read asks for up to max messages of topic's partition p from offset from.
func Read(topic string, p int, from uint64, max int) module.Command {
	b := module.AppendBytes(nil, []byte(topic))
	b = binary.AppendUvarint(b, uint64(p))
	b = binary.AppendUvarint(b, from)
	return module.Command{Kind: QueryRead, Body: binary.AppendUvarint(b, uint64(max))}
}

// OffsetAt asks for the first offset of topic's partition p published at
// or after atNs (the partition's end when none); the answer holds it as
// Placed[0].
func OffsetAt(topic string, p int, atNs int64) module.Command {
	b := module.AppendBytes(nil, []byte(topic))
	b = binary.AppendUvarint(b, uint64(p))
	return module.Command{Kind: QueryOffsetAt, Body: binary.AppendVarint(b, atNs)}
}

type publishCmd struct {
	topic string
	msgs  []In
}

// decodePublish decodes a publish whose messages own their bytes.
func decodePublish(body []byte) (publishCmd, error) { return decodePublishWith(body, readIn) }

// decodePublishView decodes a publish whose messages alias body, for
// checks that keep nothing.
func decodePublishView(body []byte) (publishCmd, error) { return decodePublishWith(body, readInView) }

func decodePublishWith(body []byte, read func(*module.Reader) In) (publishCmd, error) {
	r := &module.Reader{B: body}
	c := publishCmd{topic: r.String()}
	if n := r.Count(); r.Err == nil {
		c.msgs = make([]In, 0, n)
		for ; n > 0 && r.Err == nil; n-- {
			c.msgs = append(c.msgs, read(r))
		}
	}
	return c, done(r, "publish")
}

func done(r *module.Reader, what string) error {
	if err := r.Done(what); err != nil {
		return fmt.Errorf("%w: %v", errInvalid, err)
	}
	return nil
}

// Validate refuses malformed or oversized commands before they are proposed.
func (m *Module) Validate(kind byte, body []byte) module.Answer {
	var err error
	switch kind {
	case CmdCreate:
		r := &module.Reader{B: body}
		d := readDef(r)
		if err = done(r, "topic definition"); err == nil {
			err = m.limits.checkDef(&d)
		}
	case CmdDelete:
		r := &module.Reader{B: body}
		_ = r.String()
		err = done(r, "topic name")
	case CmdPublish:
		var c publishCmd
		if c, err = decodePublishView(body); err == nil {
			err = m.checkPublish(&c)
		}
	default:
		err = fmt.Errorf("%w: topic command %d is the leader's own", errInvalid, kind)
	}
	if err != nil {
		return refusal(err)
	}
	return module.Answer{}
}

func (m *Module) checkPublish(c *publishCmd) error {
	if len(c.msgs) == 0 || len(c.msgs) > m.limits.BatchMax {
		return fmt.Errorf("%w: %d messages in a publish: want 1 to %d", errInvalid, len(c.msgs), m.limits.BatchMax)
	}
	for i := range c.msgs {
		if err := m.limits.checkIn(&c.msgs[i]); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return nil
}

// Apply applies one topic command at replicated time env.NowNs.
func (m *Module) Apply(env *module.Env, kind byte, body []byte) module.Answer {
	switch kind {
	case CmdCreate:
		r := &module.Reader{B: body}
		d := readDef(r)
		assert.That(r.Done("topic definition") == nil, "topic create at %d does not decode", env.Index)
		t, err := m.create(env, d)
		if err != nil {
			return refusal(err)
		}
		return answer(Answer{Topics: []Info{t.info()}})
	case CmdDelete:
		r := &module.Reader{B: body}
		name := r.String()
		assert.That(r.Done("topic name") == nil, "topic delete at %d does not decode", env.Index)
		t := m.topics[name]
		if t == nil {
			return refusal(fmt.Errorf("%w: %q", ErrNotFound, name))
		}
		info := t.info()
		m.remove(env, t)
		return answer(Answer{Topics: []Info{info}})
	case CmdPublish:
		c, err := decodePublish(body)
		assert.That(err == nil, "publish at %d does not decode: %v", env.Index, err)
		placed, err := m.publish(env, c.topic, c.msgs)
		if err != nil {
			return refusal(err)
		}
		return answer(Answer{Placed: placed, Index: env.Index})
	case CmdPrune:
		m.prune(env)
		return module.Answer{}
	}
	assert.That(false, "topic command %d at %d", kind, env.Index)
	return module.Answer{}
}

func (m *Module) create(env *module.Env, d Def) (*topic, error) {
	if err := m.limits.checkDef(&d); err != nil {
		return nil, err
	}
	if m.topics[d.Name] != nil {
		return nil, fmt.Errorf("%w: %q", ErrExists, d.Name)
	}
	if len(m.topics) >= m.limits.TopicsMax {
		return nil, fmt.Errorf("%w: %d topics held", ErrFull, len(m.topics))
	}
	t := &topic{Def: d, createdNs: env.NowNs, parts: make([]partition, d.Partitions)}
	m.topics[d.Name] = t
	m.digest ^= topicHash(t)
	m.saveTopic(env.Batch, t)
	m.note(Change{Topic: d.Name, Created: true})
	return t, nil
}

func (m *Module) remove(env *module.Env, t *topic) {
	for p := range t.parts {
		for _, msg := range t.parts[p].live() {
			m.digest ^= messageHash(&msg)
			m.bytes -= msgSize(&msg)
		}
	}
	m.digest ^= topicHash(t)
	m.deleteRecords(env.Batch, t)
	delete(m.topics, t.Name)
	m.note(Change{Topic: t.Name, Deleted: true})
}

// Placed is where one published message went.
type Placed struct {
	Partition int
	Offset    uint64
}

// publish appends msgs to topic in order, all or none: a batch over the
// store's byte bound is refused whole.
func (m *Module) publish(env *module.Env, name string, msgs []In) ([]Placed, error) {
	t := m.topics[name]
	if t == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	var size int64
	for i := range msgs {
		if msgs[i].Partition >= t.Partitions {
			return nil, fmt.Errorf("%w: partition %d of a topic of %d", errInvalid, msgs[i].Partition, t.Partitions)
		}
		size += int64(len(msgs[i].Key) + len(msgs[i].Value))
		for _, h := range msgs[i].Headers {
			size += int64(len(h.Key) + len(h.Value))
		}
	}
	if m.bytes+size > m.limits.TotalBytesMax {
		return nil, fmt.Errorf("%w: %d bytes held, %d more would pass %d", ErrFull, m.bytes, size, m.limits.TotalBytesMax)
	}
	m.digest ^= topicHash(t)
	placed := make([]Placed, len(msgs))
	segs := make([]segment, t.Partitions) // this publish's records, by partition
	for i := range msgs {
		in := &msgs[i]
		p := in.Partition
		switch {
		case p >= 0:
		case in.Key != nil:
			p = KeyPartition(in.Key, t.Partitions)
		default:
			p = int(t.rr % uint64(t.Partitions))
			t.rr++
		}
		part := &t.parts[p]
		// The bytes are the decoded command's own (readIn copies them), so
		// the message keeps them without another copy.
		msg := Message{Topic: t.Name, Partition: p, Offset: m.plantOffset(part), Key: in.Key, Value: in.Value,
			Headers: in.Headers, Index: env.Index, AtNs: env.NowNs}
		part.msgs = append(part.msgs, msg)
		part.end++
		part.bytes += msgSize(&msg)
		m.bytes += msgSize(&msg)
		t.published++
		m.digest ^= segs[p].add(&msg)
		placed[i] = Placed{Partition: p, Offset: msg.Offset}
		m.note(Change{Topic: t.Name, Published: &placed[i]})
	}
	for p := range segs {
		if segs[p].n > 0 {
			env.Batch.Put(segmentKey(t.Name, p, segs[p].first), segs[p].rec)
			t.parts[p].segs = append(t.parts[p].segs, segs[p].first)
			// Retention after the whole batch keeps what retention message by
			// message would: it drops oldest first, while over a bound.
			m.retain(env, t, p, 0)
		}
	}
	m.digest ^= topicHash(t)
	m.saveTopic(env.Batch, t)
	return placed, nil
}

// retain drops partition p's oldest messages past the topic's count and
// byte bounds, and, when beforeNs is set, those published before it, then
// the records left holding none.
func (m *Module) retain(env *module.Env, t *topic, p int, beforeNs int64) {
	part := &t.parts[p]
	for part.end > part.first {
		oldest := &part.msgs[part.head]
		if int64(part.end-part.first) <= t.RetainMessages && part.bytes <= t.RetainBytes && oldest.AtNs >= beforeNs {
			break
		}
		msg := part.dropOldest()
		m.bytes -= msgSize(&msg)
		m.digest ^= messageHash(&msg)
	}
	for len(part.segs) > 0 && part.segEnd(0) <= part.first {
		env.Batch.Delete(segmentKey(t.Name, p, part.segs[0]))
		part.segs = part.segs[1:]
	}
}

// prune drops every message past its topic's age at env.NowNs.
func (m *Module) prune(env *module.Env) {
	for _, name := range m.sortedNames() {
		t := m.topics[name]
		if t.RetainAgeNs == 0 {
			continue
		}
		m.digest ^= topicHash(t)
		for p := range t.parts {
			m.retain(env, t, p, env.NowNs-t.RetainAgeNs)
		}
		m.digest ^= topicHash(t)
		m.saveTopic(env.Batch, t)
	}
}

// Due proposes, on the leader, a prune once a second when some topic has
// a message past its age by the leader's clock.
func (m *Module) Due(l module.Leader) []module.Command {
	if l.NowNs-m.askedNs < pruneEveryNs {
		return nil
	}
	for _, t := range m.topics { // order does not matter: any one found is enough
		if t.RetainAgeNs == 0 {
			continue
		}
		for p := range t.parts {
			if part := &t.parts[p]; part.end > part.first && part.msgs[part.head].AtNs < l.NowNs-t.RetainAgeNs {
				m.askedNs = l.NowNs
				return []module.Command{{Kind: CmdPrune}}
			}
		}
	}
	return nil
}

// refusal maps the table's errors onto outcomes.
func refusal(err error) module.Answer {
	switch {
	case errors.Is(err, ErrNotFound):
		return module.Refuse(module.NotFound, err)
	case errors.Is(err, ErrExists):
		return module.Refuse(module.Conflict, err)
	case errors.Is(err, ErrFull), errors.Is(err, errTooLarge):
		return module.Refuse(module.TooLarge, err)
	}
	return module.Refuse(module.Invalid, err)
}

func (m *Module) sortedNames() []string { return slices.Sorted(maps.Keys(m.topics)) }

// HasTopic reports whether topic name exists (for topic hooks).
func (m *Module) HasTopic(name string) bool { return m.topics[name] != nil }

// PublishEvent publishes one message from another module's apply (a topic
// hook's event), placed by its key, as a publish command would.
func (m *Module) PublishEvent(env *module.Env, topic string, key, value []byte) error {
	in := []In{{Key: clone(key), Value: clone(value), Partition: -1}} // a message owns its bytes
	if err := m.limits.checkIn(&in[0]); err != nil {
		return err
	}
	_, err := m.publish(env, topic, in)
	return err
}

// Partitions, Bounds, Read and OffsetAt implement Log.

func (m *Module) Partitions(name string) (int, bool) {
	if t := m.topics[name]; t != nil {
		return t.Partitions, true
	}
	return 0, false
}

func (m *Module) Bounds(name string, p int) (first, end uint64) {
	if t := m.topics[name]; t != nil && p >= 0 && p < len(t.parts) {
		return t.parts[p].first, t.parts[p].end
	}
	return 0, 0
}

func (m *Module) Read(name string, p int, from uint64, max, maxBytes int) []Message {
	t := m.topics[name]
	if t == nil || p < 0 || p >= len(t.parts) || max <= 0 {
		return nil
	}
	part := &t.parts[p]
	from = max64(from, part.first)
	if from >= part.end {
		return nil
	}
	live := part.live()[from-part.first:]
	n, bytes := 0, 0
	for n < len(live) && n < max && (n == 0 || bytes+len(live[n].Value) <= maxBytes) {
		bytes += len(live[n].Value)
		n++
	}
	return slices.Clone(live[:n])
}

func (m *Module) OffsetAt(name string, p int, atNs int64) uint64 {
	t := m.topics[name]
	if t == nil || p < 0 || p >= len(t.parts) {
		return 0
	}
	part := &t.parts[p]
	live := part.live()
	i, _ := slices.BinarySearchFunc(live, atNs, func(msg Message, at int64) int {
		if msg.AtNs < at {
			return -1
		}
		return 1
	})
	return part.first + uint64(i)
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

func cloneHeaders(hs []Header) []Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]Header, len(hs))
	for i, h := range hs {
		out[i] = Header{Key: h.Key, Value: clone(h.Value)}
	}
	return out
}

func topicKey(name string) []byte { return append(append([]byte(nil), prefixTopic...), name...) }

func segmentKey(name string, p int, offset uint64) []byte {
	b := append(append(make([]byte, 0, len(prefixSegment)+len(name)+11), prefixSegment...), name...)
	b = binary.BigEndian.AppendUint16(append(b, '/'), uint16(p))
	return binary.BigEndian.AppendUint64(b, offset)
}

func (m *Module) saveTopic(b *storage.Batch, t *topic) { b.Put(topicKey(t.Name), appendTopic(nil, t)) }

func digestOf(parts ...[]byte) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func topicHash(t *topic) uint64 { return digestOf([]byte("topic"), appendTopic(nil, t)) }

func messageHash(msg *Message) uint64 { return recordHash(appendMessage(nil, msg)) }

// recordHash is the digest of a message from its encoding (appendMessage).
func recordHash(rec []byte) uint64 { return digestOf([]byte("message"), rec) }
