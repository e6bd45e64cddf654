package locks

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Command kinds. Expiry has none of its own: a session's lease expires
// (core/lease) and its end invalidates the session in the same apply.
const (
	CmdCreate  byte = 8
	CmdRenew   byte = 9
	CmdDestroy byte = 10

	QueryInfo byte = 12
	QueryList byte = 13
	QueryNode byte = 14
)

// Records on disk: one per session, one per key in its lock delay.
var (
	prefix        = []byte("o/")
	prefixSession = []byte("o/s/")
	prefixDelay   = []byte("o/d/")
)

// Change is what an applied entry did to sessions, for checkers
// (module.Reporter).
type Change struct {
	Created     *Session
	Invalidated string   // a session that ended
	Expired     bool     // it ended because its lease expired
	Keys        [][]byte // the keys it held, released or deleted at Revision
	Revision    int64
	DelayNs     int64 // when set, Keys cannot be acquired before this time
}

// Module is the session table as a replicated module.
type Module struct {
	limits   Limits
	kv       *kv.Module
	leases   *lease.Module
	sessions map[string]*Session
	byLease  map[int64]string
	delays   map[string]int64 // key → the time its lock delay ends
	digest   uint64

	// Derived from the KV records, never stored: which session holds a key,
	// and the keys each session holds.
	holder map[string]string
	held   map[string]map[string]struct{}

	module.Reports[Change]
}

// NewModule returns an empty table wired to the KV store and the leases.
func NewModule(limits Limits, store *kv.Module, leases *lease.Module) *Module {
	m := &Module{limits: limits, kv: store, leases: leases}
	m.reset()
	store.UseLocks(m)
	store.Observe(m)
	leases.OnEnd(m.leaseEnded)
	return m
}

func (m *Module) reset() {
	m.sessions, m.byLease, m.delays, m.digest = map[string]*Session{}, map[int64]string{}, map[string]int64{}, 0
	m.holder, m.held = map[string]string{}, map[string]map[string]struct{}{}
}

func (m *Module) Name() string       { return "locks" }
func (m *Module) Version() uint64    { return 1 }
func (m *Module) Kinds() []byte      { return []byte{CmdCreate, CmdRenew, CmdDestroy} }
func (m *Module) QueryKinds() []byte { return []byte{QueryInfo, QueryList, QueryNode} }
func (m *Module) Prefixes() [][]byte { return [][]byte{prefix} }
func (m *Module) Hash() uint64       { return m.digest }

// Create asks for a session; its indexes and lease are the table's to set.
func Create(s Session) module.Command {
	s.CreateIndex, s.ModifyIndex, s.Lease = 0, 0, 0
	return module.Command{Kind: CmdCreate, Body: appendSession(nil, &s)}
}

// Renew restarts a session's TTL.
func Renew(id string) module.Command {
	return module.Command{Kind: CmdRenew, Body: appendString(nil, id)}
}

// Destroy invalidates a session; destroying one that does not exist does
// nothing, as in Consul.
func Destroy(id string) module.Command {
	return module.Command{Kind: CmdDestroy, Body: appendString(nil, id)}
}

// Info asks for one session (none in the answer when it does not exist).
func Info(id string) module.Command {
	return module.Command{Kind: QueryInfo, Body: appendString(nil, id)}
}

// List asks for every session, by id.
func List() module.Command { return module.Command{Kind: QueryList} }

// OfNode asks for the sessions of one node.
func OfNode(node string) module.Command {
	return module.Command{Kind: QueryNode, Body: appendString(nil, node)}
}

// Validate refuses malformed commands before they are proposed.
func (m *Module) Validate(kind byte, body []byte) module.Answer {
	r := &module.Reader{B: body}
	switch kind {
	case CmdCreate:
		s := readSession(r)
		if err := r.Done("session create"); err != nil {
			return module.Refuse(module.Invalid, err)
		}
		if err := m.limits.check(&s); err != nil {
			return module.Refuse(module.Invalid, err)
		}
	default:
		if id := r.String(); r.Err == nil && (id == "" || len(id) > m.limits.IDBytesMax) {
			return module.Refuse(module.Invalid, fmt.Errorf("%w: id must be 1 to %d bytes", ErrInvalid, m.limits.IDBytesMax))
		}
		if err := r.Done("session id"); err != nil {
			return module.Refuse(module.Invalid, err)
		}
	}
	return module.Answer{}
}

