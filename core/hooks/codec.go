package hooks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
)

// Encodings, field by field (strings and bytes length-prefixed):
//
//	def:      name | pattern | events byte | filter byte | handler kind | url |
//	          secret | job type | grant | disabled byte | mode | parallel varint |
//	          attempts varint | timeout varint | backoff base varint |
//	          backoff max varint | rate varint | burst varint | topic
//	delivery: seq uvarint | kind | revision varint | key | value | value size varint |
//	          value sha | create varint | mod varint | version varint | at varint |
//	          from varint | to varint | index uvarint
//	hook:     def | created varint | next seq uvarint | tokens varint | refill varint |
//	          lagging byte | lag from varint | lag to varint | 8 stats uvarint |
//	          flight count uvarint | (job uvarint | rev varint | at varint)...
//	snapshot: hook count uvarint | (hook | delivery count uvarint | deliveries)...
//
// Commands: create is a def; delete, enable and disable a name; trigger a
// name | key | value; the leader's pump count uvarint | names.

// ErrCorrupt marks a record or snapshot that does not decode.
var ErrCorrupt = errors.New("hook table does not decode")

func appendFlag(b []byte, f bool) []byte {
	if f {
		return append(b, 1)
	}
	return append(b, 0)
}

func readFlag(r *module.Reader) bool {
	switch v := r.Uvarint(); v {
	case 0, 1:
		return v == 1
	default:
		r.Fail("flag %d", v)
		return false
	}
}

func appendDef(b []byte, d *Def) []byte {
	b = module.AppendBytes(b, []byte(d.Name))
	b = module.AppendBytes(b, []byte(d.Pattern))
	b = append(b, d.Events, d.Filter)
	b = module.AppendBytes(b, []byte(d.Handler.Kind))
	b = module.AppendBytes(b, []byte(d.Handler.URL))
	b = module.AppendBytes(b, d.Handler.Secret)
	b = module.AppendBytes(b, []byte(d.Handler.JobType))
	b = module.AppendBytes(b, d.Handler.Grant)
	b = appendFlag(b, d.Disabled)
	b = module.AppendBytes(b, []byte(d.Mode))
	for _, v := range []int64{d.Parallel, d.AttemptsMax, d.TimeoutNs, d.BackoffBaseNs, d.BackoffMaxNs, d.RatePerSec, d.Burst} {
		b = binary.AppendVarint(b, v)
	}
	return module.AppendBytes(b, []byte(d.Handler.Topic))
}

func readDef(r *module.Reader) Def {
	d := Def{Name: r.String(), Pattern: r.String()}
	d.Events, d.Filter = readByte(r), readByte(r)
	d.Handler = Handler{Kind: r.String(), URL: r.String(), Secret: clone(r.Bytes()), JobType: r.String(), Grant: clone(r.Bytes())}
	d.Disabled, d.Mode = readFlag(r), r.String()
	d.Parallel, d.AttemptsMax, d.TimeoutNs, d.BackoffBaseNs = r.Varint(), r.Varint(), r.Varint(), r.Varint()
	d.BackoffMaxNs, d.RatePerSec, d.Burst = r.Varint(), r.Varint(), r.Varint()
	d.Handler.Topic = r.String()
	return d
}

