package locks

import (
	"encoding/binary"
	"maps"
	"slices"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Persist writes every record (after a restore).
func (m *Module) Persist(b *storage.Batch) {
	for _, id := range m.sortedIDs() {
		b.Put(sessionKey(id), appendSession(nil, m.sessions[id]))
	}
	for _, k := range m.sortedDelays() {
		b.Put(delayKey(k), binary.AppendVarint(nil, m.delays[k]))
	}
}

// Clear deletes every record (before a snapshot replaces them).
func (m *Module) Clear(b *storage.Batch) {
	for _, id := range m.sortedIDs() {
		b.Delete(sessionKey(id))
	}
	for _, k := range m.sortedDelays() {
		b.Delete(delayKey(k))
	}
}

func (m *Module) sortedDelays() []string { return slices.Sorted(maps.Keys(m.delays)) }

// Load reads the records. The KV store loads before this module (the
// host's order), so the holder index is rebuilt from its records.
func (m *Module) Load(disk storage.Reader) error {
	m.reset()
	err := module.ScanRecords(disk, prefixSession, func(id, v []byte) error {
		r := &module.Reader{B: v}
		s := readSession(r)
		if r.Err == nil && s.ID != string(id) {
			r.Fail("session record %q holds %q", id, s.ID)
		}
		if err := r.Done("session record"); err != nil {
			return err
		}
		m.install(&s)
		return nil
	})
	if err == nil {
		err = module.ScanRecords(disk, prefixDelay, func(key, v []byte) error {
			r := &module.Reader{B: v}
			until := r.Varint()
			if err := r.Done("lock delay record"); err != nil {
				return err
			}
			m.delays[string(key)] = until
			m.digest ^= delayHash(string(key), until)
			return nil
		})
	}
	if err != nil {
		return err
	}
	m.rebuildHolders()
	return nil
}

func (m *Module) install(s *Session) {
	m.sessions[s.ID] = s
	m.digest ^= sessionHash(s)
	if s.Lease != 0 {
		m.byLease[s.Lease] = s.ID
	}
}

// rebuildHolders derives which session holds which key from the KV
// records; only keys of live sessions can be held, so without sessions
// there is nothing to read.
func (m *Module) rebuildHolders() {
	if len(m.sessions) == 0 {
		return
	}
	m.kv.M.Ascend(func(key []byte, r kv.Record) bool {
		if r.Session != "" {
			m.hold(string(key), r.Session)
		}
		return true
	})
}

// Freeze encodes the table now: it is small next to the KV store.
func (m *Module) Freeze() module.Frozen {
	b := binary.AppendUvarint(nil, uint64(len(m.sessions)))
	for _, id := range m.sortedIDs() {
		b = appendSession(b, m.sessions[id])
	}
	delays := m.sortedDelays()
	b = binary.AppendUvarint(b, uint64(len(delays)))
	for _, k := range delays {
		b = appendString(b, k)
		b = binary.AppendVarint(b, m.delays[k])
	}
	return module.Encoded(b)
}

// Restore replaces the table with a snapshot's (none: an empty table). The
// KV store restores before this module.
func (m *Module) Restore(section []byte) error {
	m.reset()
	m.Forget()
	r := &module.Reader{B: section}
	if len(section) > 0 {
		for n := r.Count(); n > 0 && r.Err == nil; n-- {
			s := readSession(r)
			if m.sessions[s.ID] != nil {
				r.Fail("session %q repeated", s.ID)
			}
			m.install(&s)
		}
		for n := r.Count(); n > 0 && r.Err == nil; n-- {
			k, until := r.String(), r.Varint()
			m.delays[k] = until
			m.digest ^= delayHash(k, until)
		}
	}
	if err := r.Done("session table"); err != nil {
		m.reset()
		return err
	}
	m.rebuildHolders()
	return nil
}
