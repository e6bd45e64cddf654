package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/topics"
)

// groupDo calls a group endpoint on node i and decodes a 200 answer into v.
func (c *cluster) groupDo(i int, op, body string, v any) (int, string) {
	c.t.Helper()
	return c.aspenDo(i, "group/"+op, body, v)
}

// groupOK calls a group endpoint that must succeed.
func (c *cluster) groupOK(i int, op, body string, v any) {
	c.t.Helper()
	if code, answer := c.groupDo(i, op, body, v); code != http.StatusOK {
		c.t.Fatalf("group %s %s via node %d: got %d %s, want 200", op, body, i+1, code, answer)
	}
}

func (c *cluster) describeGroup(i int, name string) GroupInfo {
	c.t.Helper()
	var g GroupInfo
	c.groupOK(i, "describe", fmt.Sprintf(`{"Name": %q}`, name), &g)
	return g
}

// topicWith creates a topic of parts partitions through the Go API (the
// topic HTTP API is another branch's) and publishes msgs, keyed "k<i>",
// round-robin over the partitions by their index.
func (c *cluster) topicWith(name string, parts, msgs int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.servers[0].Call(ctx, topics.Create(topics.Def{Name: name, Partitions: parts, RetainMessages: 1000, RetainBytes: 1 << 20})); err != nil {
		c.t.Fatalf("create topic %s: %v", name, err)
	}
	if msgs == 0 {
		return
	}
	in := make([]topics.In, msgs)
	for i := range in {
		in[i] = topics.In{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i), Partition: i % parts}
	}
	if _, err := c.servers[0].Call(ctx, topics.Publish(name, in)); err != nil {
		c.t.Fatalf("publish to %s: %v", name, err)
	}
}

func (c *cluster) heartbeat(i int, group, member string, released []int) GroupAssignment {
	c.t.Helper()
	var a GroupAssignment
	body, _ := json.Marshal(GroupRequest{Name: group, Member: member, Released: released})
	c.groupOK(i, "heartbeat", string(body), &a)
	return a
}

// owners maps each partition to its owner, as describe shows it.
func owners(g GroupInfo) []string {
	out := make([]string, len(g.Offsets))
	for i, o := range g.Offsets {
		out[i] = o.Owner
	}
	return out
}

