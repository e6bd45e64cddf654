package topics

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/aspen-db/aspen/core/module"
)

// Encodings, field by field (strings and bytes length-prefixed):
//
//	def:     name | partitions uvarint | retain messages varint | retain bytes varint | retain age varint
//	in:      has key byte | key | value | header count uvarint | (key | value)... | partition varint
//	message: partition uvarint | offset uvarint | has key byte | key | value | headers | index uvarint | at varint
//	         (the topic is the record's key; in snapshots, its section)
//	topic:   def | created varint | rr uvarint | published uvarint | (first uvarint | end uvarint) per partition
//	snapshot: topic count uvarint | (topic | (message count uvarint | messages) per partition)...

// ErrCorrupt marks a record or snapshot that does not decode.
var ErrCorrupt = errors.New("topic table does not decode")

func appendDef(b []byte, d *Def) []byte {
	b = module.AppendBytes(b, []byte(d.Name))
	b = binary.AppendUvarint(b, uint64(d.Partitions))
	b = binary.AppendVarint(b, d.RetainMessages)
	b = binary.AppendVarint(b, d.RetainBytes)
	return binary.AppendVarint(b, d.RetainAgeNs)
}

func readDef(r *module.Reader) Def {
	d := Def{Name: r.String()}
	parts := r.Uvarint()
	if parts > 1<<16 {
		r.Fail("%d partitions", parts)
	}
	d.Partitions = int(parts)
	d.RetainMessages, d.RetainBytes, d.RetainAgeNs = r.Varint(), r.Varint(), r.Varint()
	return d
}

func appendKey(b, key []byte) []byte {
	if key == nil {
		return append(b, 0)
	}
	return module.AppendBytes(append(b, 1), key)
}

func readKey(r *module.Reader) []byte {
	if k := readKeyView(r); k != nil {
		return append([]byte{}, k...)
	}
	return nil
}

// readKeyView reads a key aliasing the reader's bytes (nil: no key).
func readKeyView(r *module.Reader) []byte {
	switch f := r.Uvarint(); f {
	case 0:
		return nil
	case 1:
		if b := r.Bytes(); b != nil {
			return b
		}
		return []byte{}
	default:
		r.Fail("key flag %d", f)
		return nil
	}
}

func appendHeaders(b []byte, hs []Header) []byte {
	b = binary.AppendUvarint(b, uint64(len(hs)))
	for _, h := range hs {
		b = module.AppendBytes(module.AppendBytes(b, []byte(h.Key)), h.Value)
	}
	return b
}

func readHeaders(r *module.Reader) []Header {
	var hs []Header
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		hs = append(hs, Header{Key: r.String(), Value: clone(r.Bytes())})
	}
	return hs
}

func appendIn(b []byte, m *In) []byte {
	b = appendKey(b, m.Key)
	b = module.AppendBytes(b, m.Value)
	b = appendHeaders(b, m.Headers)
	return binary.AppendVarint(b, int64(m.Partition))
}

// readIn reads a message that owns its bytes: one copy of key, value and
// header values together.
func readIn(r *module.Reader) In {
	m := readInView(r)
	if r.Err != nil {
		return m
	}
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Value)
	}
	buf := make([]byte, 0, n)
	own := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		buf = append(buf, b...)
		return buf[len(buf)-len(b) : len(buf) : len(buf)]
	}
	m.Key, m.Value = own(m.Key), own(m.Value)
	if m.Value == nil {
		m.Value = []byte{}
	}
	for i := range m.Headers {
		m.Headers[i].Value = own(m.Headers[i].Value)
	}
	return m
}

// readInView reads a message whose bytes alias the reader's.
func readInView(r *module.Reader) In {
	m := In{Key: readKeyView(r), Value: r.Bytes()}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		m.Headers = append(m.Headers, Header{Key: r.String(), Value: r.Bytes()})
	}
	p := r.Varint()
	if p < -1 || p > 1<<16 {
		r.Fail("partition %d", p)
	}
	m.Partition = int(p)
	return m
}

// messageBytesMax is the most appendMessage can add for m.
func messageBytesMax(m *Message) int {
	n := len(m.Key) + len(m.Value) + 6*binary.MaxVarintLen64
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 2*binary.MaxVarintLen64
	}
	return n
}

func appendMessage(b []byte, m *Message) []byte {
	b = binary.AppendUvarint(b, uint64(m.Partition))
	b = binary.AppendUvarint(b, m.Offset)
	b = appendKey(b, m.Key)
	b = module.AppendBytes(b, m.Value)
	b = appendHeaders(b, m.Headers)
	b = binary.AppendUvarint(b, m.Index)
	return binary.AppendVarint(b, m.AtNs)
}

