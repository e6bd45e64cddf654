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

// Persist writes every record (after a restore).
func (m *Module) Persist(b *storage.Batch) {
	for _, name := range m.sortedNames() {
		t := m.topics[name]
		m.saveTopic(b, t)
		for p := range t.parts {
			for _, msg := range t.parts[p].live() {
				b.Put(messageKey(name, p, msg.Offset), appendMessage(nil, &msg))
			}
		}
	}
}

// Clear deletes every record (before a snapshot replaces them).
func (m *Module) Clear(b *storage.Batch) {
	for _, name := range m.sortedNames() {
		t := m.topics[name]
		b.Delete(topicKey(name))
		for p := range t.parts {
			for _, msg := range t.parts[p].live() {
				b.Delete(messageKey(name, p, msg.Offset))
			}
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
	next := map[string][]uint64{} // per topic, the offset each partition's next record must have
	for name, t := range topics {
		for p := range t.parts {
			next[name] = append(next[name], t.parts[p].first)
		}
	}
	err = module.ScanRecords(disk, prefixMessage, func(key, payload []byte) error {
		if len(key) < 11 || key[len(key)-11] != '/' {
			return fmt.Errorf("%w: message key %q", ErrCorrupt, key)
		}
		name := string(key[:len(key)-11])
		p, off := int(binary.BigEndian.Uint16(key[len(key)-10:])), binary.BigEndian.Uint64(key[len(key)-8:])
		t := topics[name]
		r := &module.Reader{B: payload}
		msg := readMessage(r, name)
		switch {
		case r.Err != nil:
		case t == nil || p >= len(t.parts):
			r.Fail("message of unknown topic or partition %q/%d", name, p)
		case msg.Partition != p || msg.Offset != off || off != next[name][p] || off >= t.parts[p].end:
			r.Fail("message %q/%d/%d out of place", name, p, off)
		}
		if err := r.Done("message record"); err != nil {
			return err
		}
		next[name][p]++
		t.parts[p].msgs = append(t.parts[p].msgs, msg)
		t.parts[p].bytes += msgSize(&msg)
		return nil
	})
	if err != nil {
		return err
	}
	for name, t := range topics {
		for p := range t.parts {
			if next[name][p] != t.parts[p].end {
				return fmt.Errorf("%w: topic %q partition %d holds offsets to %d, want to %d", ErrCorrupt, name, p, next[name][p], t.parts[p].end)
			}
		}
	}
	m.install(topics)
	return nil
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
