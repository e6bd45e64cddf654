package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// postAs POSTs body to node i's group endpoint op under the caller's own
// session, client and seq.
func (c *cluster) postAs(i int, op, body, client string, seq int) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest("POST", c.url(i, "/v1/aspen/group/"+op), strings.NewReader(body))
	req.Header.Set("X-Aspen-Client", client)
	req.Header.Set("X-Aspen-Seq", fmt.Sprint(seq))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s: %v", op, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func batchBody(member string, items ...GroupSettleItem) string {
	b, _ := json.Marshal(GroupSettleBatch{Name: "q", Member: member, Items: items})
	return string(b)
}

// A member settles what it fetched in one call: each item answered alone
// (a forged handle and one an earlier item settled refused, the rest
// applied); a malformed batch is refused whole and changes nothing; the
// batch retried under the caller's own session through another node
// answers what the first did and applies nothing again.
func TestGroupSettleBatch(t *testing.T) {
	c := startCluster(t, 3)
	c.topicWith("work", 1, 5)
	c.groupOK(0, "create", `{"Name": "q", "Topic": "work", "Mode": "competing", "AckWaitMs": 60000}`, nil)
	c.groupOK(0, "create", `{"Name": "p", "Topic": "work", "Mode": "partitioned"}`, nil)
	var f GroupDeliveries
	c.groupOK(0, "fetch", `{"Name": "q", "Member": "w", "Max": 5}`, &f)
	m := f.Messages
	items := []GroupSettleItem{
		{Op: "ack", Handle: m[0].Handle},
		{Op: "nak", Handle: m[1].Handle, DelayMs: 60000},
		{Op: "ack", Handle: forgeHandle(t, m[2].Handle, 5)},
		{Op: "progress", Handle: m[2].Handle},
		{Op: "ack", Handle: m[0].Handle},
		{Op: "term", Handle: m[3].Handle},
	}
	before := c.describeGroup(1, "q")
	tooMany := make([]GroupSettleItem, 257)
	for i := range tooMany {
		tooMany[i] = GroupSettleItem{Op: "ack", Handle: m[4].Handle}
	}
	for _, tc := range []struct {
		body, inBody string
		code         int
	}{
		{batchBody("w", GroupSettleItem{Op: "ack", Handle: m[4].Handle}, GroupSettleItem{Op: "keep", Handle: m[4].Handle}), "item 1: Op must be", 400},
		{batchBody("w", GroupSettleItem{Op: "ack", Handle: "h1.0.0.0"}), "item 0: Handle", 400},
		{batchBody("w", GroupSettleItem{Op: "ack", Handle: m[4].Handle, DelayMs: 5}), "DelayMs is for nak", 400},
		{batchBody("w"), "0 items", 400},
		{batchBody("w", tooMany...), "257 items", 400},
		{batchBody("", GroupSettleItem{Op: "ack", Handle: m[4].Handle}), "member name", 400},
		{strings.Replace(batchBody("w", GroupSettleItem{Op: "ack", Handle: m[4].Handle}), `"q"`, `"p"`, 1), "is partitioned", 409},
		{strings.Replace(batchBody("w", GroupSettleItem{Op: "ack", Handle: m[4].Handle}), `"q"`, `"nope"`, 1), "not found", 404},
		{`{"Name": "q", "Member": "w", "Items": [], "Colour": 1}`, "unknown field", 400},
	} {
		if code, body := c.groupDo(2, "settle/batch", tc.body, nil); code != tc.code || !strings.Contains(body, tc.inBody) {
			t.Errorf("settle/batch %.120s: got %d %.200s, want %d with %q", tc.body, code, body, tc.code, tc.inBody)
		}
	}
	if after := c.describeGroup(0, "q"); !groupsEqual(before, after) {
		t.Fatalf("after refused batches: %+v, want as before %+v", after, before)
	}

	body := batchBody("w", items...)
	code, first := c.postAs(1, "settle/batch", body, "batcher", 1)
	var got GroupBatchAnswer
	if code != 200 || json.Unmarshal([]byte(first), &got) != nil || len(got.Items) != len(items) {
		t.Fatalf("settle/batch: got %d %s, want 200 with %d items", code, first, len(items))
	}
	for i, want := range []int{200, 200, 409, 200, 409, 200} {
		if got.Items[i].Status != want {
			t.Errorf("item %d (%s): got %+v, want %d", i, items[i].Op, got.Items[i], want)
		}
	}
	if got.Items[3].DeadlineMs < m[2].DeadlineMs || !strings.Contains(got.Items[4].Error, "no lease") {
		t.Errorf("progress deadline %d (was %d), second ack %q: want the lease renewed, then no lease", got.Items[3].DeadlineMs, m[2].DeadlineMs, got.Items[4].Error)
	}
	if code, again := c.postAs(2, "settle/batch", body, "batcher", 1); code != 200 || again != first {
		t.Fatalf("the batch retried under its session through node 3: got %d %s, want the first answer %s", code, again, first)
	}
	g := c.describeGroup(2, "q")
	if g.Pending != 3 || g.DeadLetters != 1 || g.Stats.DeadLettered != 1 {
		t.Fatalf("after the batch: %d pending, %d dead; want 3 (nakked, renewed, untouched) and 1 (terminated)", g.Pending, g.DeadLetters)
	}
}

