package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"go.etcd.io/raft/v3"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/node"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// addJoiner starts an empty node that waits to be let in.
func (c *cluster) addJoiner(id uint64) int {
	c.t.Helper()
	members := map[uint64]string{}
	for k, v := range c.cfgs[0].Cluster {
		members[k] = v
	}
	members[id] = freeAddr(c.t)
	c.cfgs = append(c.cfgs, Config{ID: id, DataDir: c.t.TempDir(), PeerAddr: members[id], HTTPAddr: "127.0.0.1:0",
		Cluster: members, Tick: 20 * time.Millisecond, Join: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	i := len(c.cfgs) - 1
	c.servers = append(c.servers, c.start(i))
	return i
}

// waitAdvertised waits until node 1 knows every member's client address.
func (c *cluster) waitAdvertised() {
	c.t.Helper()
	eventually(c.t, "every node to advertise its address", func() bool {
		for _, m := range c.servers[0].Members() {
			if m.HTTPAddr == "" {
				return false
			}
		}
		return true
	})
}

func (c *cluster) leader() int {
	for i, s := range c.servers {
		if s != nil && s.Status().Role == raft.StateLeader {
			return i
		}
	}
	return -1
}

func (c *cluster) memberOp(body string) (int, string) {
	c.t.Helper()
	var code int
	var resp string
	eventually(c.t, "a leader to take "+body, func() bool {
		l := c.leader()
		if l < 0 {
			return false
		}
		code, _, resp = do(c.t, "POST", c.url(l, "/v1/aspen/members"), body)
		return code != http.StatusMisdirectedRequest
	})
	return code, resp
}

// leaderPost POSTs to the leader, asking again when leadership moved.
func (c *cluster) leaderPost(path string) (int, string) {
	c.t.Helper()
	var code int
	var resp string
	eventually(c.t, "a leader to answer "+path, func() bool {
		l := c.leader()
		if l < 0 {
			return false
		}
		code, _, resp = do(c.t, "POST", c.url(l, path), "")
		return code != http.StatusMisdirectedRequest
	})
	return code, resp
}

// A transfer the leader refuses answers at once with a conflict, and a
// follower sends the caller to the leader.
func (c *cluster) checkTransferRefusals(learner int) {
	c.t.Helper()
	for _, tc := range []struct{ id, want string }{{"4", "is a learner"}, {"9", "not a member"}} {
		if code, body := c.leaderPost("/v1/aspen/transfer-leader?id=" + tc.id); code != http.StatusConflict || !strings.Contains(body, tc.want) {
			c.t.Fatalf("transfer to %s: got %d %s, want 409 %s", tc.id, code, body, tc.want)
		}
	}
	if code, _, body := do(c.t, "POST", c.url(learner, "/v1/aspen/transfer-leader?id=4"), ""); code != http.StatusMisdirectedRequest {
		c.t.Fatalf("transfer asked of a learner: got %d %s, want 421 with the leader", code, body)
	}
}

func TestGrowPromoteRemoveTransfer(t *testing.T) {
	c := startCluster(t, 3)
	do(t, "PUT", c.url(0, "/v1/kv/before"), "1")
	c.waitAdvertised() // the removal notice needs node 1's address
	j := c.addJoiner(4)
	code, body := c.memberOp(fmt.Sprintf(`{"op":"add-learner","id":4,"peer_addr":%q,"http_addr":%q}`, c.cfgs[j].PeerAddr, c.servers[j].HTTPAddr()))
	if code != 200 {
		t.Fatalf("add learner: %d %s", code, body)
	}
	eventually(t, "the learner to catch up", func() bool {
		code, _, body := do(t, "GET", c.url(j, "/v1/kv/before?raw&stale"), "")
		return code == 200 && body == "1"
	})
	c.checkTransferRefusals(j)
	if code, body := c.memberOp(`{"op":"promote","id":4}`); code != 200 {
		t.Fatalf("promote: %d %s", code, body)
	}
	if code, body := c.memberOp(`{"op":"add-learner","id":4,"peer_addr":"x:1"}`); code != 409 || !strings.Contains(body, "already") {
		t.Fatalf("re-adding a member: got %d %s, want 409 already a member", code, body)
	}
	if code, body := c.memberOp(`{"op":"remove","id":1}`); code != 200 {
		t.Fatalf("remove node 1: %d %s", code, body)
	}
	select {
	case <-c.servers[0].Done():
	case <-time.After(10 * time.Second):
		t.Fatal("removed node 1 did not stop")
	}
	c.servers[0] = nil
	if code, body := c.memberOp(`{"op":"add-learner","id":1,"peer_addr":"x:1"}`); code != 409 || !strings.Contains(body, "never reused") {
		t.Fatalf("re-adding removed id 1: got %d %s, want 409 never reused", code, body)
	}
	eventually(t, "a leader after removing node 1", func() bool { return c.leader() >= 0 })
	l := c.leader()
	code, _, body = do(t, "POST", c.url(l, "/v1/aspen/transfer-leader?id=4"), "")
	if code != 200 {
		t.Fatalf("transfer to 4: %d %s", code, body)
	}
	eventually(t, "node 4 to lead", func() bool { return c.servers[j].Status().Role == raft.StateLeader })
	_, _, body = do(t, "GET", c.url(j, "/v1/aspen/status"), "")
	var st StatusReport
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if ids := memberIDs(st.Members); ids != "2,3,4" || len(st.Progress) != 3 {
		t.Fatalf("status: members %s, progress %+v; want members 2,3,4 with progress for each", ids, st.Progress)
	}
	if code, _, body := do(t, "GET", c.url(j, "/v1/kv/before?raw"), ""); code != 200 || body != "1" {
		t.Fatalf("after all changes: got %d %q, want the write from before", code, body)
	}
}

func memberIDs(ms []node.Member) string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, fmt.Sprint(m.ID))
	}
	return strings.Join(ids, ",")
}

