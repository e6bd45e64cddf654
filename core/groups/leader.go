package groups

import (
	"encoding/binary"
	"slices"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// keyMeta holds the grace term.
var keyMeta = []byte("g/m")

// Due proposes, on the leader, its grace once per term (while any session
// or lease runs), then for each group with a session or a lease past its
// time on the leader's clock an expiry naming the group and the members.
// Apply re-checks everything against the entry's stamp.
func (m *Module) Due(l module.Leader) []module.Command {
	if len(m.groups) == 0 {
		return nil
	}
	if m.graceTerm < l.Term && m.timed() {
		if m.graceAsked[0] != int64(l.Term) || l.NowNs-m.graceAsked[1] >= proposeRetryNs {
			m.graceAsked = [2]int64{int64(l.Term), l.NowNs}
			b := binary.AppendVarint(binary.AppendUvarint(nil, l.Term), l.GraceNs)
			return []module.Command{{Kind: CmdGrace, Body: b}}
		}
		return nil
	}
	var out []module.Command
	for _, name := range m.names {
		g := m.groups[name]
		if at, ok := m.asked[name]; ok && l.NowNs-at < proposeRetryNs {
			continue
		}
		var ids []string
		for _, id := range g.ids {
			if g.members[id].DeadlineNs <= l.NowNs && len(ids) < expireItemsMax {
				ids = append(ids, id)
			}
		}
		lease, ok := g.leases.Min()
		if len(ids) == 0 && (!ok || lease.At > l.NowNs) {
			continue
		}
		m.asked[name] = l.NowNs
		b := named(CmdExpire, name).u(uint64(len(ids)))
		for _, id := range ids {
			b = b.str(id)
		}
		if out = append(out, b.cmd()); len(out) == expireGroupsMax {
			break
		}
	}
	return out
}

// timed reports whether any session or lease runs.
func (m *Module) timed() bool {
	for _, name := range m.names {
		if g := m.groups[name]; len(g.members) > 0 || g.leases.Len() > 0 {
			return true
		}
	}
	return false
}

// expire applies the leader's expiry: the named members whose session
// ended by the entry's stamp leave, and every lease of the group past its
// deadline is reclaimed.
func (m *Module) expire(env *module.Env, c *cmd) {
	delete(m.asked, c.group)
	g := m.groups[c.group]
	if g == nil {
		return
	}
	ids := slices.Clone(c.members)
	slices.Sort(ids) // the command's order must not matter
	ids = slices.Compact(ids)
	var gone []string
	for _, id := range ids {
		if mem := g.members[id]; mem != nil && mem.DeadlineNs <= env.NowNs {
			gone = append(gone, id)
		}
	}
	lease, ok := g.leases.Min()
	if len(gone) == 0 && (!ok || lease.At > env.NowNs) {
		return
	}
	m.touch(env, g, func() {
		if len(gone) > 0 {
			g.gen++
		}
		for _, id := range gone {
			g.stats.Expired++
			m.removeMember(g, id)
		}
		m.reclaim(env, g)
	})
	if len(gone) > 0 {
		m.noteMembers(g, "")
	}
}

// grace moves every session's end, and every running lease's deadline, to
// at least now + byNs, as the leader of term's grace: heartbeats and acks
// a failover kept from the leader do not cost members their sessions or
// their leases. A lease whose deadline has passed stays expired: an ack
// after the ack wait is refused whatever happened to the leader.
func (m *Module) grace(env *module.Env, term uint64, byNs int64) {
	until := env.NowNs + byNs
	for _, name := range m.names {
		g := m.groups[name]
		var late []*entry
		g.leases.Ascend(func(e *entry) bool {
			if e.At >= until {
				return false
			}
			if e.At > env.NowNs { // an ack wait that ended stays ended: no ack after it
				late = append(late, e)
			}
			return true
		})
		stale := len(late) > 0
		for _, id := range g.ids {
			stale = stale || g.members[id].DeadlineNs < until
		}
		if !stale {
			continue
		}
		m.touch(env, g, func() {
			for _, id := range g.ids {
				mem := g.members[id]
				mem.DeadlineNs = max(mem.DeadlineNs, until)
			}
			for _, e := range late {
				m.unfile(env, g, e)
				e.At = until
				m.file(env, g, e)
			}
		})
	}
	m.graceTerm = max(m.graceTerm, term)
	m.persistMeta(env.Batch)
}

func (m *Module) persistMeta(b *storage.Batch) {
	b.Put(keyMeta, binary.AppendUvarint(nil, m.graceTerm))
}
