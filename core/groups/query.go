package groups

import (
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/module"
)

// Query answers describe, list, the dead-letter list and a fetch's
// readiness (at nowNs). Lag is measured
// against the topic's bounds as of the same read.
func (m *Module) Query(kind byte, body []byte, nowNs int64) module.Answer {
	c, err := decode(kind, body)
	if err != nil {
		return refusal(err)
	}
	switch kind {
	case QueryList:
		return reply(m.list(c.group, c.n), nil)
	case QueryFetchable:
		if err := m.check(CmdFetch, &c); err != nil { // refused as the fetch would be
			return refusal(err)
		}
		r, err := m.Fetchable(c.group, c.member, nowNs)
		return reply(Answer{Ready: &r}, err)
	}
	g := m.groups[c.group]
	if g == nil {
		return refusal(fmt.Errorf("%w: group %q", ErrNotFound, c.group))
	}
	if kind == QueryDescribe {
		return reply(Answer{Groups: []Group{m.view(g, true)}}, nil)
	}
	n := c.n
	if n <= 0 || n > m.limits.ListMax {
		n = m.limits.ListMax
	}
	i, _ := slices.BinarySearchFunc(g.dead, c.off+1, func(d DeadLetter, s uint64) int { return cmpU64(d.Seq, s) })
	a := Answer{Dead: slices.Clone(g.dead[i:min(len(g.dead), i+n)])}
	if i+n < len(g.dead) {
		a.NextSeq = a.Dead[len(a.Dead)-1].Seq
	}
	return reply(a, nil)
}

func (m *Module) list(after string, n int) Answer {
	if n <= 0 || n > m.limits.ListMax {
		n = m.limits.ListMax
	}
	i, found := slices.BinarySearch(m.names, after)
	if found {
		i++
	}
	var a Answer
	for _, name := range m.names[i:] {
		if len(a.Groups) == n {
			a.Next = a.Groups[n-1].Name
			break
		}
		a.Groups = append(a.Groups, m.view(m.groups[name], false))
	}
	return a
}

// view is group g as clients see it; full adds members and partitions.
func (m *Module) view(g *group, full bool) Group {
	v := Group{Def: g.Def, CreatedNs: g.createdNs, Partitions: g.parts, Generation: g.gen,
		Pending: g.pending.Len(), DeadLetters: len(g.dead), Stats: g.stats}
	if !full {
		return v
	}
	for _, id := range g.ids {
		mem := g.members[id]
		mv := MemberView{ID: id, Generation: mem.Epoch, DeadlineNs: mem.DeadlineNs}
		mv.Assigned, mv.Revoking = g.owned(id)
		v.Members = append(v.Members, mv)
	}
	if g.Mode == Competing {
		holders := make([]string, 0, len(g.inflight))
		for id := range g.inflight {
			holders = append(holders, id)
		}
		slices.Sort(holders)
		for _, id := range holders {
			v.Members = append(v.Members, MemberView{ID: id, InFlight: g.inflight[id]})
		}
	}
	v.Offsets = m.partitionViews(g)
	return v
}

// partitionViews are group g's partitions with the topic's bounds now.
func (m *Module) partitionViews(g *group) []PartitionView {
	out := make([]PartitionView, 0, g.parts)
	parts, ok := m.log.Partitions(g.Topic)
	for p := range g.parts {
		pv := PartitionView{P: p, Owner: g.owner[p], Target: g.target[p], Offset: g.offsets[p]}
		if g.Mode == Competing {
			pv.Offset = g.floor(p)
		}
		if ok && p < parts {
			pv.First, pv.End = m.log.Bounds(g.Topic, p)
			if from := max(pv.Offset, pv.First); pv.End > from {
				pv.Lag = pv.End - from
			}
		}
		out = append(out, pv)
	}
	return out
}

// Reading is one group's numbers as metrics export them.
type Reading struct {
	Name        string
	Mode        Mode
	Generation  uint64
	Members     int // partitioned: members; competing: members holding leases
	Pending     int
	DeadLetters int
	Stats       Stats
	Partitions  []PartitionView
}

// Readings returns every group's numbers, by name: a pure read of the
// replicated state (and the topics' bounds) that aliases none of it.
func (m *Module) Readings() []Reading {
	out := make([]Reading, 0, len(m.names))
	for _, name := range m.names {
		g := m.groups[name]
		members := len(g.members)
		if g.Mode == Competing {
			members = len(g.inflight)
		}
		out = append(out, Reading{Name: name, Mode: g.Mode, Generation: g.gen, Members: members, Pending: g.pending.Len(),
			DeadLetters: len(g.dead), Stats: g.stats, Partitions: m.partitionViews(g)})
	}
	return out
}
