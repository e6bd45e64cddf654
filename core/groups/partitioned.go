package groups

import (
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/module"
)

// Partitioned groups. A partition changes owner only through "no owner":
// the old owner releases it (a heartbeat naming it, after the heartbeat
// before told it the partition is being revoked), leaves, or its session
// ends; only then does the target member get it. So no two members own a
// partition at once, and every change of ownership, target or membership
// bumps the generation once per command. A member's generation (its epoch)
// is the generation its own partitions last changed at, or it joined.

// join adds member id, or starts a new incarnation of it: a new generation
// for it, so that the old incarnation's commits are fenced. Its
// partitions stay; a newcomer takes the partitions the target gives it as
// their owners release them.
func (m *Module) join(env *module.Env, g *group, id string) (Answer, error) {
	old := g.members[id]
	if old == nil && len(g.members) >= m.limits.MembersMax {
		return Answer{}, fmt.Errorf("%w: group %q has %d members", ErrFull, g.Name, len(g.members))
	}
	m.touch(env, g, func() {
		g.gen++
		if old != nil {
			old.Epoch, old.DeadlineNs = g.gen, env.NowNs+g.SessionNs
			return
		}
		g.members[id] = &member{ID: id, Epoch: g.gen, DeadlineNs: env.NowNs + g.SessionNs}
		g.setMembers()
		if moved := joinTarget(g.target, g.ids, id); len(moved) > 0 {
			g.stats.Rebalances++
		}
		m.reconcile(g)
	})
	m.noteMembers(g, id)
	return Answer{Assignment: g.assignment(id)}, nil
}

// heartbeat extends member id's session and releases the partitions it
// names, each of which must be being revoked from it; the released go to
// their targets at once.
func (m *Module) heartbeat(env *module.Env, g *group, id string, released []int) (Answer, error) {
	mem := g.members[id]
	if mem == nil {
		return Answer{}, fmt.Errorf("%w: %q is not a member of %q (its session ended?): join again", ErrFenced, id, g.Name)
	}
	for i, p := range released {
		if p >= g.parts {
			return Answer{}, fmt.Errorf("%w: partition %d released, of a group of %d", errInvalid, p, g.parts)
		}
		if g.owner[p] != id || g.target[p] == id || slices.Contains(released[:i], p) {
			return Answer{}, fmt.Errorf("%w: partition %d is not being revoked from %q", ErrFenced, p, id)
		}
	}
	m.touch(env, g, func() {
		mem.DeadlineNs = env.NowNs + g.SessionNs
		if len(released) == 0 {
			return
		}
		g.gen++
		for _, p := range released {
			g.owner[p] = ""
		}
		mem.Epoch = g.gen
		m.reconcile(g)
	})
	if len(released) > 0 {
		m.noteMembers(g, id)
	}
	return Answer{Assignment: g.assignment(id)}, nil
}

// leave removes member id at once: its partitions go to their new targets.
func (m *Module) leave(env *module.Env, g *group, id string) (Answer, error) {
	if g.members[id] == nil {
		return Answer{}, fmt.Errorf("%w: %q is not a member of %q", ErrNotFound, id, g.Name)
	}
	m.touch(env, g, func() {
		g.gen++
		m.removeMember(g, id)
	})
	m.noteMembers(g, id)
	return Answer{}, nil
}

// removeMember drops member id, frees what it owned, moves its target
// partitions to the members left, and assigns what is free. The caller
// bumps the generation.
func (m *Module) removeMember(g *group, id string) {
	delete(g.members, id)
	g.setMembers()
	for p, o := range g.owner {
		if o == id {
			g.owner[p] = ""
		}
	}
	order, byWeight := m.plantOrder(g)
	if moved := leaveTarget(g.target, order, id, byWeight); len(moved) > 0 {
		g.stats.Rebalances++
	}
	m.reconcile(g)
}

// reconcile gives every partition without an owner to its target, and
// moves the epoch of every member that got one to the generation.
func (m *Module) reconcile(g *group) {
	for p, o := range g.owner {
		if t := g.target[p]; o == "" && t != "" {
			g.owner[p] = t
			g.members[t].Epoch = g.gen
		}
	}
}