func TestBackupRestoresIntoNewCluster(t *testing.T) {
	c := startCluster(t, 3)
	for i := 0; i < 20; i++ {
		do(t, "PUT", c.url(i%3, fmt.Sprintf("/v1/kv/k%02d", i)), fmt.Sprint(i))
	}
	resp, err := http.Get(c.url(1, "/v1/aspen/snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	backup, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Aspen-Revision") != "20" {
		t.Fatalf("snapshot: %d, revision %q, want 200 at revision 20", resp.StatusCode, resp.Header.Get("X-Aspen-Revision"))
	}
	addr := freeAddr(t)
	s, err := Start(Config{ID: 1, DataDir: t.TempDir(), PeerAddr: addr, HTTPAddr: "127.0.0.1:0", Cluster: map[uint64]string{1: addr},
		Tick: 20 * time.Millisecond, Restore: backup, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	code, _, body := do(t, "GET", "http://"+s.HTTPAddr()+"/v1/kv/?keys", "")
	if code != 200 || strings.Count(body, "k") != 20 {
		t.Fatalf("restored keys: %d %s, want all 20", code, body)
	}
	damaged := append([]byte(nil), backup...)
	damaged[len(damaged)/3] ^= 1
	_, err = Start(Config{ID: 1, DataDir: t.TempDir(), PeerAddr: freeAddr(t), HTTPAddr: "127.0.0.1:0", Cluster: map[uint64]string{1: addr}, Restore: damaged})
	if err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("restore from a damaged backup: got %v, want a clear refusal", err)
	}
}

// A node told of its removal records it, so a restart on its disk refuses to
// serve instead of campaigning forever with a stale configuration.
func TestRemovedNodeStaysRemoved(t *testing.T) {
	c := startCluster(t, 3)
	do(t, "PUT", c.url(0, "/v1/kv/a"), "1")
	c.waitAdvertised()
	victim := (c.leader() + 1) % 3 // a follower: it may never apply its own removal
	if code, body := c.memberOp(fmt.Sprintf(`{"op":"remove","id":%d}`, victim+1)); code != 200 {
		t.Fatalf("remove node %d: %d %s", victim+1, code, body)
	}
	select {
	case <-c.servers[victim].Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("removed node %d did not stop", victim+1)
	}
	if err := c.servers[victim].Err(); !errors.Is(err, ErrRemoved) {
		t.Fatalf("removed node stopped with %v, want ErrRemoved", err)
	}
	if err := c.servers[victim].Close(); err != nil {
		t.Fatalf("close of the removed node: got %v, want nil (a removal is a clean end)", err)
	}
	c.servers[victim] = nil
	c.cfgs[victim].HTTPAddr = "127.0.0.1:0"
	if _, err := Start(c.cfgs[victim]); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("restart of removed node: got %v, want a refusal", err)
	}
}

// A leader asked to remove itself hands leadership over first and sends the
// caller to the new leader, which carries out the removal.
func TestLeaderRemovingItselfHandsOver(t *testing.T) {
	c := startCluster(t, 3)
	do(t, "PUT", c.url(0, "/v1/kv/a"), "1")
	c.waitAdvertised()
	var l int
	eventually(t, "a leader", func() bool { l = c.leader(); return l >= 0 })
	code, _, body := do(t, "POST", c.url(l, "/v1/aspen/members"), fmt.Sprintf(`{"op":"remove","id":%d}`, l+1))
	if code != http.StatusMisdirectedRequest || !strings.Contains(body, "leader_http_addr") {
		t.Fatalf("leader removing itself: got %d %s, want 421 naming the new leader", code, body)
	}
	var nl NotLeaderError
	if err := json.Unmarshal([]byte(body), &nl); err != nil || nl.LeaderID == 0 || nl.LeaderID == uint64(l+1) {
		t.Fatalf("redirect %s: want another node as leader (%v)", body, err)
	}
	code, _, body = do(t, "POST", "http://"+nl.LeaderHTTPAddr+"/v1/aspen/members", fmt.Sprintf(`{"op":"remove","id":%d}`, l+1))
	if code != 200 {
		t.Fatalf("removal at the new leader: %d %s", code, body)
	}
	select {
	case <-c.servers[l].Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("removed node %d did not stop", l+1)
	}
	c.servers[l] = nil
}
