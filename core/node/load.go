package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/aspen-db/aspen/core/module"

	"github.com/aspen-db/aspen/core/storage"
	"go.etcd.io/raft/v3/raftpb"
)

// load restores the replica from disk. It reports fresh when the disk holds no
// replica at all; any record that fails its checksum or does not decode fails
// the load.
func (n *Node) load(disk storage.Reader) (fresh bool, err error) {
	snapBytes, ok, err := getSealed(disk, keySnapshot)
	if err != nil {
		return false, err
	}
	if !ok {
		return n.loadBeforeSnapshot(disk)
	}
	var snap raftpb.Snapshot
	if err := snap.Unmarshal(snapBytes); err != nil {
		return false, fmt.Errorf("%w: snapshot record: %v", storage.ErrCorrupt, err)
	}
	if err := n.log.ApplySnapshot(withoutData(snap)); err != nil {
		return false, fmt.Errorf("load snapshot: %w", err)
	}
	n.snapIndex = snap.Metadata.Index
	if err := n.loadLog(disk, snap.Metadata); err != nil {
		return false, err
	}
	hs, err := n.loadHardState(disk)
	if err != nil {
		return false, err
	}
	if err := n.loadState(disk); err != nil {
		return false, err
	}
	if err := n.checkLoaded(hs); err != nil {
		return false, err
	}
	return false, n.snapshotApplied()
}

// checkLoaded checks the pieces load read against each other. Each batch the
// core writes keeps them consistent, so a disk that breaks one of these was
// written wrongly or lost part of a batch; raft would panic on some of them
// (a commit index its log cannot back), and a replica must not serve from
// the others.
func (n *Node) checkLoaded(hs raftpb.HardState) error {
	last, _ := n.log.LastIndex()
	lastTerm, _ := n.log.Term(last)
	switch {
	case n.applied < n.snapIndex:
		return fmt.Errorf("%w: applied index %d is below the snapshot's %d", storage.ErrCorrupt, n.applied, n.snapIndex)
	case hs.Commit < n.applied:
		return fmt.Errorf("%w: hard state commits %d, below the applied index %d", storage.ErrCorrupt, hs.Commit, n.applied)
	case hs.Commit > last:
		return fmt.Errorf("%w: hard state commits %d, beyond the log's last entry %d", storage.ErrCorrupt, hs.Commit, last)
	case lastTerm > hs.Term:
		// Terms never go down along the log (loadLog checked), so the last
		// entry's is the highest.
		return fmt.Errorf("%w: log holds term %d at %d, beyond the hard state's term %d", storage.ErrCorrupt, lastTerm, last, hs.Term)
	}
	return nil
}

// snapshotApplied moves raft's snapshot up to the applied index: the state
// just loaded is the state there, so that is the snapshot a follower can be
// sent. The entries between stay in raft's log for followers that need them
// (checkLoaded made sure the log reaches the applied index).
func (n *Node) snapshotApplied() error {
	if n.applied > n.snapIndex {
		if _, err := n.log.CreateSnapshot(n.applied, &n.conf, nil); err != nil {
			return fmt.Errorf("snapshot at applied index %d: %w", n.applied, err)
		}
		n.snapIndex = n.applied
	}
	n.freeze()
	return nil
}

// loadBeforeSnapshot reads a disk without a snapshot record. Bootstrap writes
// its snapshot in the same batch as everything else, so such a disk is empty
// or belongs to a joining replica the leader's snapshot has not reached yet.
// A joiner may already have voted, and may have been told it was removed: both
// must survive a restart, or it could vote twice in one term.
func (n *Node) loadBeforeSnapshot(disk storage.Reader) (fresh bool, err error) {
	errFound := errors.New("found")
	switch err := disk.Scan(prefixLog, func(_, _ []byte) error { return errFound }); {
	case errors.Is(err, errFound):
		return false, fmt.Errorf("%w: log entries but no snapshot record", storage.ErrCorrupt)
	case err != nil:
		return false, err
	}
	hsBytes, voted, err := getSealed(disk, keyHardState)
	if err != nil {
		return false, err
	}
	_, removed, err := getSealed(disk, keyRemoved)
	if err != nil {
		return false, err
	}
	n.logFirst, n.logLast = 1, 0 // no log: a bootstrap writes its own, a joiner gets the leader's snapshot
	if !voted && !removed {
		return true, nil // an empty disk
	}
	n.removedSelf = removed
	if !voted {
		return false, nil
	}
	var hs raftpb.HardState
	if err := hs.Unmarshal(hsBytes); err != nil {
		return false, fmt.Errorf("%w: hard state: %v", storage.ErrCorrupt, err)
	}
	if hs.Commit != 0 {
		return false, fmt.Errorf("%w: hard state commits %d but there is no snapshot or log", storage.ErrCorrupt, hs.Commit)
	}
	return false, n.log.SetHardState(hs)
}

