package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/session"
	"github.com/aspen-db/aspen/core/storage"
	"go.etcd.io/raft/v3/confchange"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// MemberChangeType is one kind of membership change.
type MemberChangeType uint8

const (
	AddVoter   MemberChangeType = iota + 1 // add a voter, or promote a learner
	AddLearner                             // add a non-voting member that catches up first
	RemoveMember
)

// MemberChange is one change of a membership request. Addresses are kept in
// the replicated state so every member learns how to reach a newcomer.
type MemberChange struct {
	Type     MemberChangeType
	ID       uint64
	PeerAddr string
	HTTPAddr string
}

// Member is one member as the replicated state knows it.
type Member struct {
	ID       uint64
	PeerAddr string
	HTTPAddr string
	Learner  bool
}

// membership is the replicated record of who may be a member: addresses of
// current members and every id ever removed (ids are never reused, so a
// removed node's stale messages and disk can never be mistaken for a new one).
type membership struct {
	addrs   map[uint64][2]string // id -> peer, http address
	removed map[uint64]bool
}

func newMembership() membership {
	return membership{addrs: map[uint64][2]string{}, removed: map[uint64]bool{}}
}

func sortedIDs[V any](m map[uint64]V) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func (m membership) encode() []byte {
	var b []byte
	ids := sortedIDs(m.addrs)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, id)
		for _, s := range m.addrs[id] {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	removed := sortedIDs(m.removed)
	b = binary.AppendUvarint(b, uint64(len(removed)))
	for _, id := range removed {
		b = binary.AppendUvarint(b, id)
	}
	return b
}

var errMalformedMembers = errors.New("node: malformed membership record")

func decodeMembership(b []byte) (membership, error) {
	m := newMembership()
	r := module.Reader{B: b}
	n := r.Uvarint()
	for i := uint64(0); i < n && r.Err == nil; i++ {
		id := r.Uvarint()
		m.addrs[id] = [2]string{r.String(), r.String()}
	}
	n = r.Uvarint()
	for i := uint64(0); i < n && r.Err == nil; i++ {
		m.removed[r.Uvarint()] = true
	}
	if r.Err != nil || len(r.B) != 0 {
		return newMembership(), errMalformedMembers
	}
	return m, nil
}

func hashBytes(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// encodeConfContext carries the requesting client and the changes' addresses
// inside the raft conf change, so every replica applies the same thing.
func encodeConfContext(client, seq uint64, changes []MemberChange) []byte {
	b := binary.AppendUvarint(nil, client)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, uint64(len(changes)))
	for _, c := range changes {
		b = append(b, byte(c.Type))
		b = binary.AppendUvarint(b, c.ID)
		for _, s := range []string{c.PeerAddr, c.HTTPAddr} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	return b
}

func decodeConfContext(b []byte) (client, seq uint64, changes []MemberChange, err error) {
	r := module.Reader{B: b}
	client, seq = r.Uvarint(), r.Uvarint()
	n := r.Uvarint()
	for i := uint64(0); i < n && r.Err == nil; i++ {
		if len(r.B) == 0 {
			r.Err = errMalformedMembers
			break
		}
		c := MemberChange{Type: MemberChangeType(r.B[0])}
		r.B = r.B[1:]
		c.ID, c.PeerAddr, c.HTTPAddr = r.Uvarint(), r.String(), r.String()
		changes = append(changes, c)
	}
	return client, seq, changes, r.Err
}

func toConfChange(changes []MemberChange, context []byte) raftpb.ConfChangeV2 {
	cc := raftpb.ConfChangeV2{Context: context}
	for _, c := range changes {
		t := raftpb.ConfChangeAddNode
		switch c.Type {
		case AddLearner:
			t = raftpb.ConfChangeAddLearnerNode
		case RemoveMember:
			t = raftpb.ConfChangeRemoveNode
		}
		cc.Changes = append(cc.Changes, raftpb.ConfChangeSingle{Type: t, NodeID: c.ID})
	}
	return cc
}

// noopConfChange is what a replica applies in place of a refused change: raft
// must see every conf change entry applied, and node id 0 changes nothing.
var noopConfChange = raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddNode, NodeID: 0}}}

// checkChanges refuses changes no replica should apply: reused or unknown ids,
// and anything raft's own rules reject (two voters changed at once outside a
// joint config, no voters left, ...). It is a pure function of replicated
// state, so every replica decides the same.
func (n *Node) checkChanges(cc raftpb.ConfChangeV2, changes []MemberChange) error {
	for _, c := range changes {
		switch {
		case c.ID == 0:
			return fmt.Errorf("member id must not be 0")
		case c.Type != RemoveMember && n.plantRemoved(n.h.members.m.removed[c.ID]):
			return fmt.Errorf("node %d was removed; ids are never reused", c.ID)
		case c.Type == RemoveMember && !n.isMember(c.ID):
			return fmt.Errorf("node %d is not a member", c.ID)
		case c.Type == AddLearner && n.isMember(c.ID):
			return fmt.Errorf("node %d is already a member", c.ID)
		case c.Type == AddVoter && slices.Contains(n.conf.Voters, c.ID):
			return fmt.Errorf("node %d is already a voter", c.ID)
		}
	}
	return n.tryConfChange(cc)
}

