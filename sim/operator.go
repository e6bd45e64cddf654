package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/sim/disk"
)

// What the real runtime does around a replica, done here too so the
// simulator reaches it: members advertise their client addresses through the
// log, a replica that applied its own removal is stopped, a removal the
// operator made is marked on the removed node's disk, and backups are taken
// and restored into a new cluster.

const (
	advertiseClientBase = clientIDBase + 10_000 // session ids of the nodes' own advertisements
	advertiseEveryTicks = 50                    // a node not yet listed advertises again this often
	backupProb          = 0.002                 // per carried-out Ready, drawn from the checkers' stream
	backupsMax          = 3                     // per run
)

func peerAddr(id uint64) string { return fmt.Sprintf("sim-peer-%d", id) }
func httpAddr(id uint64) string { return fmt.Sprintf("sim-http-%d", id) }

// self is the member a node advertises.
func self(id uint64) node.Member {
	return node.Member{ID: id, PeerAddr: peerAddr(id), HTTPAddr: httpAddr(id)}
}

// maybeAdvertise proposes the node's own addresses until the membership it
// applied lists them, as the runtime's advertise loop does.
func (w *World) maybeAdvertise(sn *simNode) {
	sn.ticks++
	if sn.advertised || sn.ticks%advertiseEveryTicks != 0 {
		return
	}
	me := self(sn.id)
	listed := slices.ContainsFunc(sn.n.Members(), func(m node.Member) bool {
		return m.ID == me.ID && m.PeerAddr == me.PeerAddr && m.HTTPAddr == me.HTTPAddr
	})
	if listed {
		sn.advertised = true
		return
	}
	sn.advertiseSeq++
	sn.n.Submit(node.Request{Client: advertiseClientBase + sn.id, Seq: sn.advertiseSeq, Advertise: &me})
}

// stopIfRemoved stops a replica that applied its own removal, as its driver must.
func (w *World) stopIfRemoved(sn *simNode) {
	if sn.n != nil && !sn.gone && sn.n.Removed() {
		w.trace.note("node %d applied its own removal and stops", sn.id)
		w.retire(sn)
	}
}

// markRemoved writes the removal marker the member that carried out a removal
// sends the removed node, then checks that the disk would never serve again.
func (w *World) markRemoved(sn *simNode) {
	if sn.n == nil {
		return
	}
	if err := sn.disk.Apply(sn.n.MarkRemoved()); err != nil {
		w.check.fail("node %d: write removal marker: %v", sn.id, err)
	}
	if err := sn.disk.Sync(); err != nil {
		w.check.fail("node %d: sync removal marker: %v", sn.id, err)
	}
	again, err := node.New(w.nodeConfig(sn), fixedRand(), sn.disk)
	switch {
	case err != nil:
		w.check.fail("node %d: its disk does not load after its removal: %v", sn.id, err)
	case !again.Removed():
		w.check.fail("node %d: restarted on its disk after its removal, it would serve again", sn.id)
	}
}

// checkAddresses requires every running member to list every member of the
// configuration with the addresses it advertised.
func (w *World) checkAddresses() {
	for _, sn := range w.nodes {
		if sn.gone || sn.n == nil {
			continue
		}
		for _, m := range sn.n.Members() {
			if want := self(m.ID); m.PeerAddr != want.PeerAddr || m.HTTPAddr != want.HTTPAddr {
				w.check.fail("node %d lists member %d at %q/%q, want %q/%q", sn.id, m.ID, m.PeerAddr, m.HTTPAddr, want.PeerAddr, want.HTTPAddr)
			}
		}
	}
}

// maybeBackup now and then takes a backup of a node, as an operator would,
// restores it into a new one-node cluster, and requires the same keys and
// revision. A damaged copy must be refused.
func (w *World) maybeBackup(sn *simNode) {
	if w.res.Backups >= backupsMax || w.checkRng.Float64() >= backupProb {
		return
	}
	w.res.Backups++
	data := sn.n.Backup()
	b, err := node.DecodeBackup(data)
	if err != nil || b.Index != sn.n.AppliedIndex() || b.Revision != sn.n.Status().Revision {
		w.check.fail("node %d: backup at index %d does not decode as taken: %+v, %v", sn.id, sn.n.AppliedIndex(), b, err)
		return
	}
	damaged := slices.Clone(data)
	damaged[w.checkRng.IntN(len(damaged))] ^= 0x10
	if _, err := node.DecodeBackup(damaged); !errors.Is(err, node.ErrBadBackup) {
		w.check.fail("node %d: a damaged backup was not refused: %v", sn.id, err)
	}
	cfg := node.DefaultConfig(1, []uint64{1})
	cfg.ThinFollowerTicks = true // as every simulated replica (nodeConfig)
	cfg.Restore = data
	restored, err := node.New(cfg, fixedRand(), disk.New())
	if err != nil {
		w.check.fail("node %d: backup does not restore: %v", sn.id, err)
		return
	}
	if diff := diffState(restored, dumpState(sn.n)); diff != "" || restored.Status().Revision != b.Revision {
		w.check.fail("node %d: backup restored at revision %d differs from the state at %d: %s", sn.id, restored.Status().Revision, b.Revision, diff)
	}
}

// fixedRand seeds replicas the checkers build for a look and throw away, so
// that looking never draws from the world's streams.
func fixedRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
