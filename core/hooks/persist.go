package hooks

import (
	"encoding/binary"
	"fmt"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Persist writes every record of the table (after a restore).
func (m *Module) Persist(b *storage.Batch) {
	for _, name := range sortedNames(m.hooks) {
		h := m.hooks[name]
		b.Put(hookKey(name), appendHook(nil, h))
		for i := range h.backlog {
			b.Put(queueKey(name, h.backlog[i].Seq), appendDelivery(nil, &h.backlog[i]))
			h.backlog[i].stored = true
		}
	}
}

// Clear deletes every record of the table (before a snapshot replaces it).
func (m *Module) Clear(b *storage.Batch) {
	for _, name := range sortedNames(m.hooks) {
		h := m.hooks[name]
		b.Delete(hookKey(name))
		for i := range h.backlog {
			b.Delete(queueKey(name, h.backlog[i].Seq))
		}
	}
}

// Load reads the records: the hooks, then their backlogs in order.
func (m *Module) Load(disk storage.Reader) error {
	hooks := map[string]*hook{}
	err := module.ScanRecords(disk, prefixHook, func(name, payload []byte) error {
		r := &module.Reader{B: payload}
		h := readHook(r)
		if r.Err == nil && h.Name != string(name) {
			r.Fail("hook record %q holds %q", name, h.Name)
		}
		if err := r.Done("hook record"); err != nil {
			return err
		}
		hooks[h.Name] = h
		return nil
	})
	if err != nil {
		return err
	}
	err = module.ScanRecords(disk, prefixQueue, func(key, payload []byte) error {
		if len(key) < 10 || key[len(key)-9] != '/' {
			return fmt.Errorf("%w: delivery key %q", ErrCorrupt, key)
		}
		name, seq := string(key[:len(key)-9]), binary.BigEndian.Uint64(key[len(key)-8:])
		h := hooks[name]
		r := &module.Reader{B: payload}
		d := readDelivery(r)
		switch {
		case r.Err != nil:
		case h == nil:
			r.Fail("delivery of unknown hook %q", name)
		case d.Seq != seq:
			r.Fail("delivery record %d holds %d", seq, d.Seq)
		}
		if err := r.Done("delivery record"); err != nil {
			return err
		}
		d.stored = true
		h.backlog = append(h.backlog, d)
		return nil
	})
	if err != nil {
		return err
	}
	return m.install(hooks)
}

// install replaces the table with hooks, after checking each.
func (m *Module) install(hooks map[string]*hook) error {
	var d uint64
	for _, name := range sortedNames(hooks) {
		h := hooks[name]
		if err := m.limits.checkLoaded(h); err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		h.sum = hookHash(appendHook(nil, h))
		d ^= h.sum
		for i := range h.backlog {
			d ^= deliveryHash(name, &h.backlog[i])
		}
	}
	m.hooks, m.digest, m.asked = hooks, d, map[string]int64{}
	m.reorder()
	return nil
}

// Encode is the snapshot section: every hook with its backlog, by name.
func (m *Module) Encode() []byte {
	b := binary.AppendUvarint(nil, uint64(len(m.hooks)))
	for _, name := range sortedNames(m.hooks) {
		h := m.hooks[name]
		b = appendHook(b, h)
		b = binary.AppendUvarint(b, uint64(len(h.backlog)))
		for i := range h.backlog {
			b = appendDelivery(b, &h.backlog[i])
		}
	}
	return b
}

// Freeze encodes the table now.
func (m *Module) Freeze() module.Frozen { return module.Encoded(m.Encode()) }

// Restore replaces the table with a snapshot's; a snapshot from before
// hooks has none and restores an empty table.
func (m *Module) Restore(section []byte) error {
	hooks := map[string]*hook{}
	if len(section) == 0 {
		return m.install(hooks)
	}
	r := &module.Reader{B: section}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		h := readHook(r)
		for k := r.Count(); k > 0 && r.Err == nil; k-- {
			h.backlog = append(h.backlog, readDelivery(r))
		}
		if r.Err == nil && hooks[h.Name] != nil {
			r.Fail("hook %q repeated", h.Name)
		}
		hooks[h.Name] = h
	}
	if err := r.Done("hook table"); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return m.install(hooks)
}
