package node

import (
	"hash/fnv"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// entryHash must stay FNV-1a of the type and the data, xor the term: the
// checkers compare it across replicas and runs.
func TestEntryHashIsFNV1a(t *testing.T) {
	for _, e := range []raftpb.Entry{
		{},
		{Term: 3, Type: raftpb.EntryNormal, Data: []byte("put k v")},
		{Term: 1 << 40, Type: raftpb.EntryConfChangeV2, Data: []byte{0, 0xff, 7}},
	} {
		h := fnv.New64a()
		h.Write([]byte{byte(e.Type)})
		h.Write(e.Data)
		if got, want := entryHash(&e), h.Sum64()^e.Term; got != want {
			t.Errorf("entryHash(%+v) = %x, want %x", e, got, want)
		}
	}
}
