package kv

import (
	"encoding/binary"
	"fmt"

	"github.com/aspen-db/aspen/core/module"
)

// Pub is a message a txn publishes to a topic when its Then branch runs:
// the write and its event commit together or not at all (Consul's /v1/txn
// with Aspen's "Publish" op). It goes where a publish without a partition
// goes: the key's partition, or round-robin without a key.
type Pub struct {
	Topic string
	Key   []byte // nil: no key
	Value []byte
}

// Publisher is the topics module as the KV store needs it (core/topics
// provides it).
type Publisher interface {
	// CheckPublish refuses, as a *module.Error, messages that could not
	// all be published now: an unknown topic, a message over its limit, a
	// full store. It changes nothing.
	CheckPublish(pubs []Pub) error
	// PublishAll publishes what CheckPublish passed, in order.
	PublishAll(env *module.Env, pubs []Pub) error
}

// CmdPublishTxn is a txn with messages to publish: its body holds the
// txn's own command (CmdTxn or CmdLeasedTxn) and then the messages.
const CmdPublishTxn byte = 4

// Bounds on a txn's publishes, checked before a proposal.
const (
	PubsMax          = 64
	PubTopicBytesMax = 128
)

// UsePublisher connects the topics; until then a txn that publishes is refused.
func (k *Module) UsePublisher(p Publisher) { k.publisher = p }

// publishCommand encodes t, whose Publish is not empty.
func publishCommand(t Txn) module.Command {
	pubs := t.Publish
	t.Publish = nil
	inner := Command(t)
	b := append([]byte{inner.Kind}, binary.AppendUvarint(nil, uint64(len(inner.Body)))...)
	b = append(b, inner.Body...)
	b = binary.AppendUvarint(b, uint64(len(pubs)))
	for _, p := range pubs {
		b = appendBytes(b, []byte(p.Topic))
		if p.Key == nil {
			b = append(b, 0)
		} else {
			b = appendBytes(append(b, 1), p.Key)
		}
		b = appendBytes(b, p.Value)
	}
	return module.Command{Kind: CmdPublishTxn, Body: b}
}

// decodePublishTxn reads what publishCommand wrote.
func decodePublishTxn(body []byte) (Txn, error) {
	r := &module.Reader{B: body}
	var kind byte
	if len(r.B) > 0 {
		kind, r.B = r.B[0], r.B[1:]
	}
	inner := r.Bytes()
	if r.Err != nil || kind != CmdTxn && kind != CmdLeasedTxn {
		return Txn{}, fmt.Errorf("%w: publish txn: inner command %d", ErrMalformed, kind)
	}
	t, err := decodeCommand(kind, inner)
	if err != nil {
		return Txn{}, err
	}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		p := Pub{Topic: r.String()}
		switch f := r.Uvarint(); f {
		case 0:
		case 1:
			p.Key = append([]byte{}, r.Bytes()...)
		default:
			r.Fail("key flag %d", f)
		}
		p.Value = append([]byte{}, r.Bytes()...)
		t.Publish = append(t.Publish, p)
	}
	if err := r.Done("publish txn"); err != nil {
		return Txn{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(t.Publish) == 0 {
		return Txn{}, fmt.Errorf("%w: publish txn without messages", ErrMalformed)
	}
	return t, nil
}

// validatePubs checks what a replica can without its state.
func (l Limits) validatePubs(pubs []Pub) error {
	if len(pubs) > PubsMax {
		return fmt.Errorf("%w: %d publishes in a txn, at most %d", ErrTooManyOps, len(pubs), PubsMax)
	}
	for i, p := range pubs {
		switch {
		case p.Topic == "" || len(p.Topic) > PubTopicBytesMax:
			return fmt.Errorf("%w: publish %d: topic must be 1 to %d bytes", ErrBadOp, i, PubTopicBytesMax)
		case len(p.Value) > l.ValueBytesMax:
			return fmt.Errorf("%w: publish %d: value of %d bytes, at most %d", ErrValueTooLarge, i, len(p.Value), l.ValueBytesMax)
		case len(p.Key) > l.KeyBytesMax:
			return fmt.Errorf("%w: publish %d: key of %d bytes, at most %d", ErrKeyTooLarge, i, len(p.Key), l.KeyBytesMax)
		}
	}
	return nil
}