func TestGroupPartitionedLifecycle(t *testing.T) {
	c := startCluster(t, 3)
	c.topicWith("orders", 6, 60)
	var created GroupInfo
	c.groupOK(0, "create", `{"Name": "g", "Topic": "orders", "Mode": "partitioned", "SessionMs": 20000}`, &created)
	if created.Mode != "partitioned" || created.Partitions != 6 || created.SessionMs != 20000 || created.Start != "earliest" {
		t.Fatalf("create: got %+v, want a partitioned group of 6 partitions", created)
	}
	var a GroupAssignment
	c.groupOK(1, "join", `{"Name": "g", "Member": "a"}`, &a)
	if len(a.Assigned) != 6 {
		t.Fatalf("first join: got %+v, want all 6 partitions", a)
	}
	var b GroupAssignment
	c.groupOK(2, "join", `{"Name": "g", "Member": "b"}`, &b)
	if len(b.Assigned) != 0 {
		t.Fatalf("b joined: got %+v, want nothing before a releases", b)
	}
	a = c.heartbeat(0, "g", "a", nil)
	if len(a.Revoking) != 3 || len(a.Assigned) != 3 {
		t.Fatalf("a's heartbeat after b joined: got %+v, want 3 kept and 3 revoking", a)
	}
	// a commits a revoking partition before it lets it go.
	gone := a.Revoking[0]
	c.groupOK(1, "commit", fmt.Sprintf(`{"Name": "g", "Member": "a", "Generation": %d, "Partition": %d, "Offset": 4}`, a.Generation, gone), nil)
	if code, body := c.groupDo(1, "read", fmt.Sprintf(`{"Name": "g", "Member": "b", "Partition": %d}`, gone), nil); code != http.StatusConflict || !strings.Contains(body, "partition "+fmt.Sprint(gone)+" is not") {
		t.Fatalf("b reads a partition still a's: got %d %s, want 409", code, body)
	}
	staleA := a.Generation
	a = c.heartbeat(2, "g", "a", a.Revoking)
	b = c.heartbeat(0, "g", "b", nil)
	if len(a.Assigned) != 3 || len(a.Revoking) != 0 || len(b.Assigned) != 3 || slices.ContainsFunc(b.Assigned, func(p int) bool { return slices.Contains(a.Assigned, p) }) {
		t.Fatalf("after the release: a %+v, b %+v; want 3 each, disjoint", a, b)
	}
	var read GroupMessages
	c.groupOK(1, "read", fmt.Sprintf(`{"Name": "g", "Member": "b", "Partition": %d, "Max": 3}`, gone), &read)
	if read.Committed != 4 || len(read.Messages) != 3 || read.Messages[0].Offset != 4 || read.Next != 7 ||
		read.Messages[0].Value != fmt.Sprintf("v%d", 4*6+gone) || read.Messages[0].Key == nil {
		t.Fatalf("b reads %d from the committed offset: got %+v, want offsets 4 to 6 of it, next 7", gone, read)
	}
	for _, tc := range []struct {
		gen    uint64
		member string
		p      int
		code   int
		detail string
	}{
		{staleA, "a", a.Assigned[0], 409, "stale generation"},
		{b.Generation, "b", a.Assigned[0], 409, "is not"},
		{b.Generation, "b", 6, 400, "partition 6 of a group of 6"},
	} {
		body := fmt.Sprintf(`{"Name": "g", "Member": %q, "Generation": %d, "Partition": %d, "Offset": 5}`, tc.member, tc.gen, tc.p)
		if code, got := c.groupDo(0, "commit", body, nil); code != tc.code || !strings.Contains(got, tc.detail) {
			t.Errorf("commit %s: got %d %s, want %d %q", body, code, got, tc.code, tc.detail)
		}
	}
	c.groupOK(2, "commit", fmt.Sprintf(`{"Name": "g", "Member": "b", "Generation": %d, "Partition": %d, "Offset": 7}`, b.Generation, gone), nil)

	// A third member: one partition from each, released, then assigned.
	var cm GroupAssignment
	c.groupOK(0, "join", `{"Name": "g", "Member": "c"}`, &cm)
	a, b = c.heartbeat(1, "g", "a", nil), c.heartbeat(1, "g", "b", nil)
	if len(a.Revoking) != 1 || len(b.Revoking) != 1 || len(cm.Assigned) != 0 {
		t.Fatalf("c joined: a %+v, b %+v, c %+v; want one revoking from each, c nothing yet", a, b, cm)
	}
	before := owners(c.describeGroup(2, "g"))
	c.heartbeat(2, "g", "a", a.Revoking)
	c.heartbeat(2, "g", "b", b.Revoking)
	cm = c.heartbeat(0, "g", "c", nil)
	g := c.describeGroup(1, "g")
	after := owners(g)
	moved := 0
	for p := range after {
		if after[p] != before[p] {
			moved++
		}
	}
	want := append(append([]int(nil), a.Revoking...), b.Revoking...)
	slices.Sort(want)
	if !slices.Equal(cm.Assigned, want) || moved != 2 {
		t.Fatalf("after the releases: c %+v, owners %v to %v; want c to hold %v and only those to move", cm, before, after, want)
	}
	if g.Offsets[gone].Offset != 7 || g.Offsets[gone].Lag != 3 || len(g.Members) != 3 {
		t.Fatalf("describe: got %+v, want partition %d committed at 7 with lag 3, 3 members", g, gone)
	}
	c.groupOK(1, "leave", `{"Name": "g", "Member": "c"}`, nil)
	if got := owners(c.describeGroup(0, "g")); slices.Contains(got, "c") || slices.Contains(got, "") {
		t.Fatalf("after c left: owners %v, want every partition back with a or b", got)
	}
}

// waitPast waits until replicated time (the leader's clock, this host's)
// has passed ms, a lease's deadline.
func waitPast(ms int64) { time.Sleep(time.Until(time.UnixMilli(ms)) + 50*time.Millisecond) }

