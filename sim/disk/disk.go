// Package disk is the simulator's in-memory disk: a storage.Store with realistic
// crash semantics.
//
// The disk has a durable layer, which survives any crash, and above it a
// write-ahead log holding, as encoded frames, every batch applied since the last
// Sync. Reads see the durable layer plus every applied batch, through a
// materialized volatile view: a hash map, with its keys sorted lazily, when a
// scan or a View needs them (those are rare; writes are not). The durable
// layer is kept as that view less an undo log of the values the applied
// batches replaced, so Sync, which makes the log durable, only forgets the
// undo log: it costs nothing per record. Crash
// decides, from a caller-supplied random source, how much of the log reached the
// platter (possibly tearing a frame), then recovers the way a real restart
// would: it decodes the surviving log frame by frame, checks each frame's length
// and checksum, applies the whole valid frames and discards everything from the
// first bad one on. It can also flip a bit in a durable record, which the core's
// record checksums (storage.Open) must catch.
//
// A Disk belongs to one goroutine (the simulator's) and is deterministic: its
// only randomness is the *rand.Rand passed to Crash, and it never lets map
// iteration order reach a result.
package disk

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/aspen-db/aspen/core/storage"
)

// Faults says what can go wrong at a crash. Probabilities are in [0, 1]; values
// outside behave as the nearer bound.
type Faults struct {
	// KeepUnsyncedProb is the chance each unsynced batch, in order, reached the
	// platter before the crash; the first lost one ends the run of kept ones.
	KeepUnsyncedProb float64
	// TornProb is the chance the log is cut in the middle of the first lost frame
	// (a torn write), leaving a partial frame recovery must discard.
	TornProb float64
	// BitFlipProb is the chance one bit of one durable record's value is flipped
	// (after recovery, so it hits the state the restarted node reads). Records
	// with empty values, or still corrupt from an earlier crash, are spared.
	BitFlipProb float64
}

// CrashReport says what a crash did.
type CrashReport struct {
	UnsyncedBatches int    // batches applied since the last Sync
	KeptBatches     int    // of those, how many recovery applied (a prefix)
	Torn            bool   // the first lost frame was partly written
	FlippedKey      []byte // the record whose value had a bit flipped, or nil
}

// Disk is an in-memory storage.Store with crash semantics. The zero value is not
// usable; call New.
type Disk struct {
	// SyncIsNoop, for planted-bug tests, makes Sync return nil without making
	// anything durable: a disk that lies about fsync.
	SyncIsNoop bool

	view        map[string][]byte // the durable layer plus every frame in wal
	viewSize    int               // key and value bytes in view
	durableSize int               // key and value bytes in the durable layer
	// undo holds, for every op applied since the last Sync that found a
	// record or wrote one, in order, what the view held at its key before:
	// the view with undo rolled back, last first, is the durable layer (what
	// survives any crash).
	undo []undoOp

	// The view's keys in order, kept lazily: keys as of the last sort (some
	// deleted since), added those put since that were not in the view then,
	// and sorted, when neither changed, the view as a sorted slice.
	keys   []string
	added  []string
	sorted []entry

	wal       []byte // frames of the batches applied since the last Sync
	frameEnds []int  // offset in wal just past each frame
	sealed    int    // frames of wal whose checksum is written (log)

	flips map[string]*flip // records whose value a crash corrupted
}

var _ storage.Store = (*Disk)(nil)

// entry is one record. val is never modified in place once stored, so views
// and the undo log may share it.
type entry struct {
	key string
	val []byte
}

// undoOp is what an applied op replaced: the key's value before it, or no
// record at all (had false).
type undoOp struct {
	key string
	old []byte
	had bool
}

// flip remembers a record's value from before a bit flip so Repair can restore
// it. The durable layer still holds the flipped value for as long as the entry
// exists (any durable write to the key deletes the entry); viewTouched says a
// later, not yet durable, Apply has overwritten the key in the view (so the
// durable value is in the undo log).
type flip struct {
	orig        []byte
	viewTouched bool
}

// maxRetainedWAL bounds the log buffer capacity kept for reuse after a Sync.
const maxRetainedWAL = 1 << 20

// maxRetainedUndo bounds the undo log capacity (ops) kept for reuse after a Sync.
const maxRetainedUndo = 1 << 14

// New returns an empty disk.
func New() *Disk {
	return &Disk{
		view:  make(map[string][]byte),
		flips: make(map[string]*flip),
	}
}