// Apply applies one command at env.NowNs.
func (m *Module) Apply(env *module.Env, kind byte, body []byte) module.Answer {
	r := &module.Reader{B: body}
	var a module.Answer
	switch kind {
	case CmdCreate:
		s := readSession(r)
		a = m.create(env, s)
	case CmdRenew:
		a = m.renew(env, r.String())
	case CmdDestroy:
		if s := m.sessions[r.String()]; s != nil {
			m.invalidate(env, s, false)
		}
		a = answer(Answer{})
	}
	assert.That(r.Done("session command") == nil, "session command %d at %d does not decode", kind, env.Index)
	return a
}

func (m *Module) create(env *module.Env, s Session) module.Answer {
	if err := m.limits.check(&s); err != nil {
		return module.Refuse(module.Invalid, err)
	}
	switch {
	case m.sessions[s.ID] != nil:
		return module.Refuse(module.Conflict, fmt.Errorf("%w: %q", ErrExists, s.ID))
	case len(m.sessions) >= m.limits.SessionsMax:
		return module.Refuse(module.Conflict, fmt.Errorf("%w: %d sessions", ErrFull, len(m.sessions)))
	}
	s.CreateIndex, s.ModifyIndex, s.Lease = env.Index, env.Index, 0
	if s.TTLNs > 0 {
		// Consul lets a session live up to twice its TTL unrenewed.
		l, err := m.leases.GrantIn(env, 2*s.TTLNs)
		if err != nil {
			return module.Refuse(module.Conflict, fmt.Errorf("session lease: %w", err))
		}
		s.Lease = int64(l.ID)
		m.byLease[s.Lease] = s.ID
	}
	m.put(env.Batch, &s)
	m.Note(Change{Created: &s})
	return answer(Answer{Sessions: []Session{s}})
}

func (m *Module) renew(env *module.Env, id string) module.Answer {
	s := m.sessions[id]
	if s == nil {
		return module.Refuse(module.NotFound, fmt.Errorf("%w: %q", ErrNotFound, id))
	}
	if s.Lease != 0 {
		_, err := m.leases.KeepAliveIn(env, lease.ID(s.Lease))
		assert.That(err == nil, "session %q outlived its lease %d: %v", id, s.Lease, err)
	}
	return answer(Answer{Sessions: []Session{*s}})
}

// leaseEnded invalidates the session whose lease ended (lease.Module.OnEnd).
func (m *Module) leaseEnded(env *module.Env, id lease.ID, expired bool) {
	if sid, ok := m.byLease[int64(id)]; ok {
		delete(m.byLease, int64(id)) // its lease is gone already: invalidate must not revoke it
		m.invalidate(env, m.sessions[sid], expired)
	}
}

// invalidate ends s: its lease, then every key it holds, released or
// deleted at one revision, each kept from acquisition for s's lock delay.
func (m *Module) invalidate(env *module.Env, s *Session, expired bool) {
	m.digest ^= sessionHash(s)
	delete(m.sessions, s.ID)
	env.Batch.Delete(sessionKey(s.ID))
	if _, ok := m.byLease[s.Lease]; ok && s.Lease != 0 {
		delete(m.byLease, s.Lease)
		m.leases.RevokeIn(env, lease.ID(s.Lease))
	}
	keys := m.heldKeys(s.ID)
	rev := m.kv.ReleaseLocks(env, s.ID, keys, s.Behavior == Delete)
	delete(m.held, s.ID)
	m.pruneDelays(env)
	c := Change{Invalidated: s.ID, Expired: expired, Keys: keys, Revision: rev}
	if s.LockDelayNs > 0 && len(keys) > 0 {
		c.DelayNs = env.NowNs + s.LockDelayNs
		for _, k := range keys {
			m.setDelay(env.Batch, string(k), c.DelayNs)
		}
	}
	m.Note(c)
}

// heldKeys returns the keys session holds, in order.
func (m *Module) heldKeys(session string) [][]byte {
	keys := make([][]byte, 0, len(m.held[session]))
	for k := range m.held[session] {
		keys = append(keys, []byte(k))
	}
	slices.SortFunc(keys, bytes.Compare)
	return keys
}