// assignment is member id's view of what it holds.
func (g *group) assignment(id string) *Assignment {
	mem := g.members[id]
	a := &Assignment{Member: id, Generation: mem.Epoch, DeadlineNs: mem.DeadlineNs}
	a.Assigned, a.Revoking = g.owned(id)
	return a
}

// commit moves partition p's committed offset forward, for its owner under
// its current generation. A commit equal to the committed offset changes
// nothing and is answered OK (a retry); a lower one is refused: committed
// offsets never go backwards except by an operator's reset.
func (m *Module) commit(env *module.Env, g *group, c *cmd) (Answer, error) {
	mem := g.members[c.member]
	switch {
	case mem == nil:
		return Answer{}, fmt.Errorf("%w: %q is not a member of %q (its session ended?)", ErrFenced, c.member, g.Name)
	case c.p >= g.parts:
		return Answer{}, fmt.Errorf("%w: partition %d of a group of %d", errInvalid, c.p, g.parts)
	case m.plantCommitGen(mem, c.gen) != mem.Epoch:
		return Answer{}, fmt.Errorf("%w: stale generation %d, %q is at %d", ErrFenced, c.gen, c.member, mem.Epoch)
	case g.owner[c.p] != c.member:
		return Answer{}, fmt.Errorf("%w: partition %d is not %q's", ErrFenced, c.p, c.member)
	case c.off < g.offsets[c.p]:
		return Answer{}, fmt.Errorf("%w: offset %d is below the committed %d", ErrState, c.off, g.offsets[c.p])
	}
	if _, end := m.log.Bounds(g.Topic, c.p); c.off > end {
		return Answer{}, fmt.Errorf("%w: offset %d is past partition %d's end %d", ErrState, c.off, c.p, end)
	}
	if c.off > g.offsets[c.p] {
		m.touch(env, g, func() { g.offsets[c.p] = c.off })
		m.noteOffset(g, c.p, c.member, c.gen, false)
	}
	return Answer{}, nil
}

// reset moves offsets where an operator says. A partitioned group must
// have no members (Kafka's rule: a live member would commit over it, or
// see its offset move backwards under it); a competing group must have no
// message of those partitions leased, and forgets the waiting ones.
func (m *Module) reset(env *module.Env, g *group, p int, to ResetTo, value int64) (Answer, error) {
	if n, ok := m.log.Partitions(g.Topic); !ok || n != g.parts {
		return Answer{}, fmt.Errorf("%w: topic %q is gone or changed", ErrState, g.Topic)
	}
	if p >= g.parts {
		return Answer{}, fmt.Errorf("%w: partition %d of a group of %d", errInvalid, p, g.parts)
	}
	scope := []int{p}
	if p == AllPartitions {
		scope = make([]int, g.parts)
		for i := range scope {
			scope[i] = i
		}
	}
	if len(g.members) > 0 {
		return Answer{}, fmt.Errorf("%w: group %q has %d members; reset an empty group", ErrState, g.Name, len(g.members))
	}
	offs := make([]uint64, len(scope))
	for i, q := range scope {
		first, end := m.log.Bounds(g.Topic, q)
		switch to {
		case ToEarliest:
			offs[i] = first
		case ToLatest:
			offs[i] = end
		case ToTime:
			offs[i] = m.log.OffsetAt(g.Topic, q, value)
		case ToOffset:
			if uint64(value) < first || uint64(value) > end {
				return Answer{}, fmt.Errorf("%w: offset %d outside partition %d's [%d, %d]", ErrState, value, q, first, end)
			}
			offs[i] = uint64(value)
		}
		if g.leasedIn(q) {
			return Answer{}, fmt.Errorf("%w: partition %d has messages leased", ErrState, q)
		}
	}
	for _, q := range scope {
		m.forgetPartition(env, g, q)
	}
	m.touch(env, g, func() {
		for i, q := range scope {
			g.offsets[q] = offs[i]
		}
	})
	for _, q := range scope {
		m.noteOffset(g, q, "", 0, true)
	}
	return Answer{}, nil
}