// Get returns a copy of key's value as the disk's readers see it: the durable
// layer plus every applied batch.
func (d *Disk) Get(key []byte) ([]byte, bool, error) {
	v, ok := d.view[string(key)]
	if !ok {
		return nil, false, nil
	}
	return clone(v), true, nil
}

// Scan calls fn with copies of each key with the prefix and its value, in
// ascending key order, and stops at the first error fn returns, returning it.
// fn may write to the disk; it visits the records as they were when the scan
// began.
func (d *Disk) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return scan(d.sortedView(), prefix, fn, clone)
}

// View returns a read-only copy of what the disk's readers see now (the
// durable layer plus every applied batch), for checkers that rebuild a replica
// from its disk without stopping it. Later writes to the disk never show
// through it. It costs a pass over the records when the disk changed since
// the last View (a merge of the keys added since into the sorted ones), and
// nothing otherwise. Its Scan hands out the stored values themselves, not
// copies (a reload reads every record, and copying them was a third of its
// allocations): callers must not modify them.
func (d *Disk) View() storage.Reader { return frozenView(d.sortedView()) }

// DurableView is View for the durable layer alone: what a crash that keeps no
// unsynced batch would recover (before any bit flip it might add). It costs a
// copy and a sort of the records when batches are unsynced.
func (d *Disk) DurableView() storage.Reader { return frozenView(d.durable()) }

// durable returns the durable layer in key order.
func (d *Disk) durable() []entry {
	if len(d.undo) == 0 {
		return d.sortedView()
	}
	m := maps.Clone(d.view)
	for i := len(d.undo) - 1; i >= 0; i-- {
		u := &d.undo[i]
		if u.had {
			m[u.key] = u.old
		} else {
			delete(m, u.key)
		}
	}
	out := make([]entry, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, entry{key: k, val: m[k]})
	}
	return out
}

// sortedView returns the view as a slice in key order, which nobody may
// modify: it merges the keys added since the last call into the sorted
// ones, dropping those deleted since.
func (d *Disk) sortedView() []entry {
	if d.sorted != nil {
		return d.sorted
	}
	slices.Sort(d.added)
	out := make([]entry, 0, len(d.view))
	keys := make([]string, 0, len(d.view))
	i, j := 0, 0
	for i < len(d.keys) || j < len(d.added) {
		var k string
		switch {
		case j == len(d.added) || (i < len(d.keys) && d.keys[i] < d.added[j]):
			k = d.keys[i]
			i++
		case i == len(d.keys) || d.added[j] < d.keys[i]:
			k = d.added[j]
			j++
		default: // deleted, then put again
			k = d.keys[i]
			i++
			j++
		}
		if len(keys) > 0 && keys[len(keys)-1] == k {
			continue // added twice (put, deleted, put again)
		}
		if v, ok := d.view[k]; ok {
			out = append(out, entry{key: k, val: v})
			keys = append(keys, k)
		}
	}
	d.keys, d.added, d.sorted = keys, d.added[:0], out
	return out
}

// put writes a record to the view and returns what it replaced.
func (d *Disk) put(k string, v []byte) (old []byte, had bool) {
	old, had = d.view[k]
	d.view[k] = v
	d.viewSize += len(k) + len(v)
	if had {
		d.viewSize -= len(k) + len(old)
	} else {
		d.added = append(d.added, k)
	}
	d.sorted = nil
	return old, had
}

// del deletes a record from the view and returns what it held.
func (d *Disk) del(k string) (old []byte, had bool) {
	old, had = d.view[k]
	if had {
		delete(d.view, k)
		d.viewSize -= len(k) + len(old)
		d.sorted = nil
	}
	return old, had
}

// rollback undoes the ops applied since the last Sync, last first: the view
// becomes the durable layer.
func (d *Disk) rollback() {
	for i := len(d.undo) - 1; i >= 0; i-- {
		u := &d.undo[i]
		if u.had {
			d.put(u.key, u.old)
		} else {
			d.del(u.key)
		}
	}
}

// frozenView reads a sorted slice nobody writes to any more.
type frozenView []entry

func (v frozenView) Get(key []byte) ([]byte, bool, error) {
	i, ok := sort.Find(len(v), func(i int) int { return strings.Compare(string(key), v[i].key) })
	if !ok {
		return nil, false, nil
	}
	return clone(v[i].val), true, nil
}

func (v frozenView) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return scan(v, prefix, fn, shared)
}

// shared hands out a stored value as it is: values are never modified in
// place once stored.
func shared(b []byte) []byte { return b }