// A fetch with WaitMs that finds nothing waits, on a follower, for a
// message published 300 ms later through another node.
func TestGroupFetchLongPoll(t *testing.T) {
	c := startCluster(t, 3)
	c.topicWith("feed", 2, 0)
	c.groupOK(0, "create", `{"Name": "q", "Topic": "feed", "Mode": "competing"}`, nil)
	node := (c.leader() + 1) % 3
	var f GroupDeliveries
	c.wokenByPublish(node, "fetch", `{"Name": "q", "Member": "w", "Max": 10, "WaitMs": 10000}`, (node+1)%3, "feed", 1, &f)
	if len(f.Messages) != 1 || f.Messages[0].Value != "late" || f.Messages[0].Delivery != 1 {
		t.Fatalf("woken fetch: %+v, want the message published while it waited", f)
	}
	if code, body := c.groupDo(0, "fetch", `{"Name": "q", "Member": "w", "WaitMs": 60001}`, nil); code != 400 {
		t.Fatalf("WaitMs over the bound: %d %s, want 400", code, body)
	}
}

// A message nakked with a delay comes back to a fetch waiting on a
// follower: nothing is applied while the delay runs, so the follower's
// replicated time stands still, and the fetch's timer at the delay's end
// must propose the fetch for it.
func TestGroupFetchWaitsForNakDelay(t *testing.T) {
	c := startCluster(t, 3)
	c.topicWith("feed", 1, 1)
	c.groupOK(0, "create", `{"Name": "q", "Topic": "feed", "Mode": "competing"}`, nil)
	var f GroupDeliveries
	c.groupOK(0, "fetch", `{"Name": "q", "Member": "w", "Max": 1}`, &f)
	c.groupOK(0, "nak", fmt.Sprintf(`{"Name": "q", "Member": "w", "Handle": %q, "DelayMs": 700}`, f.Messages[0].Handle), nil)
	node := (c.leader() + 1) % 3
	var again GroupDeliveries
	if code, body := c.groupDo(node, "fetch", `{"Name": "q", "Member": "v", "WaitMs": 10000}`, &again); code != 200 {
		t.Fatalf("fetch: %d %s", code, body)
	}
	if len(again.Messages) != 1 || again.Messages[0].Delivery != 2 || again.Messages[0].Offset != f.Messages[0].Offset {
		t.Fatalf("fetch waiting out the nak's delay: got %+v, want offset %d at delivery 2", again, f.Messages[0].Offset)
	}
}

