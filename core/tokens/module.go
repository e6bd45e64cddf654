// Package tokens is the replicated registry of capability tokens
// (core/token): the claims of tokens an operator registered, and which ids
// are revoked. It never holds a signature or the cluster key: the log and
// the disk learn what a token allows and until when, never how to forge
// one. A revoked id stays until the token's expiry has passed on
// replicated time; then the leader proposes its pruning, since an expired
// token is refused anyway.
package tokens

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/core/token"
)

// Command kinds of the tokens module. Clients register and revoke; the
// leader prunes entries past their expiry (Due).
const (
	CmdRegister byte = 64
	CmdRevoke   byte = 65
	CmdPrune    byte = 66

	QueryList byte = 68
	QueryGet  byte = 69
)

// Records on disk: one per token id.
var prefix = []byte("t/")

// Bounds.
const (
	EntriesMax     = 10_000 // tokens registered or revoked and not yet expired
	pruneBatchMax  = 64     // ids one prune command names
	proposeRetryNs = 1e9    // a prune not applied after this is proposed again
)

// Entry is what the cluster knows of one token.
type Entry struct {
	Claims  token.Claims // only ID and ExpiresNs when revoked without being registered
	Revoked bool
}

// Module is the token registry as a replicated module.
type Module struct {
	entries map[string]Entry
	asked   map[string]int64 // the leader's prunes in flight; not replicated
}

// NewModule returns an empty registry.
func NewModule() *Module {
	return &Module{entries: map[string]Entry{}, asked: map[string]int64{}}
}

func (m *Module) Name() string       { return "tokens" }
func (m *Module) Version() uint64    { return 1 }
func (m *Module) Kinds() []byte      { return []byte{CmdRegister, CmdRevoke, CmdPrune} }
func (m *Module) QueryKinds() []byte { return []byte{QueryList, QueryGet} }
func (m *Module) Prefixes() [][]byte { return [][]byte{prefix} }

// Register asks to record a token's claims (the caller verified its signature).
func Register(c token.Claims) module.Command {
	return module.Command{Kind: CmdRegister, Body: c.Encode()}
}

// Revoke asks to revoke id until untilNs (the token's expiry; 0 when the
// token is registered, which then knows it).
func Revoke(id string, untilNs int64) module.Command {
	return module.Command{Kind: CmdRevoke, Body: binary.AppendVarint(module.AppendBytes(nil, []byte(id)), untilNs)}
}

// List asks for every entry, by id.
func List() module.Command { return module.Command{Kind: QueryList} }

// Get asks for one entry.
func Get(id string) module.Command {
	return module.Command{Kind: QueryGet, Body: module.AppendBytes(nil, []byte(id))}
}

// Validate refuses malformed commands before they are proposed.
func (m *Module) Validate(kind byte, body []byte) module.Answer {
	switch kind {
	case CmdRegister:
		if _, err := token.DecodeClaims(body); err != nil {
			return module.Refuse(module.Invalid, err)
		}
	case CmdRevoke:
		r := &module.Reader{B: body}
		id, until := r.String(), r.Varint()
		if err := r.Done("revoke"); err != nil {
			return module.Refuse(module.Invalid, err)
		}
		if id == "" || len(id) > token.IDBytesMax || until < 0 {
			return module.Refuse(module.Invalid, fmt.Errorf("revoke: id must be 1 to %d bytes and the expiry not negative", token.IDBytesMax))
		}
	default:
		return module.Refuse(module.Invalid, fmt.Errorf("tokens command %d is the leader's own", kind))
	}
	return module.Answer{}
}

// Apply applies one command at replicated time env.NowNs.
func (m *Module) Apply(env *module.Env, kind byte, body []byte) module.Answer {
	switch kind {
	case CmdRegister:
		c, err := token.DecodeClaims(body)
		assert.That(err == nil, "register at %d does not decode: %v", env.Index, err)
		return m.register(env, c)
	case CmdRevoke:
		r := &module.Reader{B: body}
		id, until := r.String(), r.Varint()
		assert.That(r.Done("revoke") == nil, "revoke at %d does not decode", env.Index)
		return m.revoke(env, id, until)
	case CmdPrune:
		r := &module.Reader{B: body}
		for n := r.Count(); n > 0 && r.Err == nil; n-- {
			id := r.String()
			// Only what is still past its expiry at this entry's time.
			if e, ok := m.entries[id]; ok && e.Claims.ExpiresNs <= env.NowNs {
				delete(m.entries, id)
				env.Batch.Delete(entryKey(id))
			}
			delete(m.asked, id)
		}
		assert.That(r.Done("prune") == nil, "prune at %d does not decode", env.Index)
	}
	return module.Answer{}
}

