package node

import (
	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/session"
	"github.com/aspen-db/aspen/core/storage"
	"go.etcd.io/raft/v3/raftpb"
)

// applyEntries applies committed entries in order; their effects go into the
// same batch as the applied index that covers them.
func (n *Node) applyEntries(ents []raftpb.Entry, out *Ready) {
	for _, e := range ents {
		assert.That(e.Index == n.applied+1, "applying entry %d after %d", e.Index, n.applied)
		switch e.Type {
		case raftpb.EntryNormal:
			if len(e.Data) > 0 {
				n.applyCommand(e, out)
			}
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			assert.That(cc.Unmarshal(e.Data) == nil, "conf change at %d does not decode", e.Index)
			n.applyConfChange(e, cc.AsV2(), out)
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			assert.That(cc.Unmarshal(e.Data) == nil, "conf change v2 at %d does not decode", e.Index)
			n.applyConfChange(e, cc, out)
		}
		n.applied = e.Index
		if n.cfg.AppliedRecordsEnabled {
			out.Applied = append(out.Applied, Applied{Index: e.Index, Term: e.Term, EntryHash: entryHash(e), StateHash: n.StateHash()})
		}
	}
	if len(ents) > 0 {
		out.Batch.Put(keyApplied, encodeApplied(n.appliedMeta()))
	}
}

func (n *Node) applyCommand(e raftpb.Entry, out *Ready) {
	b := &out.Batch
	cmd, err := decodeCommand(e.Data)
	// Only encodeCommand makes entries and the log is checksummed on disk, so an
	// entry that does not decode means the replica cannot be trusted.
	assert.That(err == nil, "entry %d does not decode: %v", e.Index, err)
	n.advanceTime(cmd)
	client, seq := cmd.client, cmd.seq
	verdict, saved := n.sessions.Check(client, seq)
	verdict = n.plantVerdict(verdict)
	switch {
	case verdict == session.Fresh && cmd.kind == cmdAdvertise:
		resp := kv.Response{Succeeded: n.setAddresses(cmd.member, out), Revision: n.kv.Revision()}
		n.recordSession(client, seq, e.Index, resp, b)
		n.answer(client, seq, resp, OK, "")
	case verdict == session.Fresh:
		before := n.kv.Revision()
		resp, changes := n.kv.Apply(cmd.txn)
		resp = n.plantApplied(resp, changes)
		persistChanges(changes, b)
		if n.cfg.EventsEnabled {
			rev := n.plantEventRevision(resp.Revision, before)
			for _, c := range changes {
				out.Events = append(out.Events, Event{Revision: rev, Key: c.Key, Record: c.Record, Deleted: c.Deleted})
			}
		}
		n.recordSession(client, seq, e.Index, resp, b)
		n.answer(client, seq, resp, OK, "")
	case verdict == session.Duplicate:
		resp, err := kv.DecodeResponse(saved)
		assert.That(err == nil, "saved response of client %d does not decode: %v", client, err)
		n.answer(client, seq, resp, OK, "")
	default:
		n.answer(client, seq, kv.Response{}, Stale, "")
	}
}

// recordSession saves a write's answer for retries, persisting the session
// (and forgetting the one evicted to make room).
func (n *Node) recordSession(client, seq, index uint64, resp kv.Response, b *storage.Batch) {
	if evicted, ok := n.sessions.Record(client, seq, index, kv.EncodeResponse(resp)); ok {
		b.Delete(clientKey(evicted))
	}
	entry, _ := n.sessions.Get(client)
	b.Put(clientKey(client), session.EncodeEntry(entry))
}

func persistChanges(changes []kv.Change, b *storage.Batch) {
	for _, c := range changes {
		if c.Deleted {
			b.Delete(kvKey(c.Key))
		} else {
			b.Put(kvKey(c.Key), kv.EncodeRecord(c.Record))
		}
	}
}

// answer responds to the client's pending write, if it is waiting here.
func (n *Node) answer(client, seq uint64, resp kv.Response, o Outcome, detail string) {
	p, ok := n.writes[client]
	if !ok || p.seq != seq {
		return
	}
	delete(n.writes, client)
	n.responses = append(n.responses, Response{Client: client, Seq: seq, Result: resp, Outcome: o, Detail: detail})
}