func (m *Module) setDelay(b *storage.Batch, key string, until int64) {
	if old, ok := m.delays[key]; ok {
		m.digest ^= delayHash(key, old)
	}
	m.delays[key] = until
	m.digest ^= delayHash(key, until)
	b.Put(delayKey(key), binary.AppendVarint(nil, until))
}

// pruneDelays forgets the lock delays that ended by env.NowNs.
func (m *Module) pruneDelays(env *module.Env) {
	var done []string
	for k, until := range m.delays {
		if until <= env.NowNs {
			done = append(done, k)
		}
	}
	slices.Sort(done) // the batch's order must not follow the map's
	for _, k := range done {
		m.digest ^= delayHash(k, m.delays[k])
		delete(m.delays, k)
		env.Batch.Delete(delayKey(k))
	}
}

// Live reports whether session exists (kv.Locks).
func (m *Module) Live(session string) bool { return m.sessions[session] != nil }

// Lockable reports whether session may take the free key at nowNs: it is
// live and the key's lock delay has passed (kv.Locks).
func (m *Module) Lockable(key []byte, session string, nowNs int64) bool {
	return m.sessions[session] != nil && m.delays[string(key)] <= nowNs
}

// Changed keeps the derived holder index in step with the KV records
// (kv.Observer).
func (m *Module) Changed(_ *module.Env, e *kv.Event) {
	now := ""
	if !e.Deleted {
		now = e.Record.Session
	}
	if now == "" && len(m.holder) == 0 {
		return // the common case: no locks anywhere
	}
	was := m.holder[string(e.Key)]
	if was == now {
		return
	}
	if was != "" {
		delete(m.held[was], string(e.Key))
		delete(m.holder, string(e.Key))
	}
	if now != "" {
		m.hold(string(e.Key), now)
	}
}

func (m *Module) hold(key, session string) {
	if m.held[session] == nil {
		m.held[session] = map[string]struct{}{}
	}
	m.held[session][key] = struct{}{}
	m.holder[key] = session
}

// Query answers info, list and node reads.
func (m *Module) Query(kind byte, body []byte, _ int64) module.Answer {
	r := &module.Reader{B: body}
	var arg string
	if kind != QueryList {
		arg = r.String()
	}
	if err := r.Done("session query"); err != nil {
		return module.Refuse(module.Invalid, err)
	}
	var a Answer
	for _, id := range m.sortedIDs() {
		s := m.sessions[id]
		if kind == QueryList || kind == QueryInfo && id == arg || kind == QueryNode && s.Node == arg {
			a.Sessions = append(a.Sessions, *s)
		}
	}
	return answer(a)
}

func (m *Module) sortedIDs() []string { return slices.Sorted(maps.Keys(m.sessions)) }

// Held returns the keys session holds, in order: a pure read for the HTTP
// layer and checkers.
func (m *Module) Held(session string) [][]byte { return m.heldKeys(session) }

// Delay returns when key's lock delay ends (0: none).
func (m *Module) Delay(key []byte) int64 { return m.delays[string(key)] }

func (m *Module) put(b *storage.Batch, s *Session) {
	if old := m.sessions[s.ID]; old != nil {
		m.digest ^= sessionHash(old)
	}
	m.sessions[s.ID] = s
	m.digest ^= sessionHash(s)
	b.Put(sessionKey(s.ID), appendSession(nil, s))
}

func sessionKey(id string) []byte { return append(append([]byte(nil), prefixSession...), id...) }
func delayKey(key string) []byte  { return append(append([]byte(nil), prefixDelay...), key...) }

func sessionHash(s *Session) uint64 { return digestOf([]byte("session"), appendSession(nil, s)) }
func delayHash(key string, until int64) uint64 {
	return digestOf([]byte("delay"), []byte(key), binary.AppendVarint(nil, until))
}

func digestOf(parts ...[]byte) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write(binary.AppendUvarint(nil, uint64(len(p))))
		h.Write(p)
	}
	return h.Sum64()
}

func (m *Module) DecodeAnswer(data []byte) (any, error) { return DecodeAnswer(data) }