func (m *Module) register(env *module.Env, c token.Claims) module.Answer {
	if c.ExpiresNs <= env.NowNs {
		return module.Refuse(module.Invalid, fmt.Errorf("token %s expired before it was registered", c.ID))
	}
	e, ok := m.entries[c.ID]
	switch {
	case ok && e.Claims.Subject != "" && string(e.Claims.Encode()) != string(c.Encode()):
		return module.Refuse(module.Conflict, fmt.Errorf("token id %s is registered with other claims", c.ID))
	case !ok && len(m.entries) >= EntriesMax:
		return module.Refuse(module.TooLarge, fmt.Errorf("%d tokens registered or revoked: the registry is full until some expire", EntriesMax))
	}
	e.Claims = c // a revocation that came first stays
	return m.put(env, e)
}

func (m *Module) revoke(env *module.Env, id string, untilNs int64) module.Answer {
	e, ok := m.entries[id]
	switch {
	case !ok && untilNs <= env.NowNs:
		return module.Refuse(module.NotFound, fmt.Errorf("token %s is not registered: give its expiry (in the future) to revoke it", id))
	case !ok && len(m.entries) >= EntriesMax:
		return module.Refuse(module.TooLarge, fmt.Errorf("%d tokens registered or revoked: the registry is full until some expire", EntriesMax))
	case !ok:
		e.Claims = token.Claims{ID: id, ExpiresNs: untilNs}
	}
	e.Claims.ExpiresNs = max(e.Claims.ExpiresNs, untilNs)
	e.Revoked = true
	return m.put(env, e)
}

func (m *Module) put(env *module.Env, e Entry) module.Answer {
	m.entries[e.Claims.ID] = e
	env.Batch.Put(entryKey(e.Claims.ID), encodeEntry(e))
	a := Answer{Entries: []Entry{e}}
	return module.Answer{Data: a.Encode(), Value: a}
}

// Due proposes, on the leader, pruning the entries past their expiry on its clock.
func (m *Module) Due(l module.Leader) []module.Command {
	var ids []string
	for _, id := range m.sortedIDs() {
		if m.entries[id].Claims.ExpiresNs > l.NowNs {
			continue
		}
		if at, ok := m.asked[id]; ok && l.NowNs-at < proposeRetryNs {
			continue
		}
		m.asked[id] = l.NowNs
		if ids = append(ids, id); len(ids) == pruneBatchMax {
			break
		}
	}
	if len(ids) == 0 {
		return nil
	}
	b := binary.AppendUvarint(nil, uint64(len(ids)))
	for _, id := range ids {
		b = module.AppendBytes(b, []byte(id))
	}
	return []module.Command{{Kind: CmdPrune, Body: b}}
}

// Query answers list and get. Nothing here reads nowNs: whether a token is
// expired is the verifier's to decide with its own clock.
func (m *Module) Query(kind byte, body []byte, _ int64) module.Answer {
	var a Answer
	switch kind {
	case QueryList:
		for _, id := range m.sortedIDs() {
			a.Entries = append(a.Entries, m.entries[id])
		}
	case QueryGet:
		r := &module.Reader{B: body}
		id := r.String()
		if err := r.Done("get"); err != nil {
			return module.Refuse(module.Invalid, err)
		}
		e, ok := m.entries[id]
		if !ok {
			return module.Refuse(module.NotFound, fmt.Errorf("token %s is neither registered nor revoked", id))
		}
		a.Entries = []Entry{e}
	}
	return module.Answer{Data: a.Encode(), Value: a}
}

// Revoked reports whether id is revoked, for a verifier on this replica.
func (m *Module) Revoked(id string) bool { return m.entries[id].Revoked }

func (m *Module) sortedIDs() []string { return slices.Sorted(maps.Keys(m.entries)) }

// Answer is the reply to a command or query: the entries it touched or read.
type Answer struct{ Entries []Entry }

// answerVersion opens an encoded answer, clear of the host's refusal mark.
const answerVersion = 1