func TestGroupCompetingLifecycle(t *testing.T) {
	c := startCluster(t, 3)
	c.topicWith("work", 2, 4)
	c.groupOK(0, "create", `{"Name": "q", "Topic": "work", "Mode": "competing", "AckWaitMs": 1000, "MaxDeliveries": 2}`, nil)
	var f GroupDeliveries
	c.groupOK(1, "fetch", `{"Name": "q", "Member": "w1", "Max": 3}`, &f)
	if len(f.Messages) != 3 || f.Messages[0].Value == "" || f.Messages[0].Handle == "" || f.Messages[0].Delivery != 1 {
		t.Fatalf("fetch 3: got %+v, want 3 messages with values and handles", f)
	}
	first, second, third := f.Messages[0], f.Messages[1], f.Messages[2]
	settle := func(i int, op, member string, d GroupDelivery, extra string) (int, string) {
		t.Helper()
		return c.groupDo(i, op, fmt.Sprintf(`{"Name": "q", "Member": %q, "Handle": %q%s}`, member, d.Handle, extra), nil)
	}
	if code, body := settle(2, "ack", "w2", first, ""); code != http.StatusConflict || !strings.Contains(body, "fenced: lease") {
		t.Fatalf("ack of another member's lease: got %d %s, want 409", code, body)
	}
	if code, body := settle(2, "ack", "w1", first, ""); code != 200 {
		t.Fatalf("ack: got %d %s, want 200", code, body)
	}
	if code, body := settle(0, "ack", "w1", first, ""); code != http.StatusConflict || !strings.Contains(body, "no lease") {
		t.Fatalf("ack again: got %d %s, want 409 no lease", code, body)
	}
	forged := first
	forged.Handle = forgeHandle(t, first.Handle, 7)
	if code, body := settle(0, "ack", "w1", forged, ""); code != http.StatusConflict {
		t.Fatalf("ack under a forged delivery: got %d %s, want 409", code, body)
	}
	// A nak with a delay: not out again before the delay.
	if code, body := settle(1, "nak", "w1", second, `, "DelayMs": 60000`); code != 200 {
		t.Fatalf("nak: got %d %s", code, body)
	}
	var g2 GroupDeliveries
	c.groupOK(2, "fetch", `{"Name": "q", "Member": "w2", "Max": 10}`, &g2)
	if len(g2.Messages) != 1 || g2.Messages[0].Delivery != 1 || g2.Messages[0].Offset == second.Offset && g2.Messages[0].Partition == second.Partition {
		t.Fatalf("fetch after a nak with a minute's delay: got %+v, want only the one message never sent", g2)
	}
	fourth := g2.Messages[0]
	var renewed GroupDeliveries
	c.groupOK(0, "progress", fmt.Sprintf(`{"Name": "q", "Member": "w2", "Handle": %q}`, fourth.Handle), &renewed)
	if len(renewed.Messages) != 1 || renewed.Messages[0].DeadlineMs < fourth.DeadlineMs {
		t.Fatalf("progress: got %+v, want the lease renewed past %d", renewed, fourth.DeadlineMs)
	}
	c.groupOK(0, "term", fmt.Sprintf(`{"Name": "q", "Member": "w2", "Handle": %q}`, fourth.Handle), nil)

	// third is never acked: it expires, goes out again, expires again and
	// is dead after its 2 deliveries; an ack after the ack wait is refused.
	waitPast(third.DeadlineMs)
	if code, body := settle(1, "ack", "w1", third, ""); code != http.StatusConflict {
		t.Fatalf("ack after the ack wait: got %d %s, want 409", code, body)
	}
	var again GroupDeliveries
	c.groupOK(1, "fetch", `{"Name": "q", "Member": "w3", "Max": 10}`, &again)
	if len(again.Messages) != 1 || again.Messages[0].Offset != third.Offset || again.Messages[0].Delivery != 2 || again.Messages[0].Value != third.Value {
		t.Fatalf("fetch after the lease ran out: got %+v, want %d/%d as delivery 2", again, third.Partition, third.Offset)
	}
	waitPast(again.Messages[0].DeadlineMs)
	var dead GroupDeadLetters
	eventually(t, "the twice-delivered message on the dead-letter list", func() bool {
		c.groupOK(2, "dead/list", `{"Name": "q"}`, &dead)
		return len(dead.Letters) == 2
	})
	reasons := map[string]GroupDeadLetter{}
	for _, d := range dead.Letters {
		reasons[d.Reason] = d
	}
	if d := reasons["deliveries"]; d.Offset != third.Offset || d.Partition != third.Partition || d.Deliveries != 2 || reasons["terminated"].Offset != fourth.Offset {
		t.Fatalf("dead letters: got %+v, want %d/%d after 2 deliveries and the terminated %d/%d", dead, third.Partition, third.Offset, fourth.Partition, fourth.Offset)
	}
	var replayed GroupDeadLetters
	c.groupOK(0, "dead/replay", fmt.Sprintf(`{"Name": "q", "Seqs": [%d]}`, reasons["deliveries"].Seq), &replayed)
	c.groupOK(0, "dead/drop", fmt.Sprintf(`{"Name": "q", "Seqs": [%d]}`, reasons["terminated"].Seq), nil)
	var back GroupDeliveries
	c.groupOK(1, "fetch", `{"Name": "q", "Member": "w1", "Max": 10}`, &back)
	if len(replayed.Letters) != 1 || len(back.Messages) != 1 || back.Messages[0].Offset != third.Offset || back.Messages[0].Delivery != 1 {
		t.Fatalf("fetch after the replay: got %+v, want %d/%d again as a first delivery", back, third.Partition, third.Offset)
	}
	if g := c.describeGroup(2, "q"); g.DeadLetters != 0 || g.Stats.DeadLettered != 2 || g.Stats.Redeliveries != 2 || g.Pending != 2 {
		t.Fatalf("describe: got %+v, want no dead letters left, 2 ever, 2 redeliveries (after the expiry, after the replay), 2 pending (the nakked and the replayed)", g)
	}
}

