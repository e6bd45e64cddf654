package node

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/sim/disk"
	"go.etcd.io/raft/v3/raftpb"
)

func loadTestConfig() Config {
	cfg := DefaultConfig(1, []uint64{1})
	cfg.SnapshotEntries, cfg.CompactKeepEntries = 20, 5
	return cfg
}

// writtenDisk is the disk of a one-node replica that took a snapshot and
// went on, so the log records on it reach below and beyond the snapshot.
func writtenDisk(t *testing.T) (*disk.Disk, *Node) {
	t.Helper()
	d := disk.New()
	n, err := New(loadTestConfig(), rand.New(rand.NewPCG(1, 2)), d)
	if err != nil {
		t.Fatal(err)
	}
	var now int64
	drive(t, n, d, &now, func() bool { _, ok := n.LeaderTerm(); return ok })
	for seq := uint64(1); seq <= 30; seq++ {
		n.Submit(Request{Client: 7, Seq: seq, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte("k"), Value: []byte("v")}}}})
		drive(t, n, d, &now, func() bool { return len(n.writes) == 0 })
	}
	if n.snapIndex <= n.logFirst || n.snapIndex >= n.logLast {
		t.Fatalf("snapshot %d outside the records [%d, %d]: the cases below need it inside", n.snapIndex, n.logFirst, n.logLast)
	}
	return d, n
}

// rewrite applies and syncs one tampering batch.
func rewrite(t *testing.T, d *disk.Disk, fill func(b *storage.Batch)) {
	t.Helper()
	var b storage.Batch
	fill(&b)
	if err := d.Apply(b); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readRecord(t *testing.T, d *disk.Disk, key []byte, into interface{ Unmarshal([]byte) error }) {
	t.Helper()
	b, ok, err := getSealed(d, key)
	if err != nil || !ok {
		t.Fatalf("read %s: %v, %v", key, ok, err)
	}
	if err := into.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
}

// Every batch the core writes keeps the records consistent with each other.
// A disk whose records disagree was written wrongly (or lost part of a batch)
// and must be refused with ErrCorrupt, not crash raft or serve.
func TestLoadRefusesInconsistentRecords(t *testing.T) {
	cases := []struct {
		name, want string
		tamper     func(t *testing.T, d *disk.Disk, n *Node)
	}{
		{"untouched", "", func(*testing.T, *disk.Disk, *Node) {}},
		{"stale tail", "log term goes down", func(t *testing.T, d *disk.Disk, n *Node) {
			rewrite(t, d, func(b *storage.Batch) {
				for i := n.logLast + 1; i <= n.logLast+3; i++ {
					e := raftpb.Entry{Index: i, Term: 1}
					b.Put(logKey(i), mustMarshal(&e))
				}
			})
		}},
		{"snapshot term", "the snapshot there has", func(t *testing.T, d *disk.Disk, n *Node) {
			var snap raftpb.Snapshot
			readRecord(t, d, keySnapshot, &snap)
			snap.Metadata.Term++
			rewrite(t, d, func(b *storage.Batch) { b.Put(keySnapshot, mustMarshal(&snap)) })
		}},
		{"applied below snapshot", "below the snapshot's", func(t *testing.T, d *disk.Disk, n *Node) {
			meta := n.appliedMeta()
			meta.Index = n.snapIndex - 1
			rewrite(t, d, func(b *storage.Batch) { b.Put(keyApplied, encodeApplied(meta)) })
		}},
		{"commit below applied", "below the applied index", func(t *testing.T, d *disk.Disk, n *Node) {
			tamperHardState(t, d, func(hs *raftpb.HardState) { hs.Commit = n.applied - 1 })
		}},
		{"commit beyond log", "beyond the log's last entry", func(t *testing.T, d *disk.Disk, n *Node) {
			tamperHardState(t, d, func(hs *raftpb.HardState) { hs.Commit = n.logLast + 1 })
		}},
		{"term beyond hard state", "beyond the hard state's term", func(t *testing.T, d *disk.Disk, n *Node) {
			tamperHardState(t, d, func(hs *raftpb.HardState) { hs.Term = 1 })
		}},
		{"no hard state", "hard state commits 0", func(t *testing.T, d *disk.Disk, n *Node) {
			rewrite(t, d, func(b *storage.Batch) { b.Delete(keyHardState) })
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, n := writtenDisk(t)
			c.tamper(t, d, n)
			_, err := New(loadTestConfig(), rand.New(rand.NewPCG(1, 2)), d)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("load: %v", err)
			case c.want != "" && (!errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("load: got %v, want ErrCorrupt saying %q", err, c.want)
			}
		})
	}
}

func tamperHardState(t *testing.T, d *disk.Disk, change func(hs *raftpb.HardState)) {
	t.Helper()
	var hs raftpb.HardState
	readRecord(t, d, keyHardState, &hs)
	change(&hs)
	rewrite(t, d, func(b *storage.Batch) { b.Put(keyHardState, mustMarshal(&hs)) })
}
