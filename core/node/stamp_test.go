package node

import (
	"bytes"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// A leader stamps the commands it proposes, its own and those followers
// forward, and nothing else: a membership change a deposed leader proposed
// reaches the next leader forwarded, in raft's own encoding.
func TestLeaderStampsOnlyCommands(t *testing.T) {
	cc := raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddLearnerNode, NodeID: 4}}}
	ccData := mustMarshal(&cc)
	cmd := encodeCommand(cmdAdvertise, 7, 1, encodeAdvertise(Member{ID: 4}))
	ents := []raftpb.Entry{
		{Type: raftpb.EntryNormal, Data: bytes.Clone(cmd)},
		{Type: raftpb.EntryConfChangeV2, Data: bytes.Clone(ccData)},
		{Type: raftpb.EntryNormal}, // raft's own empty entry
	}
	n := &Node{now: 5e9}
	n.stampEntries(ents)
	if c, err := decodeCommand(ents[0].Data); err != nil || !c.stamped || c.stampNs != 5e9 || c.client != 7 {
		t.Errorf("command: got %+v, %v; want it stamped 5e9 for client 7", c, err)
	}
	if !bytes.Equal(ents[1].Data, ccData) {
		t.Errorf("membership change: data %x, want it untouched %x", ents[1].Data, ccData)
	}
	var back raftpb.ConfChangeV2
	if err := back.Unmarshal(ents[1].Data); err != nil {
		t.Errorf("membership change no longer decodes: %v", err)
	}
	if len(ents[2].Data) != 0 {
		t.Errorf("empty entry: data %x, want none", ents[2].Data)
	}
}

// A command a deposed leader stamped and forwarded gets the new leader's
// stamp in place of its own: every stamp in a term is its leader's clock.
func TestLeaderReplacesAForwardedStamp(t *testing.T) {
	body := encodeAdvertise(Member{ID: 4})
	ents := []raftpb.Entry{{Type: raftpb.EntryNormal, Data: stampCommand(encodeCommand(cmdAdvertise, 7, 3, body), 1e9)}}
	n := &Node{now: 9e9}
	n.stampEntries(ents)
	c, err := decodeCommand(ents[0].Data)
	if err != nil || !c.stamped || c.stampNs != 9e9 || c.client != 7 || c.seq != 3 || !bytes.Equal(c.body, body) {
		t.Fatalf("got %+v, %v; want stamp 9e9 over 1e9, client 7, seq 3 and the body unchanged", c, err)
	}
}
