package groups

import (
	"encoding/binary"
	"fmt"

	"github.com/aspen-db/aspen/core/module"
)

// A batch settle carries many settles of one member in one command, one
// log entry where single settles take one each: a member that fetched a
// batch acks it with one call. Each item is judged alone under the same
// fencing as Settle (the member's current lease, before its deadline) and
// answered alone, in the order given: a stale or forged handle refuses its
// own item, never the others, and an item may meet a lease an earlier item
// of the same batch settled. The command as a whole is refused only when
// malformed or over a limit (no items, more than Limits.SettleMax, an item
// Validate would refuse as a single settle), or when the group is unknown
// or not competing; then nothing applies.
//
//	settle batch: group | member | count uvarint | (verb uvarint | handle | delay varint)...

// SettleItem is one settle of a batch: an ack, a nak after DelayNs, an
// in progress or a terminate of the lease Handle names.
type SettleItem struct {
	Verb    uint8
	Handle  Handle
	DelayNs int64
}

// ItemAnswer is one item's answer in a batch settle: OK (DeadlineNs is an
// in progress's new deadline), or the refusal (Outcome, Detail) that left
// its lease as it was.
type ItemAnswer struct {
	Outcome    module.Outcome
	Detail     string
	DeadlineNs int64
}

// SettleBatch settles member's leases, each item as Settle would.
func SettleBatch(group, member string, items []SettleItem) module.Command {
	b := named(CmdSettleBatch, group).str(member).u(uint64(len(items)))
	for _, it := range items {
		b = b.u(uint64(it.Verb))
		b.b = appendHandle(b.b, it.Handle)
		b = b.i(it.DelayNs)
	}
	return b.cmd()
}

func readSettleItems(r *module.Reader) []SettleItem {
	var items []SettleItem
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		it := SettleItem{Verb: uint8(min(r.Uvarint(), 255)), Handle: readHandle(r)}
		it.DelayNs = r.Varint()
		items = append(items, it)
	}
	return items
}

// checkSettle refuses a settle no lease could take: an unknown verb, a
// handle of no delivery, a delay out of range or on anything but a nak.
func (m *Module) checkSettle(it SettleItem) error {
	if it.Verb < Ack || it.Verb > Terminate || it.Handle.Delivery == 0 {
		return fmt.Errorf("%w: settle verb %d, delivery %d", errInvalid, it.Verb, it.Handle.Delivery)
	}
	if it.DelayNs < 0 || it.DelayNs > m.limits.NakDelayMaxNs || it.Verb != Nak && it.DelayNs != 0 {
		return fmt.Errorf("%w: nak delay %dns, want 0 to %d (and only for a nak)", errInvalid, it.DelayNs, m.limits.NakDelayMaxNs)
	}
	return nil
}

func (m *Module) checkSettleBatch(items []SettleItem) error {
	if len(items) == 0 || len(items) > m.limits.SettleMax {
		return fmt.Errorf("%w: %d items in a settle batch, want 1 to %d", errInvalid, len(items), m.limits.SettleMax)
	}
	for i, it := range items {
		if err := m.checkSettle(it); err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
	}
	return nil
}

// settleBatch settles each item in order; the group's record is written
// once for the whole batch.
func (m *Module) settleBatch(env *module.Env, g *group, member string, items []SettleItem) Answer {
	out := make([]ItemAnswer, len(items))
	m.touch(env, g, func() {
		for i, it := range items {
			e, err := m.leaseOf(env, g, member, it.Handle)
			if err != nil {
				a := refusal(err)
				out[i] = ItemAnswer{Outcome: a.Outcome, Detail: a.Detail}
				continue
			}
			if d, renewed := m.settleLease(env, g, e, it); renewed {
				out[i].DeadlineNs = d.DeadlineNs
			}
		}
	})
	return Answer{Items: out}
}

// Readiness answers QueryFetchable: whether a fetch by the member would
// lease something (or change the group: a lease past its deadline is
// reclaimed) at the time asked. When not, NextNs is when the first message
// nakked with a delay may go out again (0: none waits), the one change
// that comes with time alone; every other (a publish, a settle, a lease's
// expiry, which the leader proposes) is an applied entry. Held is the
// member's leases: a fetch retried under the caller's own session may have
// leased them already.
type Readiness struct {
	Ready  bool
	Held   int
	NextNs int64
}

// Fetchable is group's readiness for member's fetch at nowNs, a pure read
// of the replica's state. It is ready, too, when the fetch would be refused
// for what the state holds (the topic gone or changed, the table of lease
// holders full), so that the fetch says why.
func (m *Module) Fetchable(group, member string, nowNs int64) (Readiness, error) {
	g := m.groups[group]
	switch {
	case g == nil:
		return Readiness{}, fmt.Errorf("%w: group %q", ErrNotFound, group)
	case g.Mode != Competing:
		return Readiness{}, fmt.Errorf("%w: group %q is %s", ErrState, g.Name, g.Mode)
	}
	r := Readiness{Held: g.inflight[member]}
	parts, ok := m.log.Partitions(g.Topic)
	if !ok || parts != g.parts || r.Held == 0 && len(g.inflight) >= m.limits.MembersMax {
		r.Ready = true
		return r, nil
	}
	if e, ok := g.leases.Min(); ok && e.At <= nowNs {
		r.Ready = true // reclaimed by the fetch, whoever held it
		return r, nil
	}
	if r.Held >= g.InFlightMax {
		return r, nil // only its own settles or expiries make room
	}
	if e, ok := g.waiting.Min(); ok {
		if e.At <= nowNs {
			r.Ready = true
			return r, nil
		}
		r.NextNs = e.At
	}
	if g.pending.Len() >= m.limits.PendingMax {
		return r, nil
	}
	for p := range g.parts {
		if first, end := m.log.Bounds(g.Topic, p); end > max(g.offsets[p], first) {
			r.Ready = true
			return r, nil
		}
	}
	return r, nil
}

// FetchableQuery asks whether member's fetch of up to n messages would
// lease anything now (Answer.Ready); n is checked as the fetch's would be.
func FetchableQuery(group, member string, n int) module.Command {
	return named(QueryFetchable, group).str(member).u(uint64(n)).cmd()
}

// appendItems lays out a batch's answers: count uvarint | (outcome uvarint
// | detail | deadline varint)...
func appendItems(b []byte, items []ItemAnswer) []byte {
	b = binary.AppendUvarint(b, uint64(len(items)))
	for i := range items {
		b = binary.AppendUvarint(b, uint64(items[i].Outcome))
		b = module.AppendBytes(b, []byte(items[i].Detail))
		b = binary.AppendVarint(b, items[i].DeadlineNs)
	}
	return b
}

func readItems(r *module.Reader) []ItemAnswer {
	out := []ItemAnswer{}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		o := r.Uvarint()
		if o != uint64(module.OK) && !module.Outcome(o).Refused() {
			r.Fail("item outcome %d", o)
		}
		out = append(out, ItemAnswer{Outcome: module.Outcome(o), Detail: r.String(), DeadlineNs: r.Varint()})
	}
	return out
}

// appendReadiness lays out a readiness: ready flag | held uvarint | next varint.
func appendReadiness(b []byte, r *Readiness) []byte {
	b = appendFlag(b, r.Ready)
	b = binary.AppendUvarint(b, uint64(r.Held))
	return binary.AppendVarint(b, r.NextNs)
}

func readReadiness(r *module.Reader) *Readiness {
	return &Readiness{Ready: readFlag(r), Held: int(min(r.Uvarint(), 1<<30)), NextNs: r.Varint()}
}