// forgeHandle is h's lease under delivery d: a handle nobody was given.
func forgeHandle(t *testing.T, h string, d uint32) string {
	t.Helper()
	got, err := parseGroupHandle(h)
	if err != nil {
		t.Fatalf("handle %q: %v", h, err)
	}
	got.Delivery = d
	return formatGroupHandle(got)
}

// Bad input gets a 4xx and changes nothing: no group, member, offset,
// lease or dead letter moved, the generation as it was.
func TestGroupRefusalsChangeNothing(t *testing.T) {
	c := startCluster(t, 3)
	c.topicWith("t", 2, 6)
	c.groupOK(0, "create", `{"Name": "p", "Topic": "t", "Mode": "partitioned"}`, nil)
	c.groupOK(0, "create", `{"Name": "q", "Topic": "t", "Mode": "competing", "AckWaitMs": 60000, "MaxDeliveries": 1}`, nil)
	var a GroupAssignment
	c.groupOK(0, "join", `{"Name": "p", "Member": "a"}`, &a)
	var f GroupDeliveries
	c.groupOK(0, "fetch", `{"Name": "q", "Member": "w", "Max": 2}`, &f)
	c.groupOK(0, "term", fmt.Sprintf(`{"Name": "q", "Member": "w", "Handle": %q}`, f.Messages[1].Handle), nil)
	held := f.Messages[0]
	beforeP, beforeQ := c.describeGroup(1, "p"), c.describeGroup(1, "q")
	big := strings.Repeat("x", groupBodyBytesMax)
	commit := func(gen uint64, p int, off int) string {
		return fmt.Sprintf(`{"Name": "p", "Member": "a", "Generation": %d, "Partition": %d, "Offset": %d}`, gen, p, off)
	}
	for _, tc := range []struct {
		method, op, body string
		code             int
		inBody           string
	}{
		{"POST", "create", `{"Name": "x", "Topic": "t", "Mode": "partitioned"`, 400, "malformed body"},
		{"POST", "create", `{"Name": "x", "Topic": "t", "Mode": "partitioned"} {}`, 400, "more than one"},
		{"POST", "create", `{"Name": "x", "Topic": "t", "Mode": "partitioned", "Colour": 1}`, 400, "unknown field"},
		{"POST", "create", `{"Name": "x", "Topic": "t"}`, 400, "Mode must be partitioned or competing"},
		{"POST", "create", `{"Name": "x", "Topic": "t", "Mode": "fifo"}`, 400, "Mode must be"},
		{"POST", "create", `{"Name": "x", "Topic": "t", "Mode": "partitioned", "Start": "middle"}`, 400, "Start must be"},
		{"POST", "create", `{"Name": "x", "Topic": "t", "Mode": "partitioned", "AckWaitMs": 5}`, 400, "for competing groups"},
		{"POST", "create", `{"Name": "x", "Topic": "t", "Mode": "competing", "SessionMs": 5000}`, 400, "for partitioned groups"},
		{"POST", "create", `{"Name": "x", "Topic": "t", "Mode": "partitioned", "SessionMs": 10}`, 400, "session"},
		{"POST", "create", `{"Name": "x", "Topic": "t", "Mode": "partitioned", "SessionMs": -1}`, 400, "SessionMs must be"},
		{"POST", "create", `{"Name": "x", "Topic": "t", "Mode": "competing", "MaxDeliveries": 1000}`, 400, "max deliveries"},
		{"POST", "create", `{"Name": "x", "Topic": "t", "Mode": "competing", "MaxInFlight": -1}`, 400, "max in flight"},
		{"POST", "create", `{"Name": "x", "Topic": "nope", "Mode": "partitioned"}`, 404, "topic"},
		{"POST", "create", `{"Name": "", "Topic": "t", "Mode": "partitioned"}`, 400, "group name of 0 bytes"},
		{"POST", "create", `{"Name": "p", "Topic": "t", "Mode": "partitioned"}`, 409, "group exists"},
		{"POST", "create", `{"Name": "x", "Topic": "` + big + `", "Mode": "partitioned"}`, 413, "body over"},
		{"GET", "create", ``, 405, "not allowed"},
		{"POST", "delete", `{"Name": "nope"}`, 404, "not found"},
		{"POST", "join", `{"Name": "nope", "Member": "a"}`, 404, "not found"},
		{"POST", "join", `{"Name": "p"}`, 400, "member name of 0 bytes"},
		{"POST", "join", `{"Name": "q", "Member": "a"}`, 409, "is competing"},
		{"POST", "heartbeat", `{"Name": "p", "Member": "zed"}`, 409, "not a member"},
		{"POST", "heartbeat", `{"Name": "p", "Member": "a", "Released": [0]}`, 409, "not being revoked"},
		{"POST", "heartbeat", `{"Name": "p", "Member": "a", "Released": [5]}`, 400, "of a group of 2"},
		{"POST", "heartbeat", `{"Name": "p", "Member": "a", "Released": [-1]}`, 400, "Released must name"},
		{"POST", "leave", `{"Name": "p", "Member": "zed"}`, 404, "not a member"},
		{"POST", "commit", commit(a.Generation+1, 0, 1), 409, "stale generation"},
		{"POST", "commit", commit(a.Generation, 2, 1), 400, "of a group of 2"},
		{"POST", "commit", commit(a.Generation, 0, 99), 409, "past partition 0's end"},
		{"POST", "commit", `{"Name": "p", "Member": "a", "Generation": 1, "Partition": -1, "Offset": 1}`, 400, "Partition must not be negative"},
		{"POST", "commit", `{"Name": "p", "Member": "a", "Generation": 1, "Offset": 1}`, 400, "Partition is required"},
		{"POST", "commit", `{"Name": "p", "Member": "a", "Partition": 0, "Offset": 1}`, 400, "Generation is required"},
		{"POST", "commit", `{"Name": "p", "Member": "a", "Generation": 1, "Partition": 0}`, 400, "Offset is required"},
		{"POST", "reset", `{"Name": "p", "To": "earliest"}`, 409, "has 1 members"},
		{"POST", "reset", `{"Name": "p", "To": "yesterday"}`, 400, "To must be"},
		{"POST", "reset", `{"Name": "p", "To": "offset"}`, 400, "needs Offset"},
		{"POST", "reset", `{"Name": "p", "To": "latest", "TimeMs": 5}`, 400, "TimeMs is for To time"},
		{"POST", "reset", `{"Name": "q", "To": "earliest", "Partition": 7}`, 400, "of a group of 2"},
		{"POST", "reset", `{"Name": "q", "To": "earliest"}`, 409, "leased"},
		{"POST", "read", `{"Name": "p", "Member": "a"}`, 400, "Partition is required"},
		{"POST", "read", `{"Name": "p", "Member": "a", "Partition": 2}`, 400, "of a group of 2"},
		{"POST", "read", `{"Name": "p", "Partition": 0}`, 400, "Member is required"},
		{"POST", "read", `{"Name": "p", "Member": "b", "Partition": 0}`, 409, "is not"},
		{"POST", "read", `{"Name": "q", "Member": "w", "Partition": 0}`, 409, "they do not read"},
		{"POST", "read", `{"Name": "nope", "Member": "w", "Partition": 0}`, 404, "not found"},
		{"POST", "read", `{"Name": "p", "Member": "a", "Partition": 0, "Max": -1}`, 400, "Max must not"},
		{"POST", "fetch", `{"Name": "q", "Member": "w", "Max": -1}`, 400, "Max must be"},
		{"POST", "fetch", `{"Name": "q", "Member": "w", "Max": 100000}`, 400, "fetch of 100000"},
		{"POST", "fetch", `{"Name": "p", "Member": "w"}`, 409, "is partitioned"},
		{"POST", "fetch", `{"Name": "nope", "Member": "w"}`, 404, "not found"},
		{"POST", "ack", `{"Name": "q", "Member": "w", "Handle": "0-0-1"}`, 400, "not a handle"},
		{"POST", "ack", `{"Name": "q", "Member": "w", "Handle": "h1.0.0.0"}`, 400, "not a handle"},
		{"POST", "ack", `{"Name": "q", "Member": "w", "Handle": "h1.0.00.1"}`, 400, "not a handle"},
		{"POST", "ack", `{"Name": "q", "Member": "w"}`, 400, "not a handle"},
		{"POST", "ack", fmt.Sprintf(`{"Name": "q", "Member": "w", "Handle": %q}`, forgeHandle(t, held.Handle, 9)), 409, "no lease"},
		{"POST", "ack", fmt.Sprintf(`{"Name": "q", "Member": "w", "Handle": %q}`, f.Messages[1].Handle), 409, "no lease"},
		{"POST", "ack", fmt.Sprintf(`{"Name": "q", "Member": "v", "Handle": %q}`, held.Handle), 409, "is not"},
		{"POST", "ack", fmt.Sprintf(`{"Name": "q", "Member": "w", "Handle": %q, "DelayMs": 5}`, held.Handle), 400, "DelayMs is for nak"},
		{"POST", "nak", fmt.Sprintf(`{"Name": "q", "Member": "w", "Handle": %q, "DelayMs": -5}`, held.Handle), 400, "DelayMs must be"},
		{"POST", "nak", fmt.Sprintf(`{"Name": "q", "Member": "w", "Handle": %q, "DelayMs": 999999999999}`, held.Handle), 400, "nak delay"},
		{"POST", "ack", fmt.Sprintf(`{"Name": "p", "Member": "w", "Handle": %q}`, held.Handle), 409, "is partitioned"},
		{"POST", "dead/replay", `{"Name": "q"}`, 400, "Seqs must name"},
		{"POST", "dead/replay", `{"Name": "q", "Seqs": [99]}`, 404, "dead letter 99"},
		{"POST", "dead/drop", `{"Name": "q", "Seqs": [1, 99]}`, 404, "dead letter 99"},
		{"POST", "dead/list", `{"Name": "q", "Limit": -1}`, 400, "Limit must not"},
		{"GET", "dead/list", ``, 404, "not found"},
		{"POST", "describe", `{"Name": "nope"}`, 404, "not found"},
		{"POST", "list", `{"Limit": -1}`, 400, "Limit must not"},
		{"PUT", "list", ``, 405, "not allowed"},
		{"GET", "read", ``, 405, "not allowed"},
	} {
		code, _, body := do(t, tc.method, c.url(2, "/v1/aspen/group/"+tc.op), tc.body)
		if code != tc.code || !strings.Contains(body, tc.inBody) {
			t.Errorf("%s %s %.100s: got %d %.200s, want %d with %q", tc.method, tc.op, tc.body, code, body, tc.code, tc.inBody)
		}
	}
	afterP, afterQ := c.describeGroup(0, "p"), c.describeGroup(0, "q")
	// Deadlines move with heartbeats only; a refused one moved none.
	if !groupsEqual(beforeP, afterP) || !groupsEqual(beforeQ, afterQ) {
		t.Errorf("after the refusals:\n p %+v\n q %+v\nwant as before:\n p %+v\n q %+v", afterP, afterQ, beforeP, beforeQ)
	}
	var l GroupList
	c.groupOK(1, "list", `{}`, &l)
	if len(l.Groups) != 2 || l.Groups[0].Name != "p" || l.Groups[1].Name != "q" {
		t.Errorf("list after the refusals: got %+v, want p and q only", l)
	}
	if code, body := c.groupDo(1, "ack", fmt.Sprintf(`{"Name": "q", "Member": "w", "Handle": %q}`, held.Handle), nil); code != 200 {
		t.Errorf("ack of the lease held through the refusals: got %d %s, want 200", code, body)
	}
}

