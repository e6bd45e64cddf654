package groups

import (
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/topics"
)

// Competing groups keep, per partition, the next offset never delivered
// and the unsettled messages below it (leased, or waiting to go out
// again); every other offset below it is settled (acked or dead). So the
// state is bounded by the unsettled messages (Limits.PendingMax), not by
// the messages read, and a partition's ack floor is its first unsettled
// offset. A lease is valid while replicated time is before its deadline:
// an ack at or after it is refused even before the lease is reclaimed.

// fetch leases up to n messages to member: those waiting to go out again
// first (by when they became due), then new ones, partition by partition
// from a rotating start. Leases past their deadline are reclaimed first. A
// member at its in-flight bound gets none.
func (m *Module) fetch(env *module.Env, g *group, mem string, n int) (Answer, error) {
	if parts, ok := m.log.Partitions(g.Topic); !ok || parts != g.parts {
		return Answer{}, fmt.Errorf("%w: topic %q is gone or changed", ErrState, g.Topic)
	}
	if g.inflight[mem] == 0 && len(g.inflight) >= m.limits.MembersMax {
		return Answer{}, fmt.Errorf("%w: %d members hold leases in %q", ErrFull, len(g.inflight), g.Name)
	}
	var a Answer
	m.touch(env, g, func() {
		m.reclaim(env, g)
		n = min(n, g.InFlightMax-g.inflight[mem])
		bytes := m.limits.FetchBytesMax
		a.Deliveries = m.redeliver(env, g, mem, n, &bytes)
		a.Deliveries = append(a.Deliveries, m.deliverNew(env, g, mem, n-len(a.Deliveries), &bytes)...)
	})
	return a, nil
}

// redeliver leases waiting messages that are due.
func (m *Module) redeliver(env *module.Env, g *group, mem string, n int, bytes *int) []Delivery {
	var due []*entry
	g.waiting.Ascend(func(e *entry) bool {
		if e.At > env.NowNs || len(due) == n {
			return false
		}
		due = append(due, e)
		return true
	})
	var out []Delivery
	for _, e := range due {
		if len(out) > 0 && *bytes <= 0 {
			break
		}
		msgs := m.log.Read(g.Topic, e.P, e.Off, 1, max(*bytes, 1))
		if len(msgs) == 0 || msgs[0].Offset != e.Off {
			m.settle1(env, g, e) // retention removed it before anyone acked it
			g.stats.Trimmed++
			continue
		}
		*bytes -= len(msgs[0].Value)
		g.stats.Redeliveries++
		out = append(out, m.lease(env, g, e, mem, msgs[0]))
	}
	return out
}

// deliverNew leases up to n messages never delivered, while the group has
// room for unsettled ones.
func (m *Module) deliverNew(env *module.Env, g *group, mem string, n int, bytes *int) []Delivery {
	var out []Delivery
	start := int(g.rr)
	for i := 0; i < g.parts && len(out) < n; i++ {
		p := (start + i) % g.parts
		room := min(n-len(out), m.limits.PendingMax-g.pending.Len())
		if room <= 0 || len(out) > 0 && *bytes <= 0 {
			break
		}
		if first, _ := m.log.Bounds(g.Topic, p); g.offsets[p] < first {
			g.stats.Trimmed += first - g.offsets[p] // retention was faster than the group
			g.offsets[p] = first
		}
		msgs := m.log.Read(g.Topic, p, g.offsets[p], room, max(*bytes, 1))
		for _, msg := range msgs {
			if len(out) > 0 && *bytes <= 0 {
				break
			}
			*bytes -= len(msg.Value)
			e := &entry{P: p, Off: msg.Offset}
			g.offsets[p] = msg.Offset + 1
			out = append(out, m.lease(env, g, e, mem, msg))
		}
		if len(msgs) > 0 {
			g.rr = uint32((p + 1) % g.parts)
		}
	}
	return out
}

// lease leases entry e (waiting, or new and held nowhere) to member.
func (m *Module) lease(env *module.Env, g *group, e *entry, mem string, msg topics.Message) Delivery {
	m.unfile(env, g, e)
	e.Delivery++
	e.Member, e.At = mem, env.NowNs+g.AckWaitNs
	g.inflight[mem]++
	m.file(env, g, e)
	d := Delivery{Handle: Handle{P: e.P, Off: e.Off, Delivery: e.Delivery}, Member: mem, DeadlineNs: e.At, Message: msg}
	m.noteDelivery(g, &d)
	return d
}

