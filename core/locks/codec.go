package locks

import (
	"encoding/binary"

	"github.com/aspen-db/aspen/core/module"
)

// Encodings, field by field (strings length-prefixed):
//
//	session: id | name | node | behavior uvarint | ttl varint | lock delay varint |
//	         create index uvarint | modify index uvarint | lease varint
//	delay:   key | until varint
//	snapshot: session count uvarint | sessions | delay count uvarint | delays
//	answer:  session count uvarint | sessions

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendSession(b []byte, s *Session) []byte {
	b = appendString(b, s.ID)
	b = appendString(b, s.Name)
	b = appendString(b, s.Node)
	b = binary.AppendUvarint(b, uint64(s.Behavior))
	b = binary.AppendVarint(b, s.TTLNs)
	b = binary.AppendVarint(b, s.LockDelayNs)
	b = binary.AppendUvarint(b, s.CreateIndex)
	b = binary.AppendUvarint(b, s.ModifyIndex)
	return binary.AppendVarint(b, s.Lease)
}

func readSession(r *module.Reader) Session {
	s := Session{ID: r.String(), Name: r.String(), Node: r.String()}
	if b := r.Uvarint(); b > uint64(Delete) {
		r.Fail("session behavior %d", b)
	} else {
		s.Behavior = Behavior(b)
	}
	s.TTLNs, s.LockDelayNs = r.Varint(), r.Varint()
	s.CreateIndex, s.ModifyIndex, s.Lease = r.Uvarint(), r.Uvarint(), r.Varint()
	return s
}

// Answer is the reply to every command and query: the sessions it concerns
// (the one created, renewed or asked for; a list; none for a destroy).
type Answer struct {
	Sessions []Session
}

// Encode writes the answer.
func (a Answer) Encode() []byte {
	b := binary.AppendUvarint(nil, uint64(len(a.Sessions)))
	for i := range a.Sessions {
		b = appendSession(b, &a.Sessions[i])
	}
	return b
}

// DecodeAnswer reads an answer Encode wrote.
func DecodeAnswer(data []byte) (Answer, error) {
	r := &module.Reader{B: data}
	var a Answer
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		a.Sessions = append(a.Sessions, readSession(r))
	}
	return a, r.Done("session answer")
}

func answer(a Answer) module.Answer { return module.Answer{Data: a.Encode(), Value: a} }
