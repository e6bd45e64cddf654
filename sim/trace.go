package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"go.etcd.io/raft/v3/raftpb"
)

// tracer hashes every event that runs, and writes a readable line per event
// when asked. Two runs with equal hashes did the same things at the same times.
type tracer struct {
	h   hash.Hash
	buf []byte
	out io.Writer
	now int64
}

func newTracer(out io.Writer) tracer {
	return tracer{h: sha256.New(), out: out}
}

func (t *tracer) event(e *event) {
	t.now = e.at
	b := t.buf[:0]
	b = binary.LittleEndian.AppendUint64(b, uint64(e.at))
	b = append(b, byte(e.kind))
	b = binary.LittleEndian.AppendUint64(b, uint64(int64(e.node)))
	b = binary.LittleEndian.AppendUint64(b, e.inc)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.client))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.n))
	var reqClient, reqSeq uint64
	if e.req != nil {
		reqClient, reqSeq = e.req.Client, e.req.Seq
	}
	b = binary.LittleEndian.AppendUint64(b, reqClient^e.resp.Client)
	b = binary.LittleEndian.AppendUint64(b, reqSeq^e.resp.Seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.resp.Result.Revision))
	b = append(b, byte(e.resp.Outcome))
	b = append(b, e.resp.Detail...)
	b = append(b, e.msg...) // one Write: the hash is the same, the call overhead half
	t.buf = b
	t.h.Write(b)
	if t.out != nil {
		t.line(e)
	}
}

func (t *tracer) line(e *event) {
	s := fmt.Sprintf("%12.6f %-15s", float64(e.at)/1e9, evNames[e.kind])
	switch e.kind {
	case evTick, evReadyDone, evRestart, evUnpause, evRound:
		s += fmt.Sprintf(" node=%d", e.node+1)
	case evDeliver:
		s += fmt.Sprintf(" %d->%d %s", e.from+1, e.node+1, describeMessage(e.msg))
	case evToNode:
		s += fmt.Sprintf(" client=%d seq=%d node=%d", e.req.Client, e.req.Seq, e.node+1)
	case evToClient:
		s += fmt.Sprintf(" client=%d seq=%d rev=%d outcome=%q", e.resp.Client, e.resp.Seq, e.resp.Result.Revision, e.resp.Outcome)
		if e.resp.Detail != "" {
			s += fmt.Sprintf(" detail=%q", e.resp.Detail)
		}
	case evAttemptTimeout, evClientNext:
		s += fmt.Sprintf(" client=%d attempt=%d", e.client, e.n)
	}
	fmt.Fprintln(t.out, s)
}

// note records a fault or lifecycle step, in the hash too.
func (t *tracer) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.h.Write([]byte(msg))
	if t.out != nil {
		fmt.Fprintf(t.out, "%12.6f note            %s\n", float64(t.now)/1e9, msg)
	}
}

func (t *tracer) sum() string { return hex.EncodeToString(t.h.Sum(nil)) }

// describeMessage summarises a raft message for the readable trace.
func describeMessage(b []byte) string {
	var m raftpb.Message
	if err := m.Unmarshal(b); err != nil {
		return fmt.Sprintf("undecodable (%d bytes)", len(b))
	}
	s := fmt.Sprintf("%s term=%d", m.Type, m.Term)
	switch m.Type {
	case raftpb.MsgApp, raftpb.MsgAppResp, raftpb.MsgHeartbeat, raftpb.MsgHeartbeatResp, raftpb.MsgVote, raftpb.MsgPreVote:
		s += fmt.Sprintf(" index=%d logterm=%d commit=%d", m.Index, m.LogTerm, m.Commit)
	case raftpb.MsgSnap:
		s += fmt.Sprintf(" snapshot=%d/%d", m.Snapshot.Metadata.Index, m.Snapshot.Metadata.Term)
	}
	if len(m.Entries) > 0 {
		s += fmt.Sprintf(" entries=%d..%d", m.Entries[0].Index, m.Entries[len(m.Entries)-1].Index)
	}
	if m.Reject {
		s += fmt.Sprintf(" reject hint=%d", m.RejectHint)
	}
	return s
}