func groupsEqual(a, b GroupInfo) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// A group's numbers show in every node's /metrics: committed offset and
// lag per partition, members, generation, redeliveries, dead letters.
func TestGroupMetrics(t *testing.T) {
	c := startCluster(t, 3)
	c.topicWith("t", 2, 10)
	c.groupOK(0, "create", `{"Name": "p", "Topic": "t", "Mode": "partitioned"}`, nil)
	c.groupOK(0, "create", `{"Name": "q", "Topic": "t", "Mode": "competing", "AckWaitMs": 60000, "MaxDeliveries": 1}`, nil)
	var a GroupAssignment
	c.groupOK(0, "join", `{"Name": "p", "Member": "a"}`, &a)
	c.groupOK(0, "commit", fmt.Sprintf(`{"Name": "p", "Member": "a", "Generation": %d, "Partition": 1, "Offset": 3}`, a.Generation), nil)
	var f GroupDeliveries
	c.groupOK(0, "fetch", `{"Name": "q", "Member": "w", "Max": 1}`, &f)
	c.groupOK(0, "term", fmt.Sprintf(`{"Name": "q", "Member": "w", "Handle": %q}`, f.Messages[0].Handle), nil)
	want := map[string]float64{
		`aspen_group_committed_offset{group="p",partition="1"}`: 3,
		`aspen_group_lag{group="p",partition="1"}`:              2,
		`aspen_group_lag{group="p",partition="0"}`:              5,
		`aspen_group_members{group="p"}`:                        1,
		`aspen_group_generation{group="p"}`:                     1,
		`aspen_group_rebalances_total{group="p"}`:               1,
		`aspen_group_dead_letters{group="q"}`:                   1,
		`aspen_group_dead_lettered_total{group="q"}`:            1,
		`aspen_group_lag{group="q",partition="0"}`:              4,
		`aspen_group_redeliveries_total{group="q"}`:             0,
	}
	for i := range c.servers {
		eventually(t, fmt.Sprintf("node %d's group metrics", i+1), func() bool {
			for sample, v := range want {
				if got, ok := c.metric(i, sample); !ok || got != v {
					return false
				}
			}
			return true
		})
	}
}

