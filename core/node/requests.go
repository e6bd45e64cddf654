package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/session"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

type pendingRead struct {
	req      Request
	deadline int64
	ctx      uint64 // ReadIndex context; 0 until issued
	issuedAt int64
	index    uint64 // commit index the read must wait for
	ready    bool   // index is known
}

// Submit takes a client request. The answer comes in a later Ready: writes once
// their entry applies, reads once a ReadIndex confirms this replica is current.
func (n *Node) Submit(req Request) {
	if len(n.writes)+len(n.reads) >= n.cfg.PendingMax {
		n.reply(req, Busy, "")
		return
	}
	switch {
	case len(req.Members) > 0:
		n.submitMembers(req)
	case req.Advertise != nil:
		n.propose(req, cmdAdvertise, encodeAdvertise(*req.Advertise))
	case req.Call != nil:
		n.submitCall(req)
	default:
		n.submitTxn(req)
	}
}

func (n *Node) submitTxn(req Request) {
	req.Txn = capRanges(req.Txn, n.cfg.Limits.RangeLimitMax)
	if err := n.cfg.Limits.Validate(req.Txn); err != nil {
		n.reply(req, validationOutcome(err), err.Error())
		return
	}
	if !req.Txn.ReadOnly() {
		cmd := kv.Command(req.Txn)
		n.propose(req, cmd.Kind, cmd.Body)
		n.plantProposedTxn(req.Txn)
		return
	}
	if n.plantStale(req.Stale) {
		n.responses = append(n.responses, n.read(req))
		return
	}
	n.reads = append(n.reads, &pendingRead{req: req, deadline: n.now + n.cfg.RequestTimeoutNs})
}

// submitCall proposes a module's command, or queues its query like a read.
func (n *Node) submitCall(req Request) {
	kind := req.Call.Kind
	switch {
	case kind < cmdStamped && n.h.queries[kind] != nil:
		if req.Stale {
			n.responses = append(n.responses, n.read(req))
			return
		}
		n.reads = append(n.reads, &pendingRead{req: req, deadline: n.now + n.cfg.RequestTimeoutNs})
	case kind < cmdStamped && n.h.byKind[kind] != nil:
		if v, ok := n.h.byKind[kind].(module.Validator); ok {
			if a := v.Validate(kind, req.Call.Body); a.Outcome != OK {
				n.reply(req, a.Outcome, a.Detail)
				return
			}
		}
		n.propose(req, kind, req.Call.Body)
	default:
		n.reply(req, Invalid, fmt.Sprintf("no module serves call kind %d", kind))
	}
}

// read answers a read from this replica's applied state.
func (n *Node) read(req Request) Response {
	if req.Call == nil {
		return Response{Client: req.Client, Seq: req.Seq, Result: n.h.kv.M.Read(req.Txn)}
	}
	// What is left of a timer is told by the leader's clock (time.go).
	a := n.h.queries[req.Call.Kind].Query(req.Call.Kind, req.Call.Body, n.queryNowNs())
	return toResponse(req.Client, req.Seq, a)
}

// propose queues a write for the next MsgProp. A client has one write in
// flight; a newer one replaces it here, and a retry of the same one is
// proposed again (the session table applies it once).
func (n *Node) propose(req Request, kind byte, body []byte) {
	if req.Client == 0 {
		n.reply(req, Invalid, "client id 0 is reserved for the leader's own commands")
		return
	}
	n.writes[req.Client] = pendingWrite{seq: req.Seq, deadline: n.now + n.cfg.RequestTimeoutNs}
	n.proposals = append(n.proposals, raftpb.Entry{Data: encodeCommand(kind, req.Client, req.Seq, body)})
	if len(n.proposals) >= n.cfg.ProposalBatchMax {
		n.flushProposals()
	}
}

func (n *Node) reply(req Request, o Outcome, detail string) {
	n.responses = append(n.responses, Response{Client: req.Client, Seq: req.Seq, Outcome: o, Detail: detail})
}

// validationOutcome tells a request over a size limit from a malformed one.
func validationOutcome(err error) Outcome {
	if errors.Is(err, kv.ErrValueTooLarge) || errors.Is(err, kv.ErrKeyTooLarge) || errors.Is(err, kv.ErrTooManyOps) {
		return TooLarge
	}
	return Invalid
}

// flushProposals hands every queued write to raft as one MsgProp, which raft
// appends and replicates together: far cheaper than one proposal per write.
func (n *Node) flushProposals() {
	if len(n.proposals) == 0 {
		return
	}
	ents := n.proposals
	n.proposals = nil
	if n.leads() {
		n.stampEntries(ents)
	}
	err := n.raw.Step(raftpb.Message{Type: raftpb.MsgProp, From: n.cfg.ID, Entries: ents})
	if err == nil {
		return
	}
	for _, e := range ents {
		if c, err := decodeCommand(e.Data); err == nil {
			n.answer(c.client, c.seq, module.Answer{Outcome: Dropped})
		}
	}
}

// readsToIssue reports whether some read needs a (new) ReadIndex.
func (n *Node) readsToIssue() bool {
	for _, r := range n.reads {
		if n.needsIssue(r) {
			return true
		}
	}
	return false
}

func (n *Node) needsIssue(r *pendingRead) bool {
	// ReadIndex is dropped silently when there is no leader, so an unanswered
	// one is re-issued under a fresh context after ReadRetryNs.
	return r.ctx == 0 || (!r.ready && n.now-r.issuedAt >= n.cfg.ReadRetryNs)
}