// scan visits the records of sorted with the prefix. value says how values
// are handed out.
func scan(sorted []entry, prefix []byte, fn func(key, value []byte) error, value func([]byte) []byte) error {
	p := string(prefix)
	i, _ := sort.Find(len(sorted), func(i int) int { return strings.Compare(p, sorted[i].key) })
	for _, e := range sorted[i:] {
		if !strings.HasPrefix(e.key, p) {
			return nil
		}
		if err := fn([]byte(e.key), value(e.val)); err != nil {
			return err
		}
	}
	return nil
}

// Apply appends the batch to the write-ahead log and makes it visible to reads.
// It copies everything it keeps, so the caller may reuse b.
func (d *Disk) Apply(b storage.Batch) error {
	wal, err := appendUnsealedFrame(d.wal, b.Ops)
	if err != nil {
		return err
	}
	d.wal = wal
	d.frameEnds = append(d.frameEnds, len(wal))
	for i := range b.Ops {
		op := &b.Ops[i]
		if op.Delete {
			if _, had := d.view[string(op.Key)]; !had {
				continue // nothing to delete, nothing to undo, no flip to end
			}
		}
		k := string(op.Key)
		var old []byte
		var had bool
		if op.Delete {
			old, had = d.del(k)
		} else {
			old, had = d.put(k, clone(op.Value))
		}
		d.undo = append(d.undo, undoOp{key: k, old: old, had: had})
		if len(d.flips) > 0 {
			if f := d.flips[k]; f != nil {
				f.viewTouched = true
			}
		}
	}
	return nil
}

// Sync makes every applied batch durable, then empties the log. The view
// already holds what the log's frames decode to (the tests check both), so
// making them durable is forgetting how to undo them. A durable write to a
// key ends any bit flip in it. With SyncIsNoop it does nothing.
func (d *Disk) Sync() error {
	if d.SyncIsNoop || len(d.frameEnds) == 0 {
		return nil
	}
	if len(d.flips) > 0 {
		for i := range d.undo {
			delete(d.flips, d.undo[i].key)
		}
	}
	d.durableSize = d.viewSize
	d.resetWAL()
	return nil
}

// Crash simulates power loss and the restart after it. It decides from rng which
// unsynced batches reached the platter (a prefix, each with chance
// f.KeepUnsyncedProb) and whether the first lost one was torn, then recovers:
// it decodes the surviving log frame by frame, applies each whole frame whose
// length and checksum are valid to the durable layer, and discards the rest.
// Afterwards the disk holds only the recovered state, in which, with chance
// f.BitFlipProb, one bit of one record's value is flipped.
func (d *Disk) Crash(rng *rand.Rand, f Faults) CrashReport {
	n := len(d.frameEnds)
	rep := CrashReport{UnsyncedBatches: n}
	d.log()
	kept := 0
	for kept < n && rng.Float64() < f.KeepUnsyncedProb {
		kept++
	}
	end := d.frameStart(kept)
	surviving := d.wal[:end:end] // capped, so appending below copies
	if kept < n && rng.Float64() < f.TornProb {
		rep.Torn = true
		frame := d.wal[end:d.frameEnds[kept]]
		cut := 1 + rng.IntN(len(frame)-1) // frames are at least headerSize+1 bytes
		surviving = append(surviving, frame[:cut]...)
		if rng.IntN(2) == 0 {
			// The rest of the frame's sectors hold stale garbage rather than
			// nothing. Recovery must reject it by checksum; in the unlikely event
			// the garbage checks out, fall back to a plain truncation.
			partial := len(surviving)
			for range len(frame) - cut {
				surviving = append(surviving, byte(rng.Uint32()))
			}
			if _, _, err := decodeFrame(surviving[end:]); err == nil {
				surviving = surviving[:partial]
			}
		}
	}

	// Restart: the view falls back to the durable layer, and recovery sees
	// only the surviving bytes.
	d.rollback()
	for _, fl := range d.flips {
		fl.viewTouched = false // the view is the durable layer again
	}
	frames, _, _ := decodeLog(surviving)
	for _, ops := range frames {
		d.applyDurable(ops)
	}
	rep.KeptBatches = len(frames)
	d.resetWAL()

	if rng.Float64() < f.BitFlipProb {
		rep.FlippedKey = d.flipBit(rng)
	}
	return rep
}