// A consumer that finds nothing costs the log nothing: a second of idle
// fetches, waiting and not, through every node, leaves every replica's
// applied index where it was. An election in the window (a loaded machine
// can miss heartbeats) appends its own empty entry, so a window whose term
// moved is run again rather than counted.
func TestGroupIdleFetchWritesNothing(t *testing.T) {
	c := startCluster(t, 3)
	c.topicWith("feed", 3, 0)
	c.groupOK(0, "create", `{"Name": "q", "Topic": "feed", "Mode": "competing"}`, nil)
	c.groupOK(0, "describe", `{"Name": "q"}`, nil) // every node has applied the create once it answers
	type mark struct{ applied, term [3]uint64 }
	now := func() (m mark) {
		for i, s := range c.servers {
			st := s.Status()
			m.applied[i], m.term[i] = st.Applied, st.Term
		}
		return m
	}
	for try := 1; ; try++ {
		eventually(t, "the replicas to apply the same index", func() bool {
			m := now()
			return m.applied[0] == m.applied[1] && m.applied[1] == m.applied[2]
		})
		before := now()
		idleFetches(t, c, time.Second)
		after := now()
		if after.term != before.term && try < 3 {
			t.Logf("terms moved %v -> %v (an election); running the window again", before.term, after.term)
			continue
		}
		if after.applied != before.applied {
			t.Fatalf("applied indexes after a second of idle fetches: %v, before %v (terms %v -> %v): want no entry",
				after.applied, before.applied, before.term, after.term)
		}
		return
	}
}

// idleFetches fetches from group q as member w through every node, with
// and without a wait, for d, and fails if any fetch leases a message.
func idleFetches(t *testing.T, c *cluster, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := range c.servers {
			var f GroupDeliveries
			c.groupOK(i, "fetch", `{"Name": "q", "Member": "w", "Max": 10}`, &f)
			c.groupOK(i, "fetch", `{"Name": "q", "Member": "w", "Max": 10, "WaitMs": 50}`, &f)
			if len(f.Messages) != 0 {
				t.Fatalf("idle fetch via node %d leased %+v", i+1, f.Messages)
			}
		}
	}
}

// A fetch under the caller's own session retried through another node
// after its answer was lost answers the same leases (the member holds
// them, so the retry reaches the log and gets the saved answer) instead of
// an empty fetch; a later fetch of that member, holding leases with
// nothing new to lease, answers empty.
func TestGroupFetchRetriedUnderOwnSession(t *testing.T) {
	c := startCluster(t, 3)
	c.topicWith("feed", 1, 2)
	c.groupOK(0, "create", `{"Name": "q", "Topic": "feed", "Mode": "competing"}`, nil)
	body := `{"Name": "q", "Member": "w", "Max": 10, "WaitMs": 1000}`
	code, first := c.postAs(0, "fetch", body, "fetcher", 1)
	var f GroupDeliveries
	if code != 200 || json.Unmarshal([]byte(first), &f) != nil || len(f.Messages) != 2 {
		t.Fatalf("fetch: got %d %s, want both messages", code, first)
	}
	if code, again := c.postAs(1, "fetch", body, "fetcher", 1); code != 200 || again != first {
		t.Fatalf("the fetch retried through node 2: got %d %s, want the first answer %s", code, again, first)
	}
	if g := c.describeGroup(2, "q"); g.Pending != 2 || g.Stats.Redeliveries != 0 {
		t.Fatalf("after the retry: %d pending, %d redeliveries; want the 2 leased once", g.Pending, g.Stats.Redeliveries)
	}
	if code, empty := c.postAs(1, "fetch", `{"Name": "q", "Member": "w", "Max": 10, "WaitMs": 400}`, "fetcher", 2); code != 200 || !strings.Contains(empty, `"Messages":[]`) {
		t.Fatalf("a fetch holding leases, nothing new: got %d %s, want an empty answer", code, empty)
	}
}
