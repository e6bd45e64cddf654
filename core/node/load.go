package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/aspen-db/aspen/core/bugs"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/session"
	"github.com/aspen-db/aspen/core/storage"
	"go.etcd.io/raft/v3/raftpb"
)

var emptyResult kv.Response

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
	if err := n.loadLog(disk); err != nil {
		return false, err
	}
	if err := n.loadHardState(disk); err != nil {
		return false, err
	}
	if err := n.loadState(disk); err != nil {
		return false, err
	}
	return false, n.snapshotApplied()
}

// snapshotApplied moves raft's snapshot up to the applied index: the state
// just loaded is the state there, so that is the snapshot a follower can be
// sent. The entries between stay in raft's log for followers that need them.
func (n *Node) snapshotApplied() error {
	if last, _ := n.log.LastIndex(); n.applied > last {
		return fmt.Errorf("%w: applied index %d is beyond the log's last entry %d", storage.ErrCorrupt, n.applied, last)
	}
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

func (n *Node) loadLog(disk storage.Reader) error {
	var ents []raftpb.Entry
	n.logFirst, n.logLast = 0, 0
	err := scanSealed(disk, prefixLog, func(key, payload []byte) error {
		var e raftpb.Entry
		if err := e.Unmarshal(payload); err != nil {
			return fmt.Errorf("%w: log entry: %v", storage.ErrCorrupt, err)
		}
		if idx := binary.BigEndian.Uint64(key); idx != e.Index {
			return fmt.Errorf("%w: log key %d holds entry %d", storage.ErrCorrupt, idx, e.Index)
		}
		if len(ents) > 0 && e.Index != ents[len(ents)-1].Index+1 {
			return fmt.Errorf("%w: log gap between %d and %d", storage.ErrCorrupt, ents[len(ents)-1].Index, e.Index)
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
	n.logFirst, n.logLast = ents[0].Index, ents[len(ents)-1].Index
	if err := n.log.Append(ents); err != nil {
		return fmt.Errorf("load log: %w", err)
	}
	return nil
}

func (n *Node) loadHardState(disk storage.Reader) error {
	b, ok, err := getSealed(disk, keyHardState)
	if err != nil || !ok {
		return err
	}
	var hs raftpb.HardState
	if err := hs.Unmarshal(b); err != nil {
		return fmt.Errorf("%w: hard state: %v", storage.ErrCorrupt, err)
	}
	return n.log.SetHardState(hs)
}

// loadState restores the state machine, its sessions and the applied index
// written with them.
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
	var maxMod int64
	err = scanSealed(disk, prefixKV, func(key, payload []byte) error {
		r, err := kv.DecodeRecord(payload)
		if err != nil {
			return fmt.Errorf("%w: record %q: %v", storage.ErrCorrupt, key, err)
		}
		maxMod = max(maxMod, r.ModRev)
		n.kv.Load(key, r)
		return nil
	})
	if err != nil {
		return err
	}
	err = scanSealed(disk, prefixClient, func(key, payload []byte) error {
		e, err := session.DecodeEntry(payload)
		if err != nil {
			return fmt.Errorf("%w: session %x: %v", storage.ErrCorrupt, key, err)
		}
		n.sessions.Load(binary.BigEndian.Uint64(key), e)
		return nil
	})
	if err != nil {
		return err
	}
	if err := n.loadMembers(disk); err != nil {
		return err
	}
	n.applied, n.conf = meta.Index, meta.Conf
	_, marked, err := getSealed(disk, keyRemoved)
	if err != nil {
		return err
	}
	n.removedSelf = marked || n.members.removed[n.cfg.ID]
	rev := meta.Revision
	if n.cfg.Bugs.Has(bugs.RecomputeRevision) {
		rev = maxMod
	}
	n.kv.SetRevision(rev)
	return nil
}

func (n *Node) loadMembers(disk storage.Reader) error {
	b, ok, err := getSealed(disk, keyMembers)
	if err != nil || !ok {
		return err
	}
	m, err := decodeMembership(b)
	if err != nil {
		return fmt.Errorf("%w: %v", storage.ErrCorrupt, err)
	}
	n.members = m
	return nil
}
