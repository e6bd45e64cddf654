package groups

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Persist writes every record of the table (after a restore).
func (m *Module) Persist(b *storage.Batch) {
	m.persistMeta(b)
	for _, name := range m.names {
		g := m.groups[name]
		m.saveGroup(b, g)
		g.pending.Ascend(func(e *entry) bool {
			b.Put(pendingKey(name, e.P, e.Off), appendEntry(nil, e))
			return true
		})
		for i := range g.dead {
			b.Put(deadKey(name, g.dead[i].Seq), appendDead(nil, &g.dead[i]))
		}
	}
}

// Clear deletes every record of the table (before a snapshot replaces it).
func (m *Module) Clear(b *storage.Batch) {
	b.Delete(keyMeta)
	for _, name := range m.names {
		g := m.groups[name]
		b.Delete(groupKey(name))
		g.pending.Ascend(func(e *entry) bool {
			b.Delete(pendingKey(name, e.P, e.Off))
			return true
		})
		for i := range g.dead {
			b.Delete(deadKey(name, g.dead[i].Seq))
		}
	}
}

// Load reads the records: the meta, the groups, then their unsettled
// messages and dead letters.
func (m *Module) Load(disk storage.Reader) error {
	var graceTerm uint64
	groups := map[string]*group{}
	err := module.ScanRecords(disk, keyMeta, func(_, v []byte) error {
		r := &module.Reader{B: v}
		graceTerm = r.Uvarint()
		return r.Done("group meta")
	})
	if err == nil {
		err = module.ScanRecords(disk, prefixGroup, func(k, v []byte) error {
			r := &module.Reader{B: v}
			g := readGroup(r)
			if g == nil {
				return r.Done("group record")
			}
			if name, err := keyName(k, 0); err != nil || r.Err == nil && g.Name != name {
				r.Fail("group record %q holds %q", k, g.Name)
			}
			if err := r.Done("group record"); err != nil {
				return err
			}
			groups[g.Name] = g
			return nil
		})
	}
	if err == nil {
		err = module.ScanRecords(disk, prefixPending, func(k, v []byte) error {
			r := &module.Reader{B: v}
			e := readEntry(r)
			name, kerr := keyName(k, 12)
			g := groups[name]
			if kerr != nil || g == nil || binary.BigEndian.Uint32(k[len(k)-12:]) != uint32(e.P) || binary.BigEndian.Uint64(k[len(k)-8:]) != e.Off {
				r.Fail("pending record %q holds %d/%d", k, e.P, e.Off)
			}
			if err := r.Done("pending record"); err != nil {
				return err
			}
			g.pending.ReplaceOrInsert(e)
			return nil
		})
	}
	if err == nil {
		err = module.ScanRecords(disk, prefixDead, func(k, v []byte) error {
			r := &module.Reader{B: v}
			d := readDead(r)
			name, kerr := keyName(k, 8)
			g := groups[name]
			if kerr != nil || g == nil || binary.BigEndian.Uint64(k[len(k)-8:]) != d.Seq {
				r.Fail("dead-letter record %q holds %d", k, d.Seq)
			}
			if err := r.Done("dead-letter record"); err != nil {
				return err
			}
			g.dead = append(g.dead, d)
			return nil
		})
	}
	if err != nil {
		return err
	}
	return m.install(groups, graceTerm)
}

// keyName reads the length-prefixed name at the start of key k, which
// must be followed by exactly tail bytes.
func keyName(k []byte, tail int) (string, error) {
	r := &module.Reader{B: k}
	name := r.String()
	if r.Err != nil || len(r.B) != tail {
		return "", fmt.Errorf("%w: key %q", ErrCorrupt, k)
	}
	return name, nil
}