// Repair undoes the bit flips injected by earlier crashes, in records not
// overwritten since, standing in for an operator restoring the bad sectors from
// a mirror.
func (d *Disk) Repair() {
	keys := make([]string, 0, len(d.flips))
	for k := range d.flips {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fl := d.flips[k]
		if fl.viewTouched {
			// The view holds a later, unsynced write; the durable value is
			// what the first of them replaced.
			i := slices.IndexFunc(d.undo, func(u undoOp) bool { return u.key == k })
			d.undo[i].old = fl.orig
		} else {
			d.putDurable(k, fl.orig)
		}
		delete(d.flips, k)
	}
}

// UnsyncedBatches counts the batches applied since the last Sync: what a
// crash may lose.
func (d *Disk) UnsyncedBatches() int { return len(d.frameEnds) }

// Bytes returns the approximate size of the disk: durable keys and values plus
// the write-ahead log.
func (d *Disk) Bytes() int { return d.durableSize + len(d.wal) }

// Hash returns a SHA-256 of the durable layer, in key order.
func (d *Disk) Hash() [32]byte {
	h := sha256.New()
	var lens [2 * binary.MaxVarintLen64]byte
	for _, e := range d.durable() {
		b := binary.AppendUvarint(lens[:0], uint64(len(e.key)))
		h.Write(b)
		h.Write([]byte(e.key))
		b = binary.AppendUvarint(lens[:0], uint64(len(e.val)))
		h.Write(b)
		h.Write(e.val)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// log returns the write-ahead log with every frame's checksum written. Apply
// leaves them out (a crc of every batch was 1% of a run): only a crash
// reads the log.
func (d *Disk) log() []byte {
	for ; d.sealed < len(d.frameEnds); d.sealed++ {
		sealFrame(d.wal[d.frameStart(d.sealed):])
	}
	return d.wal
}

// frameStart is the offset in the log of frame i (len(wal) for i = len(frameEnds)).
func (d *Disk) frameStart(i int) int {
	if i == 0 {
		return 0
	}
	return d.frameEnds[i-1]
}

// resetWAL empties the log and the undo log: the view is the durable layer.
func (d *Disk) resetWAL() {
	if cap(d.wal) > maxRetainedWAL {
		d.wal = nil
	} else {
		d.wal = d.wal[:0]
	}
	d.frameEnds = d.frameEnds[:0]
	d.sealed = 0
	if cap(d.undo) > maxRetainedUndo {
		d.undo = nil
	} else {
		clear(d.undo) // drop the replaced values for the collector
		d.undo = d.undo[:0]
	}
}

// applyDurable writes one decoded frame to the durable layer, when the view is
// that layer (no unsynced batch). The records alias the log, so values are
// copied. A durable write to a key ends any bit flip in it.
func (d *Disk) applyDurable(ops []record) {
	for _, r := range ops {
		k := string(r.key)
		if r.del {
			d.del(k)
		} else {
			d.put(k, clone(r.value))
		}
		if len(d.flips) > 0 {
			delete(d.flips, k)
		}
	}
	d.durableSize = d.viewSize
}

// putDurable writes a record to the durable layer, when the view is that
// layer for key k (no unsynced batch wrote it).
func (d *Disk) putDurable(k string, v []byte) {
	old, had := d.put(k, v)
	d.durableSize += len(k) + len(v)
	if had {
		d.durableSize -= len(k) + len(old)
	}
}

// flipBit flips one bit of one flippable durable value, chosen from rng over the
// keys in ascending order, and returns the key (nil if none is flippable).
// Called right after recovery, when the view is the durable layer.
func (d *Disk) flipBit(rng *rand.Rand) []byte {
	sorted := d.sortedView()
	candidates := 0
	for _, e := range sorted {
		if d.flippable(e) {
			candidates++
		}
	}
	if candidates == 0 {
		return nil
	}
	target := rng.IntN(candidates)
	var victim entry
	for _, e := range sorted {
		if !d.flippable(e) {
			continue
		}
		if target == 0 {
			victim = e
			break
		}
		target--
	}
	bit := rng.IntN(8 * len(victim.val))
	flipped := clone(victim.val) // values are shared, never modified in place
	flipped[bit/8] ^= 1 << (bit % 8)
	d.put(victim.key, flipped)
	d.flips[victim.key] = &flip{orig: victim.val}
	return []byte(victim.key)
}

// flippable says whether a bit flip may hit e: a non-empty value not already
// corrupt, so that every flip leaves exactly one bad bit for checksums to catch
// (a second flip could otherwise undo the first).
func (d *Disk) flippable(e entry) bool {
	return len(e.val) > 0 && d.flips[e.key] == nil
}

// clone returns a copy of b, non-nil even when b is empty.
func clone(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}