// installSnapshot replaces the whole state with one sent by the leader.
func (n *Node) installSnapshot(snap raftpb.Snapshot, b *storage.Batch) {
	parts, err := decodeSections(snap.Data)
	assert.That(err == nil, "snapshot at %d does not decode: %v", snap.Metadata.Index, err)
	timeNs, err := decodeTime(parts[sectionTime])
	assert.That(err == nil, "snapshot time does not decode: %v", err)
	stored := withoutData(snap)
	assert.That(n.log.ApplySnapshot(stored) == nil, "snapshot at %d refused", snap.Metadata.Index)
	oldKeys := len(b.Ops)
	n.kv.Ascend(func(key []byte, _ kv.Record) bool {
		b.Delete(kvKey(key))
		return true
	})
	n.plantKeepDeleted(b, oldKeys)
	for _, id := range n.sessions.Clients() {
		b.Delete(clientKey(id))
	}
	assert.That(n.kv.Restore(parts[sectionKV]) == nil, "snapshot kv state does not decode")
	assert.That(n.sessions.Restore(parts[sectionSessions]) == nil, "snapshot sessions do not decode")
	members, err := decodeMembership(parts[sectionMembers])
	assert.That(err == nil, "snapshot membership does not decode: %v", err)
	n.members = members
	n.persistMembers(b)
	n.persistState(b)
	for i := n.logFirst; i <= n.logLast; i++ {
		b.Delete(logKey(i))
	}
	n.applied, n.snapIndex, n.conf = snap.Metadata.Index, snap.Metadata.Index, snap.Metadata.ConfState
	n.timeNs = max(n.timeNs, timeNs)
	n.logFirst, n.logLast = snap.Metadata.Index+1, snap.Metadata.Index
	n.freeze()
	b.Put(keySnapshot, mustMarshal(&stored))
	b.Put(keyApplied, encodeApplied(n.appliedMeta()))
}

// maybeSnapshot takes a snapshot once enough entries were applied since the
// last, and compacts the log behind it, keeping a tail for slow followers.
func (n *Node) maybeSnapshot(b *storage.Batch) {
	if n.applied < n.snapIndex+n.cfg.SnapshotEntries && !(n.snapshotDue && n.applied > n.snapIndex) {
		return
	}
	n.snapshotDue = false
	snap, err := n.log.CreateSnapshot(n.applied, &n.conf, nil)
	assert.That(err == nil, "create snapshot at %d: %v", n.applied, err)
	n.snapIndex = n.applied
	n.freeze()
	b.Put(keySnapshot, mustMarshal(&snap))
	if n.applied <= n.cfg.CompactKeepEntries {
		return
	}
	compact := n.applied - n.cfg.CompactKeepEntries
	// Raft's log and the records on disk may start at different indexes (a
	// restart keeps records below the snapshot that raft never loads), so each
	// is trimmed on its own terms.
	if first, _ := n.log.FirstIndex(); compact >= first {
		err := n.log.Compact(compact)
		assert.That(err == nil, "compact raft log to %d (first %d): %v", compact, first, err)
	}
	n.trimTo = max(n.trimTo, compact)
}

// logTrimPerReady bounds the log records one Ready deletes. Compaction frees
// thousands of records at once in a busy cluster; deleting them all in one
// batch stalled that round (and every answer waiting on it) for tens of ms.
const logTrimPerReady = 256

// trimLog deletes the next few log records at or below the compaction point.
// Records not yet deleted are harmless: a restart skips those below the
// snapshot, and they are deleted again after it.
func (n *Node) trimLog(b *storage.Batch) {
	end := min(n.trimTo, n.logFirst+logTrimPerReady-1)
	for i := n.logFirst; i <= end; i++ {
		b.Delete(logKey(i))
	}
	n.logFirst = max(n.logFirst, end+1)
}

// snapshotParts is the whole replicated state as it is now, by section; the
// KV state, the largest, is left to the caller (a backup encodes it now, a
// snapshot later from a clone).
func (n *Node) snapshotParts() snapshotParts {
	return snapshotParts{sectionSessions: n.sessions.Snapshot(), sectionMembers: n.members.encode(), sectionTime: encodeTime(n.timeNs)}
}

// snapshotData encodes the whole replicated state as it is now, for backups.
func (n *Node) snapshotData() []byte {
	parts := n.snapshotParts()
	parts[sectionKV] = n.kv.Snapshot()
	return encodeSections(parts)
}