// settle applies an ack, nak, in progress or terminate to the lease its
// handle names (leaseOf).
func (m *Module) settle(env *module.Env, g *group, c *cmd) (Answer, error) {
	e, err := m.leaseOf(env, g, c.member, c.handle)
	if err != nil {
		return Answer{}, err
	}
	var a Answer
	m.touch(env, g, func() {
		if d, renewed := m.settleLease(env, g, e, SettleItem{Verb: c.verb, Handle: c.handle, DelayNs: c.delayNs}); renewed {
			a.Deliveries = []Delivery{d}
		}
	})
	return a, nil
}

// leaseOf finds the lease h names, which must be member's, current and
// before its deadline; it changes nothing.
func (m *Module) leaseOf(env *module.Env, g *group, member string, h Handle) (*entry, error) {
	e, ok := g.pending.Get(&entry{P: h.P, Off: h.Off})
	switch {
	case !ok || !e.leased() || e.Delivery != h.Delivery:
		return nil, fmt.Errorf("%w: no lease %d/%d delivery %d in %q (settled, or delivered again since)", ErrFenced, h.P, h.Off, h.Delivery, g.Name)
	case e.Member != member:
		return nil, fmt.Errorf("%w: lease %d/%d is not %q's", ErrFenced, h.P, h.Off, member)
	case env.NowNs >= e.At:
		return nil, fmt.Errorf("%w: lease %d/%d's ack wait ended at %d", ErrFenced, h.P, h.Off, e.At)
	}
	return e, nil
}

// settleLease applies it to lease e, which leaseOf found; in progress
// answers the lease renewed. A nak of a message's last delivery
// (DeliveriesMax) sends it to the dead letters, as its expiry would: a
// poison message that every member naks does not go round for ever. The
// caller keeps the group's record in step (touch).
func (m *Module) settleLease(env *module.Env, g *group, e *entry, it SettleItem) (renewed Delivery, ok bool) {
	switch it.Verb {
	case Ack:
		m.release(g, e)
		m.settle1(env, g, e)
		m.noteSettled(g, e, "ack")
	case Terminate:
		m.release(g, e)
		m.settle1(env, g, e)
		m.addDead(env, g, e, ReasonTerminated)
	case Nak:
		m.release(g, e)
		if int(e.Delivery) >= g.DeliveriesMax { // a nak is a failed delivery too: the last one goes to the dead letters
			m.settle1(env, g, e)
			m.addDead(env, g, e, ReasonDeliveries)
			break
		}
		m.unfile(env, g, e)
		e.Member, e.At = "", env.NowNs+it.DelayNs
		m.file(env, g, e)
	case InProgress:
		m.unfile(env, g, e)
		e.At = env.NowNs + g.AckWaitNs
		m.file(env, g, e)
		return Delivery{Handle: it.Handle, Member: e.Member, DeadlineNs: e.At}, true
	}
	return Delivery{}, false
}

// reclaim ends every lease past its deadline at env's time: the message
// waits to go out again at once, or goes to the dead letters when it was
// delivered as often as the group allows.
func (m *Module) reclaim(env *module.Env, g *group) {
	var due []*entry
	g.leases.Ascend(func(e *entry) bool {
		if e.At > env.NowNs {
			return false
		}
		due = append(due, e)
		return true
	})
	for _, e := range due {
		g.stats.Expiries++
		m.unfile(env, g, e)
		m.release(g, e)
		if int(e.Delivery) >= g.DeliveriesMax {
			m.settle1(env, g, e)
			m.addDead(env, g, e, ReasonDeliveries)
			continue
		}
		e.Member = ""
		m.file(env, g, e)
	}
}

// release takes lease e off its member's count.
func (m *Module) release(g *group, e *entry) {
	if g.inflight[e.Member]--; g.inflight[e.Member] <= 0 {
		delete(g.inflight, e.Member)
	}
}

// file adds e to the group's indexes, its record and the digest.
func (m *Module) file(env *module.Env, g *group, e *entry) {
	g.pending.ReplaceOrInsert(e)
	if e.leased() {
		g.leases.ReplaceOrInsert(e)
	} else {
		g.waiting.ReplaceOrInsert(e)
	}
	m.digest ^= entryHash(g.Name, e)
	env.Batch.Put(pendingKey(g.Name, e.P, e.Off), appendEntry(nil, e))
}

