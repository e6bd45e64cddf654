package node

import (
	"fmt"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// cmdAdvertise records a member's current addresses.
const cmdAdvertise byte = 2

// membersModule is the membership record as replicated state: member
// addresses and removed ids, one record under keyMembers. Raft's own
// configuration lives in the host (members.go), which tells the module who
// is a member; conf changes update the record through update.
type membersModule struct {
	m       membership
	digest  uint64 // of the record, kept by persist: hashing it per entry cost several percent
	changed bool   // addresses changed since the host last looked

	isMember func(id uint64) bool
	revision func() int64
}

func newMembersModule() *membersModule {
	mm := &membersModule{m: newMembership()}
	mm.digest = hashBytes(mm.m.encode())
	return mm
}

func (mm *membersModule) Name() string       { return "members" }
func (mm *membersModule) Version() uint64    { return 1 }
func (mm *membersModule) Kinds() []byte      { return []byte{cmdAdvertise} }
func (mm *membersModule) Prefixes() [][]byte { return [][]byte{keyMembers} }
func (mm *membersModule) Hash() uint64       { return mm.digest }

// Apply records an advertised address; only a member's is taken.
func (mm *membersModule) Apply(env *module.Env, kind byte, body []byte) module.Answer {
	m, err := decodeAdvertise(body)
	assert.That(err == nil, "advertise at %d does not decode: %v", env.Index, err)
	ok := mm.isMember(m.ID)
	if ok {
		mm.m.addrs[m.ID] = [2]string{m.PeerAddr, m.HTTPAddr}
		mm.persist(env.Batch)
		mm.changed = true
	}
	resp := kv.Response{Succeeded: ok, Revision: mm.revision()}
	return module.Answer{Data: kv.EncodeResponse(resp), Value: resp}
}

func (mm *membersModule) DecodeAnswer(data []byte) (any, error) { return kv.DecodeResponse(data) }

// persist writes the record and digests it once there.
func (mm *membersModule) persist(b *storage.Batch) {
	rec := mm.m.encode()
	b.Put(keyMembers, rec)
	mm.digest = hashBytes(rec)
}

func (mm *membersModule) Persist(b *storage.Batch) { mm.persist(b) }
func (mm *membersModule) Clear(b *storage.Batch)   { b.Delete(keyMembers) }
func (mm *membersModule) Freeze() module.Frozen    { return module.Encoded(mm.m.encode()) }

func (mm *membersModule) Restore(section []byte) error {
	m, err := decodeMembership(section)
	if err != nil {
		return err
	}
	mm.m, mm.digest = m, hashBytes(section)
	return nil
}

func (mm *membersModule) Load(disk storage.Reader) error {
	b, ok, err := getSealed(disk, keyMembers)
	if err != nil || !ok {
		return err
	}
	m, err := decodeMembership(b)
	if err != nil {
		return fmt.Errorf("%w: %v", storage.ErrCorrupt, err)
	}
	mm.m, mm.digest = m, hashBytes(b)
	return nil
}
