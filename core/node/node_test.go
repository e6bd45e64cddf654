package node_test

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/sim/disk"
)

// single drives a one-node cluster by hand: the smallest honest driver.
type single struct {
	t      *testing.T
	n      *node.Node
	d      *disk.Disk
	now    int64
	resp   []node.Response
	events []node.Event
	seq    uint64 // the last sequence number helpers used for their own clients
}

func start(t *testing.T, d *disk.Disk) *single {
	t.Helper()
	return startAt(t, d, node.DefaultConfig(1, []uint64{1}), 0)
}

// startAt starts a node with cfg whose clock reads now, and waits for it to lead.
func startAt(t *testing.T, d *disk.Disk, cfg node.Config, now int64) *single {
	t.Helper()
	n, err := node.New(cfg, rand.New(rand.NewPCG(1, 2)), d)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	s := &single{t: t, n: n, d: d, now: now}
	for i := 0; i < 1000; i++ {
		if _, ok := n.LeaderTerm(); ok {
			return s
		}
		s.step()
	}
	t.Fatal("a one-node cluster elected no leader")
	return nil
}

// step advances the clock one tick and carries out every Ready.
func (s *single) step() {
	s.t.Helper()
	s.now += 10_000_000
	s.n.Tick(s.now)
	for s.n.HasReady() {
		rd := s.n.Ready()
		if err := s.d.Apply(rd.Batch); err != nil {
			s.t.Fatal(err)
		}
		if rd.Sync {
			if err := s.d.Sync(); err != nil {
				s.t.Fatal(err)
			}
		}
		s.resp = append(s.resp, rd.Responses...)
		s.events = append(s.events, rd.Events...)
		s.n.Advance()
	}
}

// run ticks until the node has answered want responses.
func (s *single) run(want int) {
	s.t.Helper()
	for i := 0; i < 1000 && len(s.resp) < want; i++ {
		s.step()
	}
	if len(s.resp) < want {
		s.t.Fatalf("got %d responses, want %d", len(s.resp), want)
	}
}

func put(client, seq uint64, key, value string) node.Request {
	return node.Request{Client: client, Seq: seq, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte(key), Value: []byte(value)}}}}
}

func get(key string) node.Request {
	return node.Request{Client: 99, Seq: 1, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: []byte(key)}}}}
}

func TestAcknowledgedWriteSurvivesCrash(t *testing.T) {
	d := disk.New()
	s := start(t, d)
	s.n.Submit(put(7, 1, "a", "1"))
	s.run(1)
	if s.resp[0].Outcome != node.OK || s.resp[0].Result.Revision != 1 {
		t.Fatalf("put: got %+v, want success at revision 1", s.resp[0])
	}
	d.Crash(rand.New(rand.NewPCG(3, 4)), disk.Faults{}) // every unsynced batch lost

	s = start(t, d)
	s.n.Submit(get("a"))
	s.run(1)
	recs := s.resp[0].Result.Results[0].Records
	if len(recs) != 1 || string(recs[0].Value) != "1" || s.resp[0].Result.Revision != 1 {
		t.Fatalf("after restart: got %+v, want a=1 at revision 1", s.resp[0].Result)
	}
}

func TestRetriedWriteAppliesOnce(t *testing.T) {
	s := start(t, disk.New())
	s.n.Submit(put(7, 1, "a", "1"))
	s.run(1)
	s.n.Submit(put(7, 1, "a", "1")) // the same write, retried
	s.run(2)
	if s.resp[1].Outcome != node.OK || s.resp[1].Result.Revision != 1 {
		t.Fatalf("retry: got %+v, want the saved answer at revision 1", s.resp[1])
	}
	s.n.Submit(put(7, 2, "a", "2"))
	s.run(3)
	if got := s.resp[2].Result.Revision; got != 2 {
		t.Fatalf("next write: got revision %d, want 2", got)
	}
}