func readMessage(r *module.Reader, topic string) Message {
	m := Message{Topic: topic}
	p := r.Uvarint()
	if p > 1<<16 {
		r.Fail("partition %d", p)
	}
	m.Partition, m.Offset = int(p), r.Uvarint()
	m.Key, m.Value, m.Headers = readKey(r), clone(r.Bytes()), readHeaders(r)
	if m.Value == nil {
		m.Value = []byte{}
	}
	m.Index, m.AtNs = r.Uvarint(), r.Varint()
	return m
}

func appendTopic(b []byte, t *topic) []byte {
	b = appendDef(b, &t.Def)
	b = binary.AppendVarint(b, t.createdNs)
	b = binary.AppendUvarint(b, t.rr)
	b = binary.AppendUvarint(b, t.published)
	for i := range t.parts {
		b = binary.AppendUvarint(binary.AppendUvarint(b, t.parts[i].first), t.parts[i].end)
	}
	return b
}

func readTopic(r *module.Reader) *topic {
	t := &topic{Def: readDef(r)}
	t.createdNs, t.rr, t.published = r.Varint(), r.Uvarint(), r.Uvarint()
	if r.Err != nil {
		return t
	}
	t.parts = make([]partition, t.Partitions)
	for i := range t.parts {
		t.parts[i].first, t.parts[i].end = r.Uvarint(), r.Uvarint()
		if t.parts[i].first > t.parts[i].end {
			r.Fail("partition %d: first %d after end %d", i, t.parts[i].first, t.parts[i].end)
		}
	}
	return t
}

// Info describes a topic.
type Info struct {
	Def
	CreatedNs  int64
	Published  uint64 // messages ever published
	Partitions []PartitionInfo
}

// PartitionInfo is one partition's bounds and retained bytes.
type PartitionInfo struct {
	First, End uint64
	Bytes      int64
}

func (t *topic) info() Info {
	in := Info{Def: t.Def, CreatedNs: t.createdNs, Published: t.published}
	for i := range t.parts {
		in.Partitions = append(in.Partitions, PartitionInfo{First: t.parts[i].first, End: t.parts[i].end, Bytes: t.parts[i].bytes})
	}
	return in
}

// Answer is the reply to a command or query.
type Answer struct {
	Topics   []Info    // create, delete, get, list
	Next     string    // list: the name to pass as after; "" at the end
	Placed   []Placed  // publish: where each message went, in order; offset at: the offset found
	Index    uint64    // publish: the log index that committed it
	Messages []Message // read
}

const answerVersion = 1

// Encode lays the answer out field by field.
func (a Answer) Encode() []byte {
	b := binary.AppendUvarint([]byte{answerVersion}, uint64(len(a.Topics)))
	for i := range a.Topics {
		in := &a.Topics[i]
		b = appendDef(b, &in.Def)
		b = binary.AppendVarint(b, in.CreatedNs)
		b = binary.AppendUvarint(b, in.Published)
		b = binary.AppendUvarint(b, uint64(len(in.Partitions)))
		for _, p := range in.Partitions {
			b = binary.AppendVarint(binary.AppendUvarint(binary.AppendUvarint(b, p.First), p.End), p.Bytes)
		}
	}
	b = module.AppendBytes(b, []byte(a.Next))
	b = binary.AppendUvarint(b, uint64(len(a.Placed)))
	for _, p := range a.Placed {
		b = binary.AppendUvarint(binary.AppendUvarint(b, uint64(p.Partition)), p.Offset)
	}
	b = binary.AppendUvarint(b, a.Index)
	b = binary.AppendUvarint(b, uint64(len(a.Messages)))
	for i := range a.Messages {
		b = module.AppendBytes(b, []byte(a.Messages[i].Topic))
		b = appendMessage(b, &a.Messages[i])
	}
	return b
}

// DecodeAnswer reads what Encode wrote.
func DecodeAnswer(b []byte) (Answer, error) {
	if len(b) == 0 || b[0] != answerVersion {
		return Answer{}, fmt.Errorf("topic answer: %w: version", module.ErrMalformed)
	}
	r := &module.Reader{B: b[1:]}
	var a Answer
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		in := Info{Def: readDef(r), CreatedNs: r.Varint(), Published: r.Uvarint()}
		for k := r.Count(); k > 0 && r.Err == nil; k-- {
			in.Partitions = append(in.Partitions, PartitionInfo{First: r.Uvarint(), End: r.Uvarint(), Bytes: r.Varint()})
		}
		a.Topics = append(a.Topics, in)
	}
	a.Next = r.String()
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		a.Placed = append(a.Placed, Placed{Partition: int(r.Uvarint()), Offset: r.Uvarint()})
	}
	a.Index = r.Uvarint()
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		topic := r.String()
		a.Messages = append(a.Messages, readMessage(r, topic))
	}
	return a, r.Done("topic answer")
}

func answer(a Answer) module.Answer { return module.Answer{Data: a.Encode(), Value: a} }

func (m *Module) DecodeAnswer(data []byte) (any, error) { return DecodeAnswer(data) }
