package topics

import (
	"encoding/binary"
	"fmt"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Change is one thing an applied entry did, as the module reports it to
// checkers (module.Reporter).
type Change struct {
	Topic            string
	Created, Deleted bool
	Published        *Placed // a message placed
}

func (m *Module) note(c Change) { m.Note(c) }

// Query answers get, list and read.
func (m *Module) Query(kind byte, body []byte, _ int64) module.Answer {
	r := &module.Reader{B: body}
	switch kind {
	case QueryGet:
		name := r.String()
		if err := done(r, "topic get"); err != nil {
			return refusal(err)
		}
		t := m.topics[name]
		if t == nil {
			return refusal(fmt.Errorf("%w: %q", ErrNotFound, name))
		}
		return answer(Answer{Topics: []Info{t.info()}})
	case QueryList:
		after, n := r.String(), r.Uvarint()
		if err := done(r, "topic list"); err != nil {
			return refusal(err)
		}
		if n == 0 || n > uint64(m.limits.ListMax) {
			n = uint64(m.limits.ListMax)
		}
		var a Answer
		for _, name := range m.sortedNames() {
			if name <= after && after != "" {
				continue
			}
			if uint64(len(a.Topics)) == n {
				a.Next = a.Topics[len(a.Topics)-1].Name
				break
			}
			a.Topics = append(a.Topics, m.topics[name].info())
		}
		return answer(a)
	case QueryOffsetAt:
		name, p, atNs := r.String(), r.Uvarint(), r.Varint()
		if err := m.checkPartition(r, "topic offset at", name, p); err != nil {
			return refusal(err)
		}
		return answer(Answer{Placed: []Placed{{Partition: int(p), Offset: m.OffsetAt(name, int(p), atNs)}}})
	}
	name, p, from, n := r.String(), r.Uvarint(), r.Uvarint(), r.Uvarint()
	if err := m.checkPartition(r, "topic read", name, p); err != nil {
		return refusal(err)
	}
	if n == 0 || n > uint64(m.limits.ReadMax) {
		n = uint64(m.limits.ReadMax)
	}
	return answer(Answer{Messages: m.Read(name, int(p), from, int(n), readBytesMax)})
}

// checkPartition refuses a query that did not decode, names no topic held,
// or a partition the topic does not have.
func (m *Module) checkPartition(r *module.Reader, what, name string, p uint64) error {
	if err := done(r, what); err != nil {
		return err
	}
	t := m.topics[name]
	switch {
	case t == nil:
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	case p >= uint64(t.Partitions):
		return fmt.Errorf("%w: partition %d of a topic of %d", errInvalid, p, t.Partitions)
	}
	return nil
}

// Infos describes every topic, by name; only the goroutine that applies
// may call it (the node's metrics read it between rounds).
func (m *Module) Infos() []Info {
	out := make([]Info, 0, len(m.topics))
	for _, name := range m.sortedNames() {
		out = append(out, m.topics[name].info())
	}
	return out
}

// readBytesMax bounds the values one read returns (at least one message).
const readBytesMax = 4 << 20

// segmentBytesMax bounds a record Persist writes; a publish's own
// segments are bounded by its command.
const segmentBytesMax = 1 << 20

// Persist writes every record (after a restore): each partition's messages
// in segments of about segmentBytesMax.
func (m *Module) Persist(b *storage.Batch) {
	for _, name := range m.sortedNames() {
		t := m.topics[name]
		m.saveTopic(b, t)
		for p := range t.parts {
			part := &t.parts[p]
			part.segs = nil
			var seg segment
			flush := func() {
				if seg.n > 0 {
					b.Put(segmentKey(name, p, seg.first), seg.rec)
					part.segs = append(part.segs, seg.first)
				}
				seg = segment{}
			}
			for i := range part.live() {
				seg.add(&part.live()[i])
				if len(seg.rec) >= segmentBytesMax {
					flush()
				}
			}
			flush()
		}
	}
}

// Clear deletes every record (before a snapshot replaces them).
func (m *Module) Clear(b *storage.Batch) {
	for _, name := range m.sortedNames() {
		m.deleteRecords(b, m.topics[name])
	}
}

// deleteRecords deletes t's record and its segments.
func (m *Module) deleteRecords(b *storage.Batch, t *topic) {
	b.Delete(topicKey(t.Name))
	for p := range t.parts {
		for _, first := range t.parts[p].segs {
			b.Delete(segmentKey(t.Name, p, first))
		}
	}
}

// Load reads the topics, then their messages in key order (partition,
// then offset), checking that each partition holds exactly first..end-1.
func (m *Module) Load(disk storage.Reader) error {
	topics := map[string]*topic{}
	err := module.ScanRecords(disk, prefixTopic, func(name, payload []byte) error {
		r := &module.Reader{B: payload}
		t := readTopic(r)
		if r.Err == nil && t.Name != string(name) {
			r.Fail("topic record %q holds %q", name, t.Name)
		}
		if err := r.Done("topic record"); err != nil {
			return err
		}
		topics[t.Name] = t
		return nil
	})
	if err != nil {
		return err
	}
	ends := map[*partition]uint64{} // where each partition's next segment must start
	err = module.ScanRecords(disk, prefixSegment, func(key, payload []byte) error {
		t, p, first, err := segmentOf(topics, key)
		if err != nil {
			return err
		}
		part := &t.parts[p]
		end, ok := ends[part]
		if !ok && first <= part.first { // the oldest may hold messages retention dropped
			end = first
		}
		if first != end {
			return fmt.Errorf("%w: topic %q partition %d: a segment at %d, want %d", ErrCorrupt, t.Name, p, first, end)
		}
		ends[part], err = part.load(t.Name, p, first, payload)
		return err
	})
	if err != nil {
		return err
	}
	for name, t := range topics {
		for p := range t.parts {
			if part := &t.parts[p]; part.first+uint64(len(part.msgs)) != part.end {
				return fmt.Errorf("%w: topic %q partition %d holds %d messages from %d, want to %d", ErrCorrupt, name, p, len(part.msgs), part.first, part.end)
			}
		}
	}
	m.install(topics)
	return nil
}

// segmentOf parses a segment's key: its topic (which must be loaded), its
// partition and its first offset.
func segmentOf(topics map[string]*topic, key []byte) (*topic, int, uint64, error) {
	if len(key) < 11 || key[len(key)-11] != '/' {
		return nil, 0, 0, fmt.Errorf("%w: segment key %q", ErrCorrupt, key)
	}
	name := string(key[:len(key)-11])
	p, first := int(binary.BigEndian.Uint16(key[len(key)-10:])), binary.BigEndian.Uint64(key[len(key)-8:])
	t := topics[name]
	if t == nil || p >= len(t.parts) {
		return nil, 0, 0, fmt.Errorf("%w: segment of unknown topic or partition %q/%d", ErrCorrupt, name, p)
	}
	return t, p, first, nil
}

// load appends the messages of the segment at first, skipping those
// retention dropped, and returns the offset after its last.
func (part *partition) load(name string, p int, first uint64, rec []byte) (uint64, error) {
	next := first
	r := &module.Reader{B: rec}
	for len(r.B) > 0 && r.Err == nil {
		msg := readMessage(r, name)
		switch {
		case r.Err != nil:
		case msg.Partition != p || msg.Offset != next || next >= part.end:
			r.Fail("message %q/%d/%d out of place", name, msg.Partition, msg.Offset)
		case next >= part.first:
			part.msgs = append(part.msgs, msg)
			part.bytes += msgSize(&msg)
		}
		next++
	}
	if err := r.Done("topic segment"); err != nil {
		return 0, err
	}
	if next == first {
		return 0, fmt.Errorf("%w: topic %q partition %d: an empty segment at %d", ErrCorrupt, name, p, first)
	}
	part.segs = append(part.segs, first)
	return next, nil
}

// install replaces the table, recomputing the digest and byte count.
func (m *Module) install(topics map[string]*topic) {
	m.topics, m.digest, m.bytes, m.askedNs = topics, 0, 0, 0
	for _, t := range topics {
		m.digest ^= topicHash(t)
		for p := range t.parts {
			for i := range t.parts[p].live() {
				msg := &t.parts[p].live()[i]
				m.digest ^= messageHash(msg)
				m.bytes += msgSize(msg)
			}
		}
	}
}

// frozen is the table as of a freeze: messages are never changed in place,
// so the partitions' live slices stay valid while later publishes append.
type frozen struct {
	topics []*topic // copies of the topics, partitions sliced at freeze
}

// Freeze captures the table without copying messages.
func (m *Module) Freeze() module.Frozen {
	var f frozen
	for _, name := range m.sortedNames() {
		t := *m.topics[name]
		t.parts = make([]partition, len(m.topics[name].parts))
		for p, part := range m.topics[name].parts {
			live := part.live()
			t.parts[p] = partition{msgs: live[:len(live):len(live)], first: part.first, end: part.end, bytes: part.bytes}
		}
		f.topics = append(f.topics, &t)
	}
	return f
}

// Encode writes the snapshot section.
func (f frozen) Encode() []byte {
	b := binary.AppendUvarint(nil, uint64(len(f.topics)))
	for _, t := range f.topics {
		b = appendTopic(b, t)
		for p := range t.parts {
			live := t.parts[p].live()
			b = binary.AppendUvarint(b, uint64(len(live)))
			for i := range live {
				b = appendMessage(b, &live[i])
			}
		}
	}
	return b
}

// Restore replaces the table with a snapshot's; none (a snapshot from
// before topics) is an empty table.
func (m *Module) Restore(section []byte) error {
	topics := map[string]*topic{}
	if len(section) > 0 {
		r := &module.Reader{B: section}
		for n := r.Count(); n > 0 && r.Err == nil; n-- {
			t := readTopic(r)
			for p := 0; r.Err == nil && p < len(t.parts); p++ {
				part := &t.parts[p]
				for k := r.Count(); k > 0 && r.Err == nil; k-- {
					msg := readMessage(r, t.Name)
					if r.Err == nil && (msg.Partition != p || msg.Offset != part.first+uint64(len(part.msgs))) {
						r.Fail("message %q/%d/%d out of place", t.Name, p, msg.Offset)
					}
					part.msgs = append(part.msgs, msg)
					part.bytes += msgSize(&msg)
				}
				if r.Err == nil && part.first+uint64(len(part.msgs)) != part.end {
					r.Fail("topic %q partition %d: %d messages for offsets %d..%d", t.Name, p, len(part.msgs), part.first, part.end)
				}
			}
			if r.Err == nil && topics[t.Name] != nil {
				r.Fail("topic %q repeated", t.Name)
			}
			topics[t.Name] = t
		}
		if err := r.Done("topic table"); err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}
	m.install(topics)
	return nil
}