// Encode lays the answer out entry by entry.
func (a Answer) Encode() []byte {
	b := binary.AppendUvarint([]byte{answerVersion}, uint64(len(a.Entries)))
	for _, e := range a.Entries {
		b = module.AppendBytes(b, encodeEntry(e))
	}
	return b
}

// DecodeAnswer reads what Answer.Encode wrote.
func DecodeAnswer(b []byte) (Answer, error) {
	if len(b) == 0 || b[0] != answerVersion {
		return Answer{}, fmt.Errorf("tokens answer: %w: version", module.ErrMalformed)
	}
	r := &module.Reader{B: b[1:]}
	var a Answer
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		e, err := decodeEntry(r.Bytes())
		if err != nil {
			return Answer{}, err
		}
		a.Entries = append(a.Entries, e)
	}
	return a, r.Done("tokens answer")
}

func (m *Module) DecodeAnswer(data []byte) (any, error) { return DecodeAnswer(data) }

// encodeEntry writes the claims field by field (a revoked id that was never
// registered has only an id and an expiry, which token.DecodeClaims would
// refuse) and the revoked flag.
func encodeEntry(e Entry) []byte {
	c := e.Claims
	b := module.AppendBytes(nil, []byte(c.ID))
	b = module.AppendBytes(b, []byte(c.Subject))
	for _, ss := range [][]string{c.Commands, c.Dirs} {
		b = binary.AppendUvarint(b, uint64(len(ss)))
		for _, s := range ss {
			b = module.AppendBytes(b, []byte(s))
		}
	}
	b = binary.AppendVarint(binary.AppendVarint(b, c.IssuedNs), c.ExpiresNs)
	if e.Revoked {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeEntry(b []byte) (Entry, error) {
	r := &module.Reader{B: b}
	var e Entry
	e.Claims.ID, e.Claims.Subject = r.String(), r.String()
	for _, ss := range []*[]string{&e.Claims.Commands, &e.Claims.Dirs} {
		for n := r.Count(); n > 0 && r.Err == nil; n-- {
			*ss = append(*ss, r.String())
		}
	}
	e.Claims.IssuedNs, e.Claims.ExpiresNs = r.Varint(), r.Varint()
	e.Revoked = r.Uvarint() == 1
	return e, r.Done("token entry")
}

func entryKey(id string) []byte { return append(slices.Clip(prefix), id...) }

// Hash digests every entry in id order.
func (m *Module) Hash() uint64 {
	h := fnv.New64a()
	for _, id := range m.sortedIDs() {
		h.Write(module.AppendBytes(nil, encodeEntry(m.entries[id])))
	}
	return h.Sum64()
}

// Persist writes every entry.
func (m *Module) Persist(b *storage.Batch) {
	for _, id := range m.sortedIDs() {
		b.Put(entryKey(id), encodeEntry(m.entries[id]))
	}
}

// Clear deletes every entry.
func (m *Module) Clear(b *storage.Batch) {
	for _, id := range m.sortedIDs() {
		b.Delete(entryKey(id))
	}
}

// Load reads the entries back.
func (m *Module) Load(disk storage.Reader) error {
	entries := map[string]Entry{}
	err := module.ScanRecords(disk, prefix, func(id, payload []byte) error {
		e, err := decodeEntry(payload)
		if err != nil || e.Claims.ID != string(id) {
			return fmt.Errorf("%w: token record %q: %v", storage.ErrCorrupt, id, err)
		}
		entries[e.Claims.ID] = e
		return nil
	})
	if err != nil {
		return err
	}
	m.entries, m.asked = entries, map[string]int64{}
	return nil
}

// Freeze encodes the registry now: it is small.
func (m *Module) Freeze() module.Frozen {
	a := Answer{}
	for _, id := range m.sortedIDs() {
		a.Entries = append(a.Entries, m.entries[id])
	}
	return module.Encoded(a.Encode())
}

// Restore replaces the registry with a snapshot's; a snapshot from before
// tokens has none, and restores an empty registry.
func (m *Module) Restore(section []byte) error {
	entries := map[string]Entry{}
	if len(section) > 0 {
		a, err := DecodeAnswer(section)
		if err != nil {
			return err
		}
		for _, e := range a.Entries {
			entries[e.Claims.ID] = e
		}
	}
	m.entries, m.asked = entries, map[string]int64{}
	return nil
}