// install replaces the table with groups, after checking each, and
// rebuilds what is derived: indexes, in-flight counts, names, digest.
func (m *Module) install(groups map[string]*group, graceTerm uint64) error {
	names := make([]string, 0, len(groups))
	for name := range groups {
		names = append(names, name)
	}
	slices.Sort(names)
	d := uint64(0)
	for _, name := range names {
		g := groups[name]
		if err := m.checkLoaded(g); err != nil {
			return fmt.Errorf("%w: group %q: %v", ErrCorrupt, name, err)
		}
		d ^= groupHash(g)
		g.pending.Ascend(func(e *entry) bool {
			d ^= entryHash(name, e)
			if e.leased() {
				g.leases.ReplaceOrInsert(e)
				g.inflight[e.Member]++
			} else {
				g.waiting.ReplaceOrInsert(e)
			}
			return true
		})
		for i := range g.dead {
			d ^= deadHash(name, &g.dead[i])
		}
	}
	m.groups, m.names, m.digest, m.graceTerm = groups, names, d, graceTerm
	m.asked, m.changed = map[string]int64{}, nil
	return nil
}

// checkLoaded refuses a group no sequence of commands could have made.
func (m *Module) checkLoaded(g *group) error {
	if err := m.checkDef(&g.Def); err != nil {
		return err
	}
	if g.parts < 1 || g.parts > m.limits.PartitionsMax || len(g.members) > m.limits.MembersMax {
		return fmt.Errorf("%d partitions, %d members", g.parts, len(g.members))
	}
	for p := range g.parts {
		t, o := g.target[p], g.owner[p]
		if (t == "") != (len(g.members) == 0) || o != "" && g.members[o] == nil {
			return fmt.Errorf("partition %d targets %q, owned by %q, with %d members", p, t, o, len(g.members))
		}
	}
	var bad error
	g.pending.Ascend(func(e *entry) bool {
		if e.P >= g.parts || e.Off >= g.offsets[e.P] || e.leased() && e.Delivery == 0 {
			bad = fmt.Errorf("unsettled message %d/%d (next %d) delivery %d", e.P, e.Off, g.offsets[min(e.P, g.parts-1)], e.Delivery)
		}
		return bad == nil
	})
	if bad != nil {
		return bad
	}
	if g.pending.Len() > m.limits.PendingMax || len(g.dead) > m.limits.DeadMax {
		return fmt.Errorf("%d unsettled, %d dead letters", g.pending.Len(), len(g.dead))
	}
	for i := range g.dead {
		if s := g.dead[i].Seq; s == 0 || s > g.deadSeq || i > 0 && g.dead[i-1].Seq >= s {
			return fmt.Errorf("dead letter %d out of order (last %d)", s, g.deadSeq)
		}
	}
	return nil
}

// Encode is the snapshot section, version 1:
//
//	grace term uvarint | group count uvarint | per group, by name: the
//	group record | unsettled count uvarint | entries by (p, off) |
//	dead count uvarint | dead letters by seq
func (m *Module) Encode() []byte {
	b := binary.AppendUvarint(nil, m.graceTerm)
	b = binary.AppendUvarint(b, uint64(len(m.names)))
	for _, name := range m.names {
		g := m.groups[name]
		b = appendGroup(b, g)
		b = binary.AppendUvarint(b, uint64(g.pending.Len()))
		g.pending.Ascend(func(e *entry) bool {
			b = appendEntry(b, e)
			return true
		})
		b = binary.AppendUvarint(b, uint64(len(g.dead)))
		for i := range g.dead {
			b = appendDead(b, &g.dead[i])
		}
	}
	return b
}

// Freeze encodes the table now.
func (m *Module) Freeze() module.Frozen { return module.Encoded(m.Encode()) }

// Restore replaces the table with a snapshot's; a snapshot from before
// groups has none and restores an empty table.
func (m *Module) Restore(section []byte) error {
	groups := map[string]*group{}
	if len(section) == 0 {
		return m.install(groups, 0)
	}
	r := &module.Reader{B: section}
	graceTerm := r.Uvarint()
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		g := readGroup(r)
		if r.Err != nil {
			break
		}
		for k := r.Count(); k > 0 && r.Err == nil; k-- {
			if e := readEntry(r); r.Err == nil {
				if _, dup := g.pending.ReplaceOrInsert(e); dup {
					r.Fail("message %d/%d repeated", e.P, e.Off)
				}
			}
		}
		for k := r.Count(); k > 0 && r.Err == nil; k-- {
			g.dead = append(g.dead, readDead(r))
		}
		if r.Err == nil && groups[g.Name] != nil {
			r.Fail("group %q repeated", g.Name)
		}
		groups[g.Name] = g
	}
	if err := r.Done("group table"); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return m.install(groups, graceTerm)
}