// A member's read with WaitMs waits for its partition's next message
// instead of answering empty; a publish wakes it on another node.
func TestGroupReadLongPoll(t *testing.T) {
	c := startCluster(t, 3)
	c.topicWith("feed", 1, 0)
	c.groupOK(0, "create", `{"Name": "g", "Topic": "feed", "Mode": "partitioned"}`, nil)
	c.groupOK(1, "join", `{"Name": "g", "Member": "m1"}`, nil)
	var r GroupMessages
	c.wokenByPublish(2, "read", `{"Name": "g", "Member": "m1", "Partition": 0, "WaitMs": 10000}`, 0, "feed", 0, &r)
	if len(r.Messages) != 1 || r.Messages[0].Value != "late" {
		t.Fatalf("woken read: %+v, want the message published while it waited", r)
	}
	if code, body := c.groupDo(0, "read", `{"Name": "g", "Member": "m1", "Partition": 0, "WaitMs": 60001}`, nil); code != 400 {
		t.Fatalf("WaitMs over the bound: %d %s, want 400", code, body)
	}
}

// wokenByPublish sends body to group endpoint op of node i, which must not
// have answered 300 ms later; then it publishes "late" to partition p of
// topic through node pub and decodes the answer that woke into v.
func (c *cluster) wokenByPublish(i int, op, body string, pub int, topic string, p int, v any) {
	c.t.Helper()
	done := make(chan string, 1)
	go func() {
		code, answer := c.groupDo(i, op, body, v)
		if code != 200 {
			answer = fmt.Sprintf("%s: %d %s", op, code, answer)
		}
		done <- answer
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case answer := <-done:
		c.t.Fatalf("%s answered before anything was published: %s", op, answer)
	default:
	}
	if _, err := c.servers[pub].Call(context.Background(), topics.Publish(topic, []topics.In{{Value: []byte("late"), Partition: p}})); err != nil {
		c.t.Fatal(err)
	}
	select {
	case answer := <-done:
		if strings.HasPrefix(answer, op+":") {
			c.t.Fatal(answer)
		}
	case <-time.After(8 * time.Second):
		c.t.Fatalf("the waiting %s was not woken by the publish", op)
	}
}
