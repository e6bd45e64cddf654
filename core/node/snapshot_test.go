package node

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/sim/disk"
)

// drive ticks a one-node replica and carries out its Readies until cond holds.
func drive(t *testing.T, n *Node, d *disk.Disk, now *int64, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000 && !cond(); i++ {
		*now += 10_000_000
		n.Tick(*now)
		carryOut(t, n, d, nil)
	}
	if !cond() {
		t.Fatal("condition never held")
	}
}

// carryOut writes and syncs every Ready n has, as a driver must, showing
// each to see (when not nil) before acknowledging it.
func carryOut(t *testing.T, n *Node, d *disk.Disk, see func(Ready)) {
	t.Helper()
	for n.HasReady() {
		rd := n.Ready()
		if err := d.Apply(rd.Batch); err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
		if see != nil {
			see(rd)
		}
		n.Advance()
	}
}

// The snapshot raft sends a follower is the state at the snapshot's index,
// however far the replica has moved on, and again after a restart.
func TestSnapshotDataIsStateAtItsIndex(t *testing.T) {
	d := disk.New()
	cfg := DefaultConfig(1, []uint64{1})
	cfg.SnapshotEntries = 20
	n, err := New(cfg, rand.New(rand.NewPCG(1, 2)), d)
	if err != nil {
		t.Fatal(err)
	}
	var now int64
	drive(t, n, d, &now, func() bool { _, ok := n.LeaderTerm(); return ok })
	seq := uint64(0)
	put := func(value string) {
		seq++
		n.Submit(Request{Client: 7, Seq: seq, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte("k"), Value: []byte(value)}}}})
		drive(t, n, d, &now, func() bool { return n.applied > 0 && len(n.writes) == 0 })
	}
	for n.snapIndex < 20 {
		put("before")
	}
	snapIndex, want := n.snapIndex, n.snapshotData()
	put("after") // the live state moves on; the snapshot must not
	snap, err := n.raftConfig().Storage.Snapshot()
	if err != nil || snap.Metadata.Index != snapIndex || !bytes.Equal(snap.Data, want) {
		t.Fatalf("snapshot: index %d (want %d), data equal %v, err %v", snap.Metadata.Index, snapIndex, bytes.Equal(snap.Data, want), err)
	}

	restarted, err := New(cfg, rand.New(rand.NewPCG(3, 4)), d)
	if err != nil {
		t.Fatal(err)
	}
	snap, err = restarted.raftConfig().Storage.Snapshot()
	if err != nil || snap.Metadata.Index != restarted.applied || !bytes.Equal(snap.Data, restarted.snapshotData()) {
		t.Fatalf("after restart: snapshot at %d, applied %d, data is the loaded state: %v (err %v)",
			snap.Metadata.Index, restarted.applied, bytes.Equal(snap.Data, restarted.snapshotData()), err)
	}
}

// Large entries take a snapshot by bytes before the entry count is reached,
// and compaction keeps no more of them than CompactKeepBytes holds.
func TestSnapshotAndCompactionBoundedByBytes(t *testing.T) {
	d := disk.New()
	cfg := DefaultConfig(1, []uint64{1})
	cfg.SnapshotEntries, cfg.CompactKeepEntries = 1000, 500
	cfg.SnapshotBytes, cfg.CompactKeepBytes = 40_000, 10_000
	n, err := New(cfg, rand.New(rand.NewPCG(1, 2)), d)
	if err != nil {
		t.Fatal(err)
	}
	var now int64
	drive(t, n, d, &now, func() bool { _, ok := n.LeaderTerm(); return ok })
	value := bytes.Repeat([]byte("v"), 4000)
	for seq := uint64(1); n.snapIndex < 10; seq++ {
		n.Submit(Request{Client: 7, Seq: seq, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte("k"), Value: value}}}})
		drive(t, n, d, &now, func() bool { return len(n.writes) == 0 })
	}
	if n.snapIndex > 15 {
		t.Errorf("got a snapshot at %d, want one within about 10 entries of 4 KB (40 KB)", n.snapIndex)
	}
	first, _ := n.log.FirstIndex()
	if kept := n.snapIndex + 1 - first; kept < 1 || kept > 3 {
		t.Errorf("got %d entries kept behind the snapshot at %d, want 2 (10 KB of 4 KB entries)", kept, n.snapIndex)
	}
}
