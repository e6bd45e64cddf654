package node

import (
	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/module"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Snapshots hold no data on disk or in raft's storage: the records on disk
// already are the state, and a restart rebuilds it from them. The state as of
// the snapshot is kept as a copy-on-write clone taken in O(1), and encoded
// only when raft sends the snapshot to a follower that fell behind. Encoding
// the whole store at every snapshot stalled busy rounds, and grew with the
// store.

// frozen is the replicated state as of the snapshot in raft's storage.
type frozen struct {
	index    uint64
	specs    []section       // the sections, in order
	sections []module.Frozen // each state's, frozen; none before a joiner's first snapshot
	timeNs   int64
	data     []byte // the encoding, once raft asked for it
}

// freeze records the applied state as that of the snapshot just taken or
// installed.
func (n *Node) freeze() { *n.frozen = n.frozenState() }

func (n *Node) frozenState() frozen {
	f := frozen{index: n.applied, specs: n.h.sectionSpecs(), timeNs: n.timeNs}
	for _, s := range n.h.states {
		f.sections = append(f.sections, s.Freeze())
	}
	return f
}

func (f *frozen) encode() []byte {
	if f.data == nil && f.sections != nil {
		parts := snapshotParts{sectionTime: encodeTime(f.timeNs)}
		for i, s := range f.sections {
			parts[f.specs[i].tag] = s.Encode()
		}
		f.data = encodeSections(parts, f.specs)
	}
	return f.data
}

// raftStorage is raft's view of the replica's log. Its initial conf state is
// the one saved with the applied index, not the snapshot's (conf changes
// applied after the last snapshot are not replayed), and the snapshots it
// hands raft carry the frozen state.
type raftStorage struct {
	*raft.MemoryStorage
	conf   raftpb.ConfState
	frozen *frozen
}

func (s raftStorage) InitialState() (raftpb.HardState, raftpb.ConfState, error) {
	hs, _, err := s.MemoryStorage.InitialState()
	return hs, s.conf, err
}

func (s raftStorage) Snapshot() (raftpb.Snapshot, error) {
	snap, err := s.MemoryStorage.Snapshot()
	if err != nil || snap.Metadata.Index == 0 {
		return snap, err
	}
	assert.That(snap.Metadata.Index == s.frozen.index, "snapshot at %d but state frozen at %d", snap.Metadata.Index, s.frozen.index)
	snap.Data = s.frozen.encode()
	return snap, nil
}

// withoutData is snap as stored: metadata only.
func withoutData(snap raftpb.Snapshot) raftpb.Snapshot {
	snap.Data = nil
	return snap
}