func TestOversizedRequestRefused(t *testing.T) {
	s := start(t, disk.New())
	big := make([]byte, kv.DefaultLimits().ValueBytesMax+1)
	s.n.Submit(put(7, 1, "a", string(big)))
	s.run(1)
	if got := s.resp[0]; got.Outcome != node.TooLarge {
		t.Fatalf("got %v, want %v", got.Err(), node.TooLarge)
	}
	if st := s.n.Status(); st.Revision != 0 {
		t.Fatalf("revision %d after a refused write, want 0", st.Revision)
	}
}

func TestCorruptDiskRefusesToStart(t *testing.T) {
	d := disk.New()
	s := start(t, d)
	s.n.Submit(put(7, 1, "a", "1"))
	s.run(1)
	rep := d.Crash(rand.New(rand.NewPCG(5, 6)), disk.Faults{BitFlipProb: 1})
	if rep.FlippedKey == nil {
		t.Fatal("no bit was flipped")
	}
	_, err := node.New(node.DefaultConfig(1, []uint64{1}), rand.New(rand.NewPCG(1, 2)), d)
	if !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("start on flipped key %q: got %v, want ErrCorrupt", rep.FlippedKey, err)
	}
	d.Repair()
	start(t, d)
}

func TestBackupRestoresIntoNewCluster(t *testing.T) {
	s := start(t, disk.New())
	s.n.Submit(put(7, 1, "a", "1"))
	s.n.Submit(put(8, 1, "b", "2"))
	s.run(2)
	backup := s.n.Backup()

	cfg := node.DefaultConfig(1, []uint64{1})
	cfg.Restore = backup
	d := disk.New()
	n, err := node.New(cfg, rand.New(rand.NewPCG(1, 2)), d)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	restored := &single{t: t, n: n, d: d}
	for i := 0; i < 1000; i++ {
		if _, ok := n.LeaderTerm(); ok {
			break
		}
		restored.step()
	}
	restored.n.Submit(get("b"))
	restored.run(1)
	recs := restored.resp[0].Result.Results[0].Records
	if len(recs) != 1 || string(recs[0].Value) != "2" || restored.resp[0].Result.Revision != 2 {
		t.Fatalf("restored read: got %+v, want b=2 at revision 2", restored.resp[0].Result)
	}

	damaged := append([]byte(nil), backup...)
	damaged[len(damaged)/2] ^= 0x40
	cfg.Restore = damaged
	if _, err := node.New(cfg, rand.New(rand.NewPCG(1, 2)), disk.New()); !errors.Is(err, node.ErrBadBackup) {
		t.Fatalf("restore from a damaged backup: got %v, want ErrBadBackup", err)
	}
}

// Compaction deletes the log records behind a snapshot a few per Ready
// rather than all in one batch, which stalled a busy node's round, and still
// gets through all of them.
func TestCompactionTrimsLogGradually(t *testing.T) {
	d := disk.New()
	s := start(t, d)
	deletesMax, seq := 0, uint64(0)
	for s.n.Status().SnapshotIndex < 1000 {
		seq++
		s.n.Submit(put(7, seq, "k", "v"))
		s.now += 10_000_000
		s.n.Tick(s.now)
		for s.n.HasReady() {
			rd := s.n.Ready()
			deletes := 0
			for _, op := range rd.Batch.Ops {
				if op.Delete {
					deletes++
				}
			}
			deletesMax = max(deletesMax, deletes)
			if err := d.Apply(rd.Batch); err != nil {
				t.Fatal(err)
			}
			s.n.Advance()
		}
	}
	if deletesMax > 256 {
		t.Errorf("a Ready deleted %d log records at once, want at most 256", deletesMax)
	}
	snap := s.n.Status().SnapshotIndex
	for i := 0; i < 10; i++ {
		seq++
		s.n.Submit(put(7, seq, "k", "v"))
		s.step()
	}
	want := snap - 200 + 1 // DefaultConfig keeps 200 entries behind a snapshot
	if got := s.n.Status().LogFirst; got != want {
		t.Errorf("log on disk starts at %d after the trim, want %d", got, want)
	}
	if _, ok, _ := d.Get(binary.BigEndian.AppendUint64([]byte("l/"), want-1)); ok {
		t.Errorf("log record %d is still on disk", want-1)
	}
}
