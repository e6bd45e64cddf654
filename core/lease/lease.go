// Package lease is the replicated table of leases: etcd-style time-to-live
// grants that keys attach to, so that the keys go when the lease does.
//
// Time is whatever the caller passes in, and the node passes the replicated
// time of the entry being applied (the leader's stamp on the log), never a
// replica's own clock: every replica then agrees on every deadline. Nothing
// here expires a lease by itself; the leader finds the leases past their
// deadline (Expired) and proposes their expiry, which every replica applies
// at the same index.
package lease

import (
	"errors"
	"fmt"
	"slices"
	"time" // durations only, for messages: the table never reads a clock

	"github.com/google/btree"
)

// ID names a lease; 0 is never a lease (it means "no lease" on a key).
type ID int64

// Lease is one lease as clients see it.
type Lease struct {
	ID       ID
	TTLNs    int64 // as granted
	ExpiryNs int64 // the replicated time from which it may be expired
	Keys     int   // keys attached to it
}

// Limits bound the table; every insert checks them.
type Limits struct {
	LeasesMax       int
	KeysPerLeaseMax int
	TTLMinNs        int64
	TTLMaxNs        int64
}

// DefaultLimits returns the limits a node uses unless configured otherwise.
// The shortest TTL is well above an election timeout plus the staleness of
// replicated time, so that a failover cannot eat a lease's whole life.
func DefaultLimits() Limits {
	return Limits{LeasesMax: 10_000, KeysPerLeaseMax: 10_000, TTLMinNs: 2e9, TTLMaxNs: 30 * 24 * 3600e9}
}

// Expected refusals; the node answers them as invalid requests.
var (
	ErrNotFound = errors.New("lease not found")
	ErrExists   = errors.New("lease already exists")
	ErrTTL      = errors.New("ttl out of range")
	ErrFull     = errors.New("too many leases")
	ErrKeysFull = errors.New("lease holds too many keys")
)

type entry struct {
	ttl, expiry int64
	keys        map[string]struct{}
}

// deadline orders leases by expiry, ties by id, so Expired is deterministic.
type deadline struct {
	at int64
	id ID
}

func deadlineLess(a, b deadline) bool { return a.at < b.at || a.at == b.at && a.id < b.id }

// Table is the set of live leases and the keys attached to each. The zero
// value is not usable; call New.
type Table struct {
	limits Limits
	leases map[ID]*entry
	byKey  map[string]ID
	order  *btree.BTreeG[deadline]
	last   ID // the highest id ever granted; chosen ids go above it
	// graceTerm is the leader term whose grace (Extend) was applied last:
	// a leader expires nothing before its own grace has applied.
	graceTerm uint64
	digest    uint64
}

// New returns an empty table.
func New(limits Limits) *Table {
	return &Table{limits: limits, leases: map[ID]*entry{}, byKey: map[string]ID{}, order: btree.NewG(8, deadlineLess)}
}

// Grant creates a lease with ttlNs from nowNs. An id of 0 asks the table to
// choose one (above every id granted so far); a given id must be positive and
// unused.
func (t *Table) Grant(id ID, ttlNs, nowNs int64) (Lease, error) {
	if err := t.checkTTL(ttlNs); err != nil {
		return Lease{}, err
	}
	switch {
	case len(t.leases) >= t.limits.LeasesMax:
		return Lease{}, fmt.Errorf("%w: %d held", ErrFull, len(t.leases))
	case id < 0:
		return Lease{}, fmt.Errorf("%w: id %d is negative", ErrNotFound, id)
	case id == 0:
		id = t.last + 1
	case t.leases[id] != nil:
		return Lease{}, fmt.Errorf("%w: %d", ErrExists, id)
	}
	e := &entry{ttl: ttlNs, expiry: nowNs + ttlNs, keys: map[string]struct{}{}}
	t.insert(id, e)
	return t.view(id, e), nil
}

func (t *Table) insert(id ID, e *entry) {
	t.leases[id] = e
	t.order.ReplaceOrInsert(deadline{e.expiry, id})
	t.digest ^= leaseHash(id, e)
	t.last = max(t.last, id)
}

func (t *Table) attach(id ID, k string) {
	t.leases[id].keys[k] = struct{}{}
	t.byKey[k] = id
	t.digest ^= keyHash(id, k)
}

func (t *Table) checkTTL(ttlNs int64) error {
	if ttlNs < t.limits.TTLMinNs || ttlNs > t.limits.TTLMaxNs {
		return fmt.Errorf("%w: %v, want %v to %v", ErrTTL, time.Duration(ttlNs), time.Duration(t.limits.TTLMinNs), time.Duration(t.limits.TTLMaxNs))
	}
	return nil
}