// tryConfChange runs raft's own change logic on a copy of the configuration.
func (n *Node) tryConfChange(cc raftpb.ConfChangeV2) error {
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: 1}
	cfg, trk, err := confchange.Restore(chg, n.conf)
	assert.That(err == nil, "restore conf state %v: %v", n.conf, err)
	chg.Tracker.Config, chg.Tracker.Progress = cfg, trk
	if cc.LeaveJoint() {
		_, _, err = chg.LeaveJoint()
	} else if auto, ok := cc.EnterJoint(); ok {
		_, _, err = chg.EnterJoint(auto, cc.Changes...)
	} else {
		_, _, err = chg.Simple(cc.Changes...)
	}
	return err
}

func (n *Node) isMember(id uint64) bool {
	return slices.Contains(n.conf.Voters, id) || slices.Contains(n.conf.Learners, id) ||
		slices.Contains(n.conf.VotersOutgoing, id) || slices.Contains(n.conf.LearnersNext, id)
}

// applyConfChange applies one conf change entry: the requested change if it
// is allowed and not a retry, else a no-op, so raft and the replicated
// membership never disagree.
func (n *Node) applyConfChange(e raftpb.Entry, cc raftpb.ConfChangeV2, out *Ready) {
	hasCtx := len(cc.Context) > 0
	client, seq, changes, err := decodeConfContext(cc.Context)
	assert.That(!hasCtx || err == nil, "conf change context at %d does not decode: %v", e.Index, err)
	verdict, saved := session.Fresh, []byte(nil)
	if hasCtx {
		verdict, saved = n.h.sessions.Check(client, seq)
	}
	early := n.earlyApplied[string(cc.Context)]
	refusal := ""
	if verdict != session.Fresh {
		refusal = "a retry of a change already decided"
	} else if err := n.checkChanges(cc, changes); err != nil && !early {
		refusal = "membership change refused: " + err.Error()
	}
	applied := cc
	if refusal != "" || early {
		applied = noopConfChange // refused, or (planted bug) applied at proposal already
	}
	wasMember := n.isMember(n.cfg.ID)
	n.conf = *n.raw.ApplyConfChange(applied)
	if refusal == "" {
		n.updateMembers(changes, &out.Batch)
		out.MembersChanged = true
		// A newcomer refuses any snapshot whose configuration lacks it, and a
		// leader sends its latest: take one now that includes the newcomer.
		n.snapshotDue = n.snapshotDue || addsMember(changes)
	}
	if wasMember && !n.isMember(n.cfg.ID) {
		n.removedSelf = true
	}
	if hasCtx {
		n.answerConfChange(client, seq, e.Index, verdict, saved, refusal, &out.Batch)
	}
}

func (n *Node) answerConfChange(client, seq, index uint64, verdict session.Verdict, saved []byte, refusal string, b *storage.Batch) {
	switch verdict {
	case session.Fresh:
		resp := kv.Response{Succeeded: refusal == "", Revision: n.h.kv.M.Revision()}
		n.recordSession(client, seq, index, kv.EncodeResponse(resp), b)
		if refusal != "" {
			n.answer(client, seq, module.Answer{Value: resp, Outcome: Conflict, Detail: refusal})
			return
		}
		n.answer(client, seq, module.Answer{Value: resp})
	case session.Duplicate:
		resp, err := kv.DecodeResponse(saved)
		assert.That(err == nil, "saved response of client %d does not decode: %v", client, err)
		if !resp.Succeeded {
			n.answer(client, seq, module.Answer{Value: resp, Outcome: Conflict, Detail: "membership change refused"})
			return
		}
		n.answer(client, seq, module.Answer{Value: resp})
	case session.Stale:
		n.answer(client, seq, module.Answer{Outcome: Stale})
	}
}

func (n *Node) updateMembers(changes []MemberChange, b *storage.Batch) {
	for _, c := range changes {
		if c.Type == RemoveMember {
			delete(n.h.members.m.addrs, c.ID)
			n.h.members.m.removed[c.ID] = true
			continue
		}
		if c.PeerAddr == "" && c.HTTPAddr == "" {
			continue // a promotion keeps the addresses it had
		}
		n.h.members.m.addrs[c.ID] = [2]string{c.PeerAddr, c.HTTPAddr}
	}
	n.h.members.persist(b)
}

// Members lists current members with their addresses, in id order.
func (n *Node) Members() []Member {
	var out []Member
	ids := append(append([]uint64(nil), n.conf.Voters...), n.conf.Learners...)
	ids = append(ids, n.conf.VotersOutgoing...)
	seen := map[uint64]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		a := n.h.members.m.addrs[id]
		out = append(out, Member{ID: id, PeerAddr: a[0], HTTPAddr: a[1], Learner: slices.Contains(n.conf.Learners, id) && !slices.Contains(n.conf.Voters, id)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Removed reports whether a committed change removed this replica; its driver
// should stop it.
func (n *Node) Removed() bool { return n.removedSelf }

// MarkRemoved records that this replica was removed, for a driver that learned
// it from the cluster rather than from its own log (the leader stops
// replicating to a removed member at once). The batch must be written and
// synced before the driver stops: a restart on this disk then refuses to serve.
func (n *Node) MarkRemoved() storage.Batch {
	n.removedSelf = true
	var b storage.Batch
	b.Put(keyRemoved, []byte{1})
	return b
}

func addsMember(changes []MemberChange) bool {
	for _, c := range changes {
		if c.Type == AddLearner || c.Type == AddVoter {
			return true
		}
	}
	return false
}