// unfile takes e out of the indexes and the digest, if it is there; its
// record stays until file rewrites it or settle1 deletes it.
func (m *Module) unfile(env *module.Env, g *group, e *entry) {
	if _, ok := g.pending.Delete(e); !ok {
		return
	}
	g.leases.Delete(e)
	g.waiting.Delete(e)
	m.digest ^= entryHash(g.Name, e)
}

// settle1 forgets e: acked, dead or trimmed.
func (m *Module) settle1(env *module.Env, g *group, e *entry) {
	m.unfile(env, g, e)
	env.Batch.Delete(pendingKey(g.Name, e.P, e.Off))
}

// addDead puts e on the dead-letter list, pushing out the oldest letter
// when the list is full (counted: nothing leaves it unseen).
func (m *Module) addDead(env *module.Env, g *group, e *entry, reason uint8) {
	if len(g.dead) >= m.limits.DeadMax {
		m.dropDead(env, g, 0)
		g.stats.DeadEvicted++
	}
	g.deadSeq++
	d := DeadLetter{Seq: g.deadSeq, P: e.P, Off: e.Off, Deliveries: e.Delivery, Reason: reason, AtNs: env.NowNs}
	g.dead = append(g.dead, d)
	g.stats.DeadLettered++
	m.digest ^= deadHash(g.Name, &d)
	env.Batch.Put(deadKey(g.Name, d.Seq), appendDead(nil, &d))
	m.noteDead(g, &d)
}

func (m *Module) dropDead(env *module.Env, g *group, i int) {
	m.digest ^= deadHash(g.Name, &g.dead[i])
	env.Batch.Delete(deadKey(g.Name, g.dead[i].Seq))
	g.dead = slices.Delete(g.dead, i, i+1)
}

// deadCmd replays or drops dead letters seqs, all or none. A replayed
// message waits to go out at once, its deliveries counted from zero; it
// must lie below the partition's next offset and not be unsettled already
// (a reset since may have put it back in the queue).
func (m *Module) deadCmd(env *module.Env, g *group, verb uint8, seqs []uint64) (Answer, error) {
	idx := make([]int, len(seqs))
	for i, s := range seqs {
		j, ok := slices.BinarySearchFunc(g.dead, s, func(d DeadLetter, s uint64) int { return cmpU64(d.Seq, s) })
		if !ok || slices.Contains(seqs[:i], s) {
			return Answer{}, fmt.Errorf("%w: dead letter %d of %q", ErrNotFound, s, g.Name)
		}
		idx[i] = j
		if verb != Replay {
			continue
		}
		d := &g.dead[j]
		if _, held := g.pending.Get(&entry{P: d.P, Off: d.Off}); held || d.P >= g.parts || d.Off >= g.offsets[d.P] {
			return Answer{}, fmt.Errorf("%w: dead letter %d (%d/%d) is back in the queue already", ErrState, s, d.P, d.Off)
		}
	}
	if verb == Replay && g.pending.Len()+len(seqs) > m.limits.PendingMax {
		return Answer{}, fmt.Errorf("%w: %d unsettled in %q, max %d", ErrFull, g.pending.Len(), g.Name, m.limits.PendingMax)
	}
	var a Answer
	slices.Sort(idx)
	for k := len(idx) - 1; k >= 0; k-- { // from the back, so the places stay right
		d := g.dead[idx[k]]
		a.Dead = append(a.Dead, d)
		if verb == Replay {
			m.file(env, g, &entry{P: d.P, Off: d.Off, At: env.NowNs})
		}
		m.dropDead(env, g, idx[k])
	}
	slices.Reverse(a.Dead)
	return a, nil
}

// forgetPartition drops every unsettled message of partition q (a reset).
func (m *Module) forgetPartition(env *module.Env, g *group, q int) {
	var drop []*entry
	g.pending.AscendGreaterOrEqual(&entry{P: q}, func(e *entry) bool {
		if e.P != q {
			return false
		}
		drop = append(drop, e)
		return true
	})
	for _, e := range drop {
		m.settle1(env, g, e)
	}
}

// leasedIn reports whether a message of partition q is leased.
func (g *group) leasedIn(q int) bool {
	found := false
	g.pending.AscendGreaterOrEqual(&entry{P: q}, func(e *entry) bool {
		if e.P != q {
			return false
		}
		found = e.leased()
		return !found
	})
	return found
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
