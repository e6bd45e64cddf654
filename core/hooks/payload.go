package hooks

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Event is a delivery as its handler receives it: the job's payload, JSON.
// Value is base64 in JSON, as in Consul's KV API.
type Event struct {
	Hook           string
	Kind           string // put, delete, expire, resync, trigger
	Key            string `json:",omitempty"`
	Value          []byte `json:",omitempty"` // inline up to the hooks' ValueInlineMax
	ValueSize      int64  `json:",omitempty"`
	ValueSHA256    string `json:",omitempty"` // hex, when the value is not inline
	Revision       int64
	CreateRevision int64 `json:",omitempty"`
	ModifyRevision int64 `json:",omitempty"`
	Version        int64 `json:",omitempty"`
	TimeUnixNano   int64 // replicated time of the change
	FromRevision   int64 `json:",omitempty"` // resync: the changes in [FromRevision, ToRevision]
	ToRevision     int64 `json:",omitempty"` //   were not delivered one by one
	IdempotencyKey string
}

// Payload is a delivery job's payload: the event, and what an http or
// shell handler needs to run it. A job hook's job carries the event alone.
type Payload struct {
	Event  Event
	URL    string          `json:",omitempty"` // http
	Secret []byte          `json:",omitempty"` // http: sealed under the cluster key
	Grant  json.RawMessage `json:",omitempty"` // shell
}

func (h *hook) event(d *Delivery) Event {
	e := Event{Hook: h.Name, Kind: d.Kind, Key: string(d.Key), Value: d.Value, ValueSize: d.ValueSize, Revision: d.Revision,
		CreateRevision: d.CreateRev, ModifyRevision: d.ModRev, Version: d.Version, TimeUnixNano: d.AtNs,
		FromRevision: d.FromRev, ToRevision: d.ToRev, IdempotencyKey: d.IdemKey(h.Name)}
	if len(d.ValueSHA) > 0 {
		e.ValueSHA256 = hex.EncodeToString(d.ValueSHA)
	}
	return e
}

// payload encodes delivery d as its job's payload. encoding/json sorts map
// keys and has none here: every replica writes the same bytes.
func (h *hook) payload(d *Delivery) []byte {
	var v any = h.event(d)
	switch h.Handler.Kind {
	case HandlerHTTP:
		v = Payload{Event: h.event(d), URL: h.Handler.URL, Secret: h.Handler.Secret}
	case HandlerShell:
		v = Payload{Event: h.event(d), Grant: h.Handler.Grant}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("hooks: encode delivery: %v", err)) // strings, ints, bytes and a grant checked at create
	}
	return b
}