// KeepAlive moves a lease's deadline to nowNs plus its TTL (never earlier).
func (t *Table) KeepAlive(id ID, nowNs int64) (Lease, error) {
	e := t.leases[id]
	if e == nil {
		return Lease{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	t.setExpiry(id, e, max(e.expiry, nowNs+e.ttl))
	return t.view(id, e), nil
}

// Extend pushes every deadline to at least nowNs plus byNs: the grace of
// the leader of term, so that keep-alives lost in a failover do not expire a
// healthy lease (etcd does the same on promotion). It returns the leases
// whose deadline moved.
func (t *Table) Extend(term uint64, nowNs, byNs int64) []ID {
	var moved []ID
	for _, id := range t.ids() {
		e := t.leases[id]
		if at := nowNs + byNs; at > e.expiry {
			t.setExpiry(id, e, at)
			moved = append(moved, id)
		}
	}
	t.graceTerm = max(t.graceTerm, term)
	return moved
}

// GraceTerm is the term of the last leader whose grace applied.
func (t *Table) GraceTerm() uint64 { return t.graceTerm }

func (t *Table) setExpiry(id ID, e *entry, at int64) {
	if at == e.expiry {
		return
	}
	t.digest ^= leaseHash(id, e)
	t.order.Delete(deadline{e.expiry, id})
	e.expiry = at
	t.order.ReplaceOrInsert(deadline{e.expiry, id})
	t.digest ^= leaseHash(id, e)
}

// Revoke removes a lease and returns its keys in order, for the caller to delete.
func (t *Table) Revoke(id ID) ([][]byte, error) {
	e := t.leases[id]
	if e == nil {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	keys := sortedKeys(e.keys)
	out := make([][]byte, len(keys))
	for i, k := range keys {
		t.digest ^= keyHash(id, k)
		delete(t.byKey, k)
		out[i] = []byte(k)
	}
	t.digest ^= leaseHash(id, e)
	t.order.Delete(deadline{e.expiry, id})
	delete(t.leases, id)
	return out, nil
}

// Attach ties key to lease id, untying it from any other lease first; id 0
// only unties it. A put says which lease its key belongs to, a delete unties.
func (t *Table) Attach(key []byte, id ID) error {
	if id != 0 {
		e := t.leases[id]
		if e == nil {
			return fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		if _, ok := e.keys[string(key)]; !ok && len(e.keys) >= t.limits.KeysPerLeaseMax {
			return fmt.Errorf("%w: %d keys", ErrKeysFull, len(e.keys))
		}
	}
	k := string(key)
	if old, ok := t.byKey[k]; ok {
		t.digest ^= keyHash(old, k)
		delete(t.leases[old].keys, k)
		delete(t.byKey, k)
	}
	if id != 0 {
		t.attach(id, k)
	}
	return nil
}

// CanAttach reports whether Attach(key, id) would succeed, without changing
// anything: a txn checks every put before applying any.
func (t *Table) CanAttach(key []byte, id ID) error {
	if id == 0 {
		return nil
	}
	e := t.leases[id]
	if e == nil {
		return fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if _, ok := e.keys[string(key)]; !ok && len(e.keys) >= t.limits.KeysPerLeaseMax {
		return fmt.Errorf("%w: %d keys", ErrKeysFull, len(e.keys))
	}
	return nil
}

// Of returns the lease key is attached to, or 0.
func (t *Table) Of(key []byte) ID { return t.byKey[string(key)] }

// Expired lists, by deadline, at most max leases whose deadline is at or
// before nowNs.
func (t *Table) Expired(nowNs int64, max int) []ID {
	var out []ID
	t.order.Ascend(func(d deadline) bool {
		if d.at > nowNs || len(out) >= max {
			return false
		}
		out = append(out, d.id)
		return true
	})
	return out
}

// Get returns one lease and its keys in order.
func (t *Table) Get(id ID) (Lease, [][]byte, bool) {
	e := t.leases[id]
	if e == nil {
		return Lease{}, nil, false
	}
	keys := sortedKeys(e.keys)
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return t.view(id, e), out, true
}

// List returns every lease in id order.
func (t *Table) List() []Lease {
	out := make([]Lease, 0, len(t.leases))
	for _, id := range t.ids() {
		out = append(out, t.view(id, t.leases[id]))
	}
	return out
}

// Len returns the number of leases.
func (t *Table) Len() int { return len(t.leases) }

// Hash digests the table: leases, deadlines and attachments.
func (t *Table) Hash() uint64 {
	return mix64(t.digest ^ mix64(uint64(t.last)) ^ mix64(t.graceTerm+0x9e3779b97f4a7c15))
}

func (t *Table) view(id ID, e *entry) Lease {
	return Lease{ID: id, TTLNs: e.ttl, ExpiryNs: e.expiry, Keys: len(e.keys)}
}

func (t *Table) ids() []ID {
	ids := make([]ID, 0, len(t.leases))
	for id := range t.leases {
		ids = append(ids, id)
	}
	slices.Sort(ids) // map order must not reach output
	return ids
}

func sortedKeys(m map[string]struct{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