// issueReads covers every read waiting for an index with one ReadIndex.
func (n *Node) issueReads() {
	var ctx uint64
	for _, r := range n.reads {
		if !n.needsIssue(r) {
			continue
		}
		if ctx == 0 {
			n.readCtx++
			ctx = n.readCtx
			n.raw.ReadIndex(n.readContext(ctx))
		}
		r.ctx, r.issuedAt = ctx, n.now
	}
}

// readContext makes a ReadIndex context unique across incarnations: a leader
// may answer a context issued before this replica restarted, and a counter
// alone would match that stale answer to a new read.
func (n *Node) readContext(ctx uint64) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), n.readEpoch)
	return binary.BigEndian.AppendUint64(b, ctx)
}

func (n *Node) readIndexArrived(rs raft.ReadState) {
	if len(rs.RequestCtx) != 16 || binary.BigEndian.Uint64(rs.RequestCtx) != n.readEpoch {
		return
	}
	ctx := binary.BigEndian.Uint64(rs.RequestCtx[8:])
	for _, r := range n.reads {
		if r.ctx == ctx && !r.ready {
			r.index, r.ready = rs.Index, true
		}
	}
}

// serveReads answers, in arrival order, every read whose index has applied.
func (n *Node) serveReads() {
	kept := n.reads[:0]
	for _, r := range n.reads {
		if r.ready && r.index <= n.applied {
			n.responses = append(n.responses, n.read(r.req))
			continue
		}
		kept = append(kept, r)
	}
	clearTail(n.reads, len(kept))
	n.reads = kept
}

// expire fails requests past their deadline; the client decides whether to retry.
func (n *Node) expire() {
	kept := n.reads[:0]
	for _, r := range n.reads {
		if n.now >= r.deadline {
			n.reply(r.req, Timeout, "")
			continue
		}
		kept = append(kept, r)
	}
	clearTail(n.reads, len(kept))
	n.reads = kept
	var late []uint64
	for client, p := range n.writes {
		if n.now >= p.deadline {
			late = append(late, client)
		}
	}
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] }) // map order must not reach output
	for _, client := range late {
		n.answer(client, n.writes[client].seq, module.Answer{Outcome: Timeout})
	}
}

func clearTail(s []*pendingRead, from int) {
	for i := from; i < len(s); i++ {
		s[i] = nil
	}
}

// capRanges gives every uncapped range the configured maximum, so no single
// read can return (and hold in memory) the whole store.
func capRanges(t kv.Txn, limit int) kv.Txn {
	capOps := func(ops []kv.Op) []kv.Op {
		for i, op := range ops {
			if op.Type == kv.OpRange && op.Limit == 0 {
				out := append([]kv.Op(nil), ops...) // the caller's slice stays as it was
				for j := i; j < len(out); j++ {
					if out[j].Type == kv.OpRange && out[j].Limit == 0 {
						out[j].Limit = limit
					}
				}
				return out
			}
		}
		return ops
	}
	t.Then, t.Else = capOps(t.Then), capOps(t.Else)
	return t
}

// submitMembers proposes a membership change. Promotions are judged by the
// leader, the only replica that knows how far behind a learner is.
func (n *Node) submitMembers(req Request) {
	if verdict, saved := n.h.sessions.Check(req.Client, req.Seq); verdict == session.Duplicate {
		// A retry of a change this replica has applied: answer as the first time.
		n.writes[req.Client] = pendingWrite{seq: req.Seq}
		n.answerConfChange(req.Client, req.Seq, 0, verdict, saved, "", nil)
		return
	}
	if n.role != raft.StateLeader {
		// The leader's configuration is the newest, and only it knows how far
		// behind a learner is; judging elsewhere could wave through a promotion.
		n.responses = append(n.responses, Response{Client: req.Client, Seq: req.Seq, Outcome: NotLeader, Leader: n.lead})
		return
	}
	cc := toConfChange(req.Members, encodeConfContext(req.Client, req.Seq, req.Members))
	if err := n.checkChanges(cc, req.Members); err != nil {
		n.reply(req, Conflict, "membership change refused: "+err.Error())
		return
	}
	if !n.promotionReady(req.Members) {
		n.reply(req, Behind, "the learner has not caught up with the leader's log")
		return
	}
	n.writes[req.Client] = pendingWrite{seq: req.Seq, deadline: n.now + n.cfg.RequestTimeoutNs}
	if err := n.raw.ProposeConfChange(cc); err != nil {
		n.answer(req.Client, req.Seq, module.Answer{Outcome: Dropped})
		return
	}
	n.plantProposedConfChange(cc)
}

// promotionReady refuses to promote a learner that has not caught up: a voter
// that cannot vote on recent entries weakens the quorum it joins.
func (n *Node) promotionReady(changes []MemberChange) bool {
	for _, c := range changes {
		if c.Type != AddVoter || !slices.Contains(n.conf.Learners, c.ID) {
			continue
		}
		st := n.raw.Status()
		pr, ok := st.Progress[c.ID]
		// Replicate means the learner acknowledged the leader's log and is being
		// streamed to; probing or waiting for a snapshot means it is not there yet.
		if !ok || pr.State != tracker.StateReplicate || pr.Match+n.cfg.PromoteLagEntriesMax < st.Commit {
			return false
		}
	}
	return true
}