func readByte(r *module.Reader) byte {
	if r.Err != nil {
		return 0
	}
	if len(r.B) == 0 {
		r.Fail("short")
		return 0
	}
	v := r.B[0]
	r.B = r.B[1:]
	return v
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func appendDelivery(b []byte, d *Delivery) []byte {
	b = binary.AppendUvarint(b, d.Seq)
	b = module.AppendBytes(b, []byte(d.Kind))
	b = binary.AppendVarint(b, d.Revision)
	b = module.AppendBytes(b, d.Key)
	b = module.AppendBytes(b, d.Value)
	b = binary.AppendVarint(b, d.ValueSize)
	b = module.AppendBytes(b, d.ValueSHA)
	for _, v := range []int64{d.CreateRev, d.ModRev, d.Version, d.AtNs, d.FromRev, d.ToRev} {
		b = binary.AppendVarint(b, v)
	}
	return binary.AppendUvarint(b, d.Index)
}

func readDelivery(r *module.Reader) Delivery {
	d := Delivery{Seq: r.Uvarint(), Kind: r.String(), Revision: r.Varint(), Key: clone(r.Bytes()), Value: clone(r.Bytes())}
	d.ValueSize, d.ValueSHA = r.Varint(), clone(r.Bytes())
	d.CreateRev, d.ModRev, d.Version, d.AtNs, d.FromRev, d.ToRev = r.Varint(), r.Varint(), r.Varint(), r.Varint(), r.Varint(), r.Varint()
	d.Index = r.Uvarint()
	return d
}

func (s *Stats) fields() []*uint64 {
	return []*uint64{&s.Matched, &s.Submitted, &s.Delivered, &s.Failed, &s.Dead, &s.Retried, &s.Lagged, &s.Resyncs}
}

// appendHook encodes a hook's record: everything but its backlog.
func appendHook(b []byte, h *hook) []byte {
	b = appendDef(b, &h.Def)
	b = binary.AppendVarint(b, h.createdNs)
	b = binary.AppendUvarint(b, h.nextSeq)
	b = binary.AppendVarint(b, h.tokensMilli)
	b = binary.AppendVarint(b, h.refillNs)
	b = appendFlag(b, h.lagging)
	b = binary.AppendVarint(b, h.lagFrom)
	b = binary.AppendVarint(b, h.lagTo)
	for _, p := range h.stats.fields() {
		b = binary.AppendUvarint(b, *p)
	}
	b = binary.AppendUvarint(b, uint64(len(h.flights)))
	for _, f := range h.flights {
		b = binary.AppendUvarint(b, uint64(f.Job))
		b = binary.AppendVarint(b, f.Rev)
		b = binary.AppendVarint(b, f.AtNs)
	}
	return b
}

func readHook(r *module.Reader) *hook {
	h := &hook{Def: readDef(r)}
	h.createdNs, h.nextSeq, h.tokensMilli, h.refillNs = r.Varint(), r.Uvarint(), r.Varint(), r.Varint()
	h.lagging, h.lagFrom, h.lagTo = readFlag(r), r.Varint(), r.Varint()
	for _, p := range h.stats.fields() {
		*p = r.Uvarint()
	}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		h.flights = append(h.flights, flight{Job: jobs.ID(r.Uvarint()), Rev: r.Varint(), AtNs: r.Varint()})
	}
	return h
}

// checkLoaded refuses a hook no sequence of commands could have made.
//
// Bounds an operator may lower in the config (hooks held, backlog) are not
// held against what was stored under the old ones: a node must restart
// with what it has, and new matches then lag.
func (l Limits) checkLoaded(h *hook) error {
	loose := Limits{HooksMax: 1 << 30, NameBytesMax: 1 << 20, PatternBytesMax: 1 << 20, URLBytesMax: 1 << 20,
		HandlerBytesMax: 1 << 30, BacklogMax: 1 << 30, ParallelMax: 1 << 30, ValueInlineMax: 1 << 30, RateMax: 1 << 40}
	switch {
	case loose.check(&h.Def) != nil:
		return loose.check(&h.Def)
	case len(h.flights) > h.inFlight():
		return fmt.Errorf("hook %q: %d deliveries in flight, at most %d", h.Name, len(h.flights), h.inFlight())
	}
	for i := range h.backlog {
		if h.backlog[i].Seq >= h.nextSeq || i > 0 && h.backlog[i].Seq <= h.backlog[i-1].Seq {
			return fmt.Errorf("hook %q: backlog out of order", h.Name)
		}
	}
	return nil
}

func digest(parts ...[]byte) uint64 {
	f := fnv.New64a()
	for _, p := range parts {
		f.Write(p)
		f.Write([]byte{0})
	}
	return f.Sum64()
}
