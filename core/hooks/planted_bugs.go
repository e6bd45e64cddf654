//go:build aspenbugs

package hooks

import (
	"fmt"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
)

// The planted defects (core/bugs), each the mistake a contributor could make
// at that seam. Only builds with -tags aspenbugs hold this file; planted.go
// is the seams' production form.

// cmdPlantFire is HookFireFromWatch's command: the leader's "deliver this
// change" (hook name | delivery).
const cmdPlantFire byte = 86

// plantSeenMax bounds the changes a replica remembers for HookFireFromWatch.
const plantSeenMax = 1024

// planted is what the defects need beyond the replicated state: the
// replica's own memory of the changes it saw applied and the last index it
// fired from, as a driver watching its own event stream would keep them.
type planted struct {
	seen  []seenChange
	fired uint64
}

type seenChange struct {
	hook string
	d    Delivery
}

func plantedKinds() []byte { return []byte{cmdPlantFire} }

// HookMatchOnProposal and HookFireFromWatch: apply matches but makes no
// delivery; the proposal (PlantProposed) or the leader's watch (plantDue)
// does. HookFireFromWatch remembers the change as its watch stream would.
func (m *Module) plantMatched(h *hook, d *Delivery) bool {
	switch {
	case m.Bugs.Has(bugs.HookMatchOnProposal):
		return false
	case m.Bugs.Has(bugs.HookFireFromWatch):
		cp := *d
		cp.Key, cp.Value, cp.ValueSHA = clone(d.Key), clone(d.Value), clone(d.ValueSHA)
		if len(m.planted.seen) == plantSeenMax {
			m.planted.seen = m.planted.seen[1:]
		}
		m.planted.seen = append(m.planted.seen, seenChange{hook: h.Name, d: cp})
		return false
	}
	return true
}

// HookFireFromWatch: the leader fires every change it saw applied after the
// last one it fired itself. A replica that was a follower fired nothing, so
// when it takes over it fires again what the old leader fired already.
func (m *Module) plantDue(l module.Leader) []module.Command {
	if !m.Bugs.Has(bugs.HookFireFromWatch) {
		return nil
	}
	var out []module.Command
	for _, s := range m.planted.seen {
		if s.d.Index <= m.planted.fired {
			continue
		}
		b := module.AppendBytes(nil, []byte(s.hook))
		out = append(out, module.Command{Kind: cmdPlantFire, Body: appendDelivery(b, &s.d)})
	}
	if n := len(m.planted.seen); n > 0 {
		m.planted.fired = max(m.planted.fired, m.planted.seen[n-1].d.Index)
	}
	return out
}

// plantApply applies HookFireFromWatch's command: the delivery joins the
// hook's backlog like a match would.
func (m *Module) plantApply(env *module.Env, kind byte, body []byte) bool {
	if kind != cmdPlantFire {
		return false
	}
	r := &module.Reader{B: body}
	name, d := r.String(), readDelivery(r)
	assert.That(r.Done("planted fire") == nil, "planted fire at %d does not decode", env.Index)
	if h := m.hooks[name]; h != nil && !h.Disabled {
		m.touch(env, h, func() { m.enqueue(env, h, d, true) })
	}
	return true
}

// HookDropWhenFull: "the backlog is full, the handler cannot keep up
// anyway": the match is dropped instead of lagging.
func (m *Module) plantDropWhenFull() bool { return m.Bugs.Has(bugs.HookDropWhenFull) }

// PlantProposed is HookMatchOnProposal: the leader matches a write txn's puts
// and deletes as it proposes the txn and returns the deliveries' jobs, to be
// proposed with it, at the revision it expects the write to take. Compares
// that fail, writes that change nothing, retries and every other write in
// flight make the guess wrong.
func (m *Module) PlantProposed(t kv.Txn, revNext, nowNs int64) []module.Command {
	if !m.Bugs.Has(bugs.HookMatchOnProposal) {
		return nil
	}
	var out []module.Command
	for _, op := range t.Then {
		kind, dk := OnPut, KindPut
		switch op.Type {
		case kv.OpPut:
		case kv.OpDelete:
			kind, dk = OnDelete, KindDelete
		default:
			continue
		}
		for _, h := range m.order {
			if !h.matches(op.Key, kind, true) {
				continue
			}
			d := Delivery{Kind: dk, Revision: revNext, Key: clone(op.Key), AtNs: nowNs}
			if kind == OnPut && len(op.Value) <= m.limits.ValueInlineMax {
				d.Value, d.ValueSize = clone(op.Value), int64(len(op.Value))
			}
			s := h.spec(&d)
			if err := m.jobs.CheckSpec(s); err != nil {
				panic(fmt.Sprintf("planted proposal: %v", err))
			}
			out = append(out, jobs.Submit(s))
		}
	}
	return out
}
