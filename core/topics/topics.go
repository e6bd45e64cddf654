// Package topics is the replicated message log: topics of N partitions,
// each an append-only sequence of messages with dense offsets in commit
// order. A publish is a command like any write, so a message is durable
// exactly when its entry commits, and every replica numbers it the same.
// Retention by count and bytes happens in the publish that overflows a
// partition; retention by age happens when the leader proposes a prune on
// replicated time. Consumer groups (core/groups) read through Log.
package topics

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
)

// Def is a topic as a client creates it.
type Def struct {
	Name       string
	Partitions int
	// Retention: a partition keeps at most RetainMessages messages and
	// RetainBytes bytes of keys and values, and none older than RetainAgeNs
	// (0: no age limit). The oldest go first.
	RetainMessages int64
	RetainBytes    int64
	RetainAgeNs    int64
}

// Limits bound the table and every command.
type Limits struct {
	TopicsMax         int
	PartitionsMax     int
	NameBytesMax      int
	KeyBytesMax       int
	MessageBytesMax   int // key, value and headers of one message
	HeadersMax        int
	BatchMax          int   // messages one publish carries
	RetainMessagesMax int64 // per partition
	RetainBytesMax    int64 // per partition
	TotalBytesMax     int64 // every partition of every topic: a publish past it is refused, not made room for
	ReadMax           int   // messages one read returns
	ListMax           int
}

// DefaultLimits returns the limits a node uses unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{TopicsMax: 1000, PartitionsMax: 256, NameBytesMax: 128, KeyBytesMax: 1024, MessageBytesMax: 256 << 10,
		HeadersMax: 32, BatchMax: 1000, RetainMessagesMax: 10_000_000, RetainBytesMax: 1 << 30, TotalBytesMax: 1 << 30,
		ReadMax: 1000, ListMax: 1000}
}

// Retention defaults for a topic created without its own.
const (
	RetainMessagesDefault = 1_000_000
	RetainBytesDefault    = 64 << 20
)

// Expected refusals; the module maps them onto outcomes.
var (
	ErrNotFound = errors.New("topic not found")
	ErrExists   = errors.New("topic already exists")
	ErrFull     = errors.New("topic store full")
	errInvalid  = errors.New("invalid topic command")
	errTooLarge = errors.New("over a topic limit")
)

func (l Limits) checkDef(d *Def) error {
	switch {
	case d.Name == "" || len(d.Name) > l.NameBytesMax || strings.ContainsAny(d.Name, "/\x00"):
		return fmt.Errorf("%w: name must be 1 to %d bytes without '/' or NUL, got %q", errInvalid, l.NameBytesMax, d.Name)
	case d.Partitions < 1 || d.Partitions > l.PartitionsMax:
		return fmt.Errorf("%w: %d partitions: want 1 to %d", errInvalid, d.Partitions, l.PartitionsMax)
	case d.RetainMessages < 1 || d.RetainMessages > l.RetainMessagesMax:
		return fmt.Errorf("%w: retain %d messages: want 1 to %d", errInvalid, d.RetainMessages, l.RetainMessagesMax)
	case d.RetainBytes < 1 || d.RetainBytes > l.RetainBytesMax:
		return fmt.Errorf("%w: retain %d bytes: want 1 to %d", errInvalid, d.RetainBytes, l.RetainBytesMax)
	case d.RetainAgeNs < 0:
		return fmt.Errorf("%w: negative retention age", errInvalid)
	}
	return nil
}

// In is one message as a publisher sends it.
type In struct {
	Key     []byte // nil: no key, the partition goes round-robin
	Value   []byte
	Headers []Header
	// Partition, when not -1, names the partition; else the key's hash (or
	// round-robin without a key) chooses.
	Partition int
}

func (l Limits) checkIn(m *In) error {
	size := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		size += len(h.Key) + len(h.Value)
	}
	switch {
	case len(m.Key) > l.KeyBytesMax:
		return fmt.Errorf("%w: key of %d bytes, at most %d", errTooLarge, len(m.Key), l.KeyBytesMax)
	case len(m.Headers) > l.HeadersMax:
		return fmt.Errorf("%w: %d headers, at most %d", errTooLarge, len(m.Headers), l.HeadersMax)
	case size > l.MessageBytesMax:
		return fmt.Errorf("%w: message of %d bytes, at most %d", errTooLarge, size, l.MessageBytesMax)
	case m.Partition < -1:
		return fmt.Errorf("%w: partition %d", errInvalid, m.Partition)
	}
	return nil
}

// msgSize is what retention counts of a message: its key, value and headers.
func msgSize(m *Message) int64 {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// KeyPartition is the partition a key goes to: FNV-1a of the key modulo
// the partition count, so every replica and every client agrees.
func KeyPartition(key []byte, partitions int) int {
	h := fnv.New64a()
	h.Write(key)
	return int(h.Sum64() % uint64(partitions))
}

// partition is one partition's retained messages, oldest first.
type partition struct {
	msgs  []Message // msgs[head:] are retained; offsets first .. end-1
	head  int
	first uint64
	end   uint64
	bytes int64
	segs  []uint64 // the first offset of each record on disk, oldest first; not replicated
}

// segEnd is the offset after the last message of record i.
func (p *partition) segEnd(i int) uint64 {
	if i+1 < len(p.segs) {
		return p.segs[i+1]
	}
	return p.end
}

// segment builds one record: messages of one partition, in offset order,
// each encoded as a message (codec.go), one after another.
type segment struct {
	first uint64
	n     int
	rec   []byte
}

// add appends msg and returns the hash of its encoding, the digest's input.
func (s *segment) add(msg *Message) uint64 {
	if s.n == 0 {
		s.first = msg.Offset
	}
	s.n++
	start := len(s.rec)
	s.rec = appendMessage(s.rec, msg)
	return recordHash(s.rec[start:])
}

func (p *partition) live() []Message { return p.msgs[p.head:] }

// dropOldest removes the oldest retained message.
func (p *partition) dropOldest() Message {
	m := p.msgs[p.head] // left in place: a frozen snapshot may still read it
	p.head++
	p.first++
	p.bytes -= msgSize(&m)
	if p.head > 64 && p.head*2 > len(p.msgs) { // let the dropped prefix go
		p.msgs = append([]Message(nil), p.msgs[p.head:]...)
		p.head = 0
	}
	return m
}

// topic is a topic's whole state.
type topic struct {
	Def
	createdNs int64
	rr        uint64 // the next round-robin partition, for messages without a key
	parts     []partition
	published uint64 // messages ever published
}