// loadLog reads the log records: contiguous, with terms that never go down,
// reaching the snapshot and agreeing with it where they meet. A replaced
// tail left behind would break these (its terms are older than the entries
// before it).
func (n *Node) loadLog(disk storage.Reader, snap raftpb.SnapshotMetadata) error {
	var ents []raftpb.Entry
	n.logFirst, n.logLast = 0, 0
	err := module.ScanRecords(disk, prefixLog, func(key, payload []byte) error {
		var e raftpb.Entry
		if err := e.Unmarshal(payload); err != nil {
			return fmt.Errorf("%w: log entry: %v", storage.ErrCorrupt, err)
		}
		if idx := binary.BigEndian.Uint64(key); idx != e.Index {
			return fmt.Errorf("%w: log key %d holds entry %d", storage.ErrCorrupt, idx, e.Index)
		}
		if len(ents) > 0 {
			prev := ents[len(ents)-1]
			if e.Index != prev.Index+1 {
				return fmt.Errorf("%w: log gap between %d and %d", storage.ErrCorrupt, prev.Index, e.Index)
			}
			if e.Term < prev.Term {
				return fmt.Errorf("%w: log term goes down from %d at %d to %d at %d", storage.ErrCorrupt, prev.Term, prev.Index, e.Term, e.Index)
			}
		}
		ents = append(ents, e)
		return nil
	})
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		n.logFirst, n.logLast = n.snapIndex+1, n.snapIndex
		return nil
	}
	if ents[0].Index > n.snapIndex+1 || ents[len(ents)-1].Index < n.snapIndex {
		return fmt.Errorf("%w: log [%d, %d] does not reach snapshot %d", storage.ErrCorrupt, ents[0].Index, ents[len(ents)-1].Index, n.snapIndex)
	}
	if err := checkSnapshotTerm(ents, snap); err != nil {
		return err
	}
	n.logFirst, n.logLast = ents[0].Index, ents[len(ents)-1].Index
	if err := n.log.Append(ents); err != nil {
		return fmt.Errorf("load log: %w", err)
	}
	return nil
}

// checkSnapshotTerm checks that contiguous log records reaching the snapshot
// agree with it: the entry at its index has its term, and the one after it
// no older a term.
func checkSnapshotTerm(ents []raftpb.Entry, snap raftpb.SnapshotMetadata) error {
	first := ents[0].Index // at most snap.Index+1: loadLog checked
	if first <= snap.Index {
		if t := ents[snap.Index-first].Term; t != snap.Term {
			return fmt.Errorf("%w: log entry %d has term %d, the snapshot there has %d", storage.ErrCorrupt, snap.Index, t, snap.Term)
		}
	} else if ents[0].Term < snap.Term {
		return fmt.Errorf("%w: log term goes down from %d at snapshot %d to %d at %d", storage.ErrCorrupt, snap.Term, snap.Index, ents[0].Term, first)
	}
	return nil
}

// loadHardState reads the hard state; a missing one reads as empty (and
// checkLoaded then refuses a replica with a snapshot but no commit index).
func (n *Node) loadHardState(disk storage.Reader) (raftpb.HardState, error) {
	var hs raftpb.HardState
	b, ok, err := getSealed(disk, keyHardState)
	if err != nil || !ok {
		return hs, err
	}
	if err := hs.Unmarshal(b); err != nil {
		return hs, fmt.Errorf("%w: hard state: %v", storage.ErrCorrupt, err)
	}
	return hs, n.log.SetHardState(hs)
}

// loadState restores the replicated state and the applied index written
// with it.
func (n *Node) loadState(disk storage.Reader) error {
	b, ok, err := getSealed(disk, keyApplied)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: snapshot present but no applied index", storage.ErrCorrupt)
	}
	meta, err := decodeApplied(b)
	if err != nil {
		return err
	}
	for _, s := range n.h.states {
		if err := s.Load(disk); err != nil {
			return fmt.Errorf("load %s: %w", s.Name(), err)
		}
	}
	n.applied, n.conf = meta.Index, meta.Conf
	n.timeNs, n.stampFloorNs = meta.TimeNs, meta.TimeNs
	_, marked, err := getSealed(disk, keyRemoved)
	if err != nil {
		return err
	}
	n.removedSelf = marked || n.h.members.m.removed[n.cfg.ID]
	n.h.kv.M.SetRevision(n.plantLoadedRevision(meta.Revision, n.h.kv.MaxModRev()))
	return nil
}
