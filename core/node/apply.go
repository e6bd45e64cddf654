package node

import (
	"math"
	"slices"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/session"
	"github.com/aspen-db/aspen/core/storage"
	"go.etcd.io/raft/v3/raftpb"
)

// applyEntries applies committed entries in order; their effects go into the
// same batch as the applied index that covers them.
func (n *Node) applyEntries(ents []raftpb.Entry, out *Ready) {
	for _, e := range ents {
		if e.Index != n.applied+1 { // checked first: the message's arguments would allocate on every entry
			assert.That(false, "applying entry %d after %d", e.Index, n.applied)
		}
		var kind byte
		var stamped bool
		switch e.Type {
		case raftpb.EntryNormal:
			if len(e.Data) > 0 {
				kind, stamped = n.applyCommand(e, out)
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
		n.snapBytes += uint64(len(e.Data))
		if n.cfg.AppliedRecordsEnabled {
			out.Applied = append(out.Applied, Applied{Index: e.Index, Term: e.Term, EntryHash: entryHash(&e), StateHash: n.StateHash(),
				Kind: kind, Stamped: stamped, TimeNs: n.timeNs, Revision: n.h.kv.M.Revision(), Reports: n.h.reports()})
		}
	}
	if len(ents) > 0 {
		out.Batch.PutRecord(keyApplied, appliedRecord(n.appliedMeta()))
	}
}

// applyCommand applies one client's or leader's command and returns its kind
// and whether a leader stamped it.
func (n *Node) applyCommand(e raftpb.Entry, out *Ready) (byte, bool) {
	cmd, err := decodeCommand(e.Data)
	mod := n.h.byKind[cmd.kind]
	if err != nil || mod == nil { // checked first: the message's arguments would allocate on every entry
		// Only encodeCommand makes entries and the log is checksummed on
		// disk, so an entry that does not decode means the replica cannot be
		// trusted.
		assert.That(false, "entry %d (kind %d, owned: %t) does not decode: %v", e.Index, cmd.kind, mod != nil, err)
	}
	n.advanceTime(cmd)
	n.env = module.Env{Index: e.Index, NowNs: n.plantNow(n.timeNs), Batch: &out.Batch}
	env := &n.env
	defer n.collectEffects(out)
	if cmd.client == 0 {
		mod.Apply(env, cmd.kind, cmd.body) // the leader's own: no session, no one waiting
		return cmd.kind, cmd.stamped
	}
	client, seq := cmd.client, cmd.seq
	verdict, saved := n.h.sessions.Check(client, seq)
	switch n.plantVerdict(verdict) {
	case session.Fresh:
		a := mod.Apply(env, cmd.kind, cmd.body)
		n.recordSession(client, seq, e.Index, savedAnswer(a), env.Batch)
		n.answer(client, seq, a)
	case session.Duplicate:
		n.answer(client, seq, replay(mod, client, saved))
	default:
		n.answer(client, seq, module.Answer{Outcome: Stale})
	}
	return cmd.kind, cmd.stamped
}

// A refusal is saved with the session too: a copy of the same command that
// reaches the log again (a retry, or a resubmission after a failover) must
// get the same answer, not be judged afresh against a state that may since
// have changed (an id taken then, free now). Its saved form starts with
// savedRefusal, which no module's answer encoding starts with (module.Answer).
const savedRefusal = 0xFE

func savedAnswer(a module.Answer) []byte {
	if a.Outcome == OK {
		assert.That(len(a.Data) == 0 || a.Data[0] != savedRefusal, "an answer encoding starts with the refusal mark")
		return a.Data
	}
	return append([]byte{savedRefusal, byte(a.Outcome)}, a.Detail...)
}

// replay answers a retry from what its first application saved.
func replay(mod module.Module, client uint64, saved []byte) module.Answer {
	if len(saved) >= 2 && saved[0] == savedRefusal {
		return module.Answer{Outcome: Outcome(saved[1]), Detail: string(saved[2:])}
	}
	v, err := mod.DecodeAnswer(saved)
	assert.That(err == nil, "saved answer of client %d does not decode: %v", client, err)
	return module.Answer{Value: v}
}

// collectEffects hands the driver what applying did beyond the batch (the
// KV module adds its events to the Ready itself): word that member
// addresses changed.
func (n *Node) collectEffects(out *Ready) {
	if n.h.members.changed {
		out.MembersChanged, n.h.members.changed = true, false
	}
}

// recordSession saves a write's answer for retries, persisting the session
// (and forgetting the one evicted to make room).
func (n *Node) recordSession(client, seq, index uint64, answer []byte, b *storage.Batch) {
	if evicted, ok := n.h.sessions.Record(client, seq, index, answer); ok {
		b.Delete(clientKey(evicted))
	}
	entry, _ := n.h.sessions.Get(client)
	b.PutRecord(clientKey(client), session.AppendEntry(storage.NewRecord(session.EntrySizeMax(entry)), entry))
}

// answer responds to the client's pending write, if it is waiting here.
func (n *Node) answer(client, seq uint64, a module.Answer) {
	p, ok := n.writes[client]
	if !ok || p.seq != seq {
		return
	}
	delete(n.writes, client)
	n.responses = append(n.responses, toResponse(client, seq, a))
}

func toResponse(client, seq uint64, a module.Answer) Response {
	r := Response{Client: client, Seq: seq, Outcome: a.Outcome, Detail: a.Detail, Value: a.Value}
	switch v := a.Value.(type) {
	case kv.Response:
		r.Result, r.Value = v, nil
	case *kv.Response: // the KV module's answer in place (kv.Module.Apply): copy it now
		r.Result, r.Value = *v, nil
	}
	return r
}

// installSnapshot replaces the whole state with one sent by the leader.
func (n *Node) installSnapshot(snap raftpb.Snapshot, b *storage.Batch) {
	parts, err := decodeSections(snap.Data, n.h.sectionSpecs())
	assert.That(err == nil, "snapshot at %d does not decode: %v", snap.Metadata.Index, err)
	timeNs, err := decodeTime(parts[sectionTime])
	assert.That(err == nil, "snapshot time does not decode: %v", err)
	stored := withoutData(snap)
	assert.That(n.log.ApplySnapshot(stored) == nil, "snapshot at %d refused", snap.Metadata.Index)
	for _, s := range n.h.states {
		from := len(b.Ops)
		s.Clear(b)
		n.plantKeepDeleted(b, from)
		assert.That(s.Restore(parts[s.Name()]) == nil, "snapshot section %s does not decode", s.Name())
		s.Persist(b)
	}
	for i := n.logFirst; i <= n.logLast; i++ {
		b.Delete(logKey(i))
	}
	n.applied, n.snapIndex, n.conf = snap.Metadata.Index, snap.Metadata.Index, snap.Metadata.ConfState
	n.snapBytes = 0
	n.timeNs = max(n.timeNs, timeNs)
	n.logFirst, n.logLast = snap.Metadata.Index+1, snap.Metadata.Index
	n.freeze()
	b.Put(keySnapshot, mustMarshal(&stored))
	b.PutRecord(keyApplied, appliedRecord(n.appliedMeta()))
}

// maybeSnapshot takes a snapshot once enough entries (or bytes of them) were
// applied since the last, and compacts the log behind it, keeping a tail for
// slow followers.
func (n *Node) maybeSnapshot(b *storage.Batch) {
	due := n.applied >= n.snapIndex+n.cfg.SnapshotEntries ||
		n.cfg.SnapshotBytes > 0 && n.snapBytes >= n.cfg.SnapshotBytes ||
		n.snapshotDue && n.applied > n.snapIndex
	if !due {
		return
	}
	n.snapshotDue, n.snapBytes = false, 0
	snap, err := n.log.CreateSnapshot(n.applied, &n.conf, nil)
	assert.That(err == nil, "create snapshot at %d: %v", n.applied, err)
	n.snapIndex = n.applied
	n.freeze()
	b.Put(keySnapshot, mustMarshal(&snap))
	keep := n.keepEntries()
	if n.applied <= keep {
		return
	}
	compact := n.applied - keep
	// Raft's log and the records on disk may start at different indexes (a
	// restart keeps records below the snapshot that raft never loads), so each
	// is trimmed on its own terms.
	if first, _ := n.log.FirstIndex(); compact >= first {
		err := n.log.Compact(compact)
		assert.That(err == nil, "compact raft log to %d (first %d): %v", compact, first, err)
	}
	n.trimTo = max(n.trimTo, compact)
}

// keepEntries is how many applied entries compaction keeps: CompactKeepEntries,
// or fewer when their payload exceeds CompactKeepBytes.
func (n *Node) keepEntries() uint64 {
	keep := n.cfg.CompactKeepEntries
	first, _ := n.log.FirstIndex()
	if n.cfg.CompactKeepBytes == 0 || keep == 0 || n.applied < first {
		return keep
	}
	lo := max(first, n.applied-min(keep, n.applied)+1)
	ents, err := n.log.Entries(lo, n.applied+1, math.MaxUint64)
	assert.That(err == nil, "read log [%d, %d] to compact: %v", lo, n.applied, err)
	var bytes uint64
	for i := len(ents) - 1; i >= 0; i-- {
		if bytes += uint64(len(ents[i].Data)); bytes > n.cfg.CompactKeepBytes {
			return uint64(len(ents) - 1 - i)
		}
	}
	return keep
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
	if end >= n.logFirst {
		b.Ops = slices.Grow(b.Ops, int(end-n.logFirst+1))
	}
	for i := n.logFirst; i <= end; i++ {
		b.Delete(logKey(i))
	}
	n.logFirst = max(n.logFirst, end+1)
}

// snapshotData encodes the whole replicated state as it is now, for backups.
func (n *Node) snapshotData() []byte {
	f := n.frozenState()
	return f.encode()
}
