package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/topics"
)

// topicDo calls a topic endpoint on node i and decodes a 200 answer into v.
func (c *cluster) topicDo(i int, op, body string, v any) (int, string) {
	c.t.Helper()
	return c.aspenDo(i, "topic/"+op, body, v)
}

// topicOK calls a topic endpoint that must succeed.
func (c *cluster) topicOK(i int, op, body string, v any) {
	c.t.Helper()
	if code, answer := c.topicDo(i, op, body, v); code != http.StatusOK {
		c.t.Fatalf("topic %s %.200s via node %d: got %d %s, want 200", op, body, i+1, code, answer)
	}
}

func (c *cluster) topicRead(i int, body string) TopicMessages {
	c.t.Helper()
	var m TopicMessages
	c.topicOK(i, "read", body, &m)
	return m
}

// A topic made, published to through one node and read through others:
// keys keep to their partition, keyless messages go round-robin, binary
// values and headers come back as they went, and From reads from the
// beginning, an offset, the end and a time.
func TestTopicPublishAndRead(t *testing.T) {
	c := startCluster(t, 3)
	var info TopicInfo
	c.topicOK(0, "create", `{"Name": "orders", "Partitions": 3}`, &info)
	if info.Name != "orders" || info.Partitions != 3 || info.RetainMessages != topics.RetainMessagesDefault ||
		info.RetainBytes != topics.RetainBytesDefault || info.RetainAgeMs != 0 || len(info.Bounds) != 3 || info.CreatedMs == 0 {
		t.Fatalf("create: got %+v, want 3 empty partitions with the default retention", info)
	}
	bin := []byte{0xff, 0x00, 0xfe}
	var pub TopicPublished
	c.topicOK(1, "publish", fmt.Sprintf(`{"Topic": "orders", "Messages": [
		{"Key": "k1", "Value": "a"}, {"Key": "k1", "Value": "b"}, {"Value": "c"}, {"Value": "d"},
		{"KeyBase64": %q, "ValueBase64": %q, "Headers": [{"Key": "h", "Value": "1"}, {"Key": "h", "ValueBase64": %q}]},
		{"Value": "e", "Partition": 2}]}`,
		base64.StdEncoding.EncodeToString(bin), base64.StdEncoding.EncodeToString(bin), base64.StdEncoding.EncodeToString(bin)), &pub)
	k1 := topics.KeyPartition([]byte("k1"), 3)
	if pub.Index == 0 || len(pub.Messages) != 6 || pub.Messages[0] != (TopicPlaced{k1, 0}) || pub.Messages[1] != (TopicPlaced{k1, 1}) ||
		pub.Messages[2].Partition != 0 || pub.Messages[3].Partition != 1 || pub.Messages[5].Partition != 2 ||
		pub.Messages[4].Partition != topics.KeyPartition(bin, 3) {
		t.Fatalf("publish: got %+v, want k1's two in partition %d at 0 and 1, keyless round-robin from 0, the last in 2", pub, k1)
	}
	got := c.topicRead(2, fmt.Sprintf(`{"Topic": "orders", "Partition": %d}`, k1))
	if len(got.Messages) < 2 || *got.Messages[0].Key != "k1" || got.Messages[0].Value != "a" || got.Messages[1].Value != "b" ||
		got.Messages[0].Index != pub.Index || got.Messages[0].TimeMs == 0 || got.Next != uint64(len(got.Messages)) {
		t.Fatalf("read partition %d from the beginning: got %+v, want a then b under k1 at index %d", k1, got, pub.Index)
	}
	bp := pub.Messages[4]
	got = c.topicRead(0, fmt.Sprintf(`{"Topic": "orders", "Partition": %d, "From": "%d"}`, bp.Partition, bp.Offset))
	m := got.Messages[0]
	want := base64.StdEncoding.EncodeToString(bin)
	if m.Key != nil || m.KeyBase64 != want || m.Value != "" || m.ValueBase64 != want || len(m.Headers) != 2 ||
		m.Headers[0] != (TopicHeader{Key: "h", Value: "1"}) || m.Headers[1] != (TopicHeader{Key: "h", ValueBase64: want}) {
		t.Fatalf("read the binary message: got %+v, want key and value in base64, headers in order", m)
	}
	end2 := pub.Messages[5].Offset + 1 // the last message went to partition 2
	if got := c.topicRead(1, `{"Topic": "orders", "Partition": 2, "From": "end"}`); len(got.Messages) != 0 || got.Next != end2 {
		t.Fatalf("read partition 2 from the end: got %+v, want nothing, next %d", got, end2)
	}
	if got := c.topicRead(1, `{"Topic": "orders", "Partition": 2, "From": "2000-01-01T00:00:00Z"}`); uint64(len(got.Messages)) != end2 {
		t.Fatalf("read partition 2 from 2000: got %+v, want its %d messages", got, end2)
	}
	future := time.Now().Add(time.Hour)
	for _, from := range []string{future.Format(time.RFC3339), fmt.Sprintf("@%d", future.UnixMilli())} {
		if got := c.topicRead(1, fmt.Sprintf(`{"Topic": "orders", "Partition": 2, "From": %q}`, from)); len(got.Messages) != 0 || got.Next != end2 {
			t.Fatalf("read partition 2 from %s: got %+v, want nothing, next %d (the end)", from, got, end2)
		}
	}
	if got := c.topicRead(1, fmt.Sprintf(`{"Topic": "orders", "Partition": %d, "Max": 1}`, k1)); len(got.Messages) != 1 || got.Next != 1 {
		t.Fatalf("read with Max 1: got %+v, want one message, next 1", got)
	}
	var list TopicList
	c.topicOK(2, "list", `{}`, &list)
	if len(list.Topics) != 1 || list.Topics[0].Published != 6 || list.Next != "" {
		t.Fatalf("list: got %+v, want orders with 6 published", list)
	}
	k1End := 0
	for _, p := range pub.Messages {
		if p.Partition == k1 {
			k1End++
		}
	}
	eventually(t, "node 3's metrics to show the publish", func() bool {
		n, _ := c.metric(2, `aspen_topic_published_total{topic="orders"}`)
		end, _ := c.metric(2, fmt.Sprintf(`aspen_topic_partition_end_offset{partition="%d",topic="orders"}`, k1))
		return n == 6 && end == float64(k1End)
	})
	c.topicOK(0, "delete", `{"Name": "orders"}`, &info)
	if code, body := c.topicDo(1, "get", `{"Name": "orders"}`, nil); code != http.StatusNotFound {
		t.Fatalf("get after delete: got %d %s, want 404", code, body)
	}
}

// Refused requests answer 4xx naming why and change nothing: the topic's
// counts and bounds, and the list, stay as they were.
func TestTopicRefusalsChangeNothing(t *testing.T) {
	c := startCluster(t, 3)
	c.topicOK(0, "create", `{"Name": "t", "Partitions": 2}`, nil)
	c.topicOK(0, "publish", `{"Topic": "t", "Messages": [{"Value": "x"}]}`, nil)
	var before TopicInfo
	c.topicOK(1, "get", `{"Name": "t"}`, &before)
	big := strings.Repeat("v", 256<<10+1)
	batch := strings.TrimSuffix(strings.Repeat(`{"Value": "x"},`, 1001), ",")
	for _, tc := range []struct {
		method, op, body string
		code             int
		inBody           string
	}{
		{"POST", "create", `{"Name": "t", "Partitions": 2}`, 409, "already exists"},
		{"POST", "create", `{"Name": "u", "Partitions": 0}`, 400, "0 partitions"},
		{"POST", "create", `{"Name": "u", "Partitions": 257}`, 400, "257 partitions"},
		{"POST", "create", `{"Name": "", "Partitions": 1}`, 400, "name must be"},
		{"POST", "create", `{"Name": "a/b", "Partitions": 1}`, 400, "name must be"},
		{"POST", "create", `{"Name": "u", "Partitions": 1, "RetainAgeMs": -1}`, 400, "RetainAgeMs must be"},
		{"POST", "create", `{"Name": "u", "Partitions": 1, "RetainMessages": -1}`, 400, "retain -1 messages"},
		{"POST", "create", `{"Name": "u", "Partitions": 1, "Colour": "red"}`, 400, "unknown field"},
		{"GET", "create", ``, 405, "not allowed"},
		{"POST", "delete", `{"Name": "nope"}`, 404, "not found"},
		{"POST", "get", `{"Name": "nope"}`, 404, "not found"},
		{"POST", "list", `{"Limit": -1}`, 400, "Limit must not be negative"},
		{"POST", "publish", `{"Topic": "nope", "Messages": [{"Value": "x"}]}`, 404, "not found"},
		{"POST", "publish", `{"Topic": "t", "Messages": []}`, 400, "0 messages"},
		{"POST", "publish", `{"Topic": "t", "Messages": [` + batch + `]}`, 400, "1001 messages"},
		{"POST", "publish", `{"Topic": "t", "Messages": [{"Value": "x", "Partition": 2}]}`, 400, "partition 2 of a topic of 2"},
		{"POST", "publish", `{"Topic": "t", "Messages": [{"Value": "x", "Partition": -1}]}`, 400, "Partition must not be negative"},
		{"POST", "publish", `{"Topic": "t", "Messages": [{"Value": "x"}, {"Value": "` + big + `"}]}`, 413, "message 1: over a topic limit: message of 262145 bytes"},
		{"POST", "publish", `{"Topic": "t", "Messages": [{"Value": "x", "ValueBase64": "eA=="}]}`, 400, "not both"},
		{"POST", "publish", `{"Topic": "t", "Messages": [{"Key": "k", "KeyBase64": "eA=="}]}`, 400, "not both"},
		{"POST", "publish", `{"Topic": "t", "Messages": [{"ValueBase64": "!!"}]}`, 400, "not standard base64"},
		{"POST", "publish", `{"Topic": "t", "Messages": [{"Value": 5}]}`, 400, "malformed body"},
		{"POST", "publish", `{"Topic": "t", "Messages": [{"Value": "` + strings.Repeat("y", topicPublishBodyBytesMax) + `"}]}`, 413, "body over"},
		{"POST", "read", `{"Topic": "nope"}`, 404, "not found"},
		{"POST", "read", `{"Topic": "t", "Partition": 2}`, 400, "partition 2 of a topic of 2"},
		{"POST", "read", `{"Topic": "t", "Partition": 2, "From": "end"}`, 400, "partition 2 of a topic of 2"},
		{"POST", "read", `{"Topic": "t", "Partition": -1}`, 400, "Partition must not be negative"},
		{"POST", "read", `{"Topic": "t", "From": "yesterday"}`, 400, "From must be"},
		{"POST", "read", `{"Topic": "t", "From": "@x"}`, 400, "From must be"},
		{"POST", "read", `{"Topic": "t", "WaitMs": 60001}`, 400, "WaitMs must be"},
		{"POST", "read", `{"Topic": "t", "Max": -1}`, 400, "Max must not be negative"},
	} {
		code, _, body := do(t, tc.method, c.url(1, "/v1/aspen/topic/"+tc.op), tc.body)
		if code != tc.code || !strings.Contains(body, tc.inBody) {
			t.Errorf("%s %s %.80s: got %d %.200s, want %d with %q", tc.method, tc.op, tc.body, code, body, tc.code, tc.inBody)
		}
	}
	var after TopicInfo
	c.topicOK(2, "get", `{"Name": "t"}`, &after)
	if after.Published != before.Published || fmt.Sprint(after.Bounds) != fmt.Sprint(before.Bounds) {
		t.Errorf("topic after the refusals: got %+v, want %+v", after, before)
	}
	var list TopicList
	c.topicOK(0, "list", `{}`, &list)
	if len(list.Topics) != 1 {
		t.Errorf("topics after the refusals: got %+v, want t alone", list.Topics)
	}
}

// A store at its byte bound refuses a publish whole (413) rather than drop
// messages to make room; what it holds stays readable.
func TestTopicStoreFull(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *Config) {
		ncfg := node.DefaultConfig(cfg.ID, nil)
		ncfg.Topics.TotalBytesMax = 10
		cfg.Node = &ncfg
	})
	c.topicOK(0, "create", `{"Name": "t", "Partitions": 1}`, nil)
	c.topicOK(0, "publish", `{"Topic": "t", "Messages": [{"Value": "12345678"}]}`, nil)
	if code, body := c.topicDo(0, "publish", `{"Topic": "t", "Messages": [{"Value": "1"}, {"Value": "23"}]}`, nil); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "topic store full") {
		t.Fatalf("publish past the store's bound: got %d %s, want 413 topic store full", code, body)
	}
	if got := c.topicRead(0, `{"Topic": "t"}`); len(got.Messages) != 1 || got.Messages[0].Value != "12345678" {
		t.Fatalf("read after the refusal: got %+v, want the one message held", got)
	}
}

// A read with WaitMs and nothing at From waits until a message is applied,
// on another node than the one it was published through, and answers with
// it; with nothing published it answers empty when the wait passes.
func TestTopicReadLongPoll(t *testing.T) {
	c := startCluster(t, 3)
	c.topicOK(0, "create", `{"Name": "t", "Partitions": 2}`, nil)
	if got := c.topicRead(1, `{"Topic": "t", "Partition": 1, "WaitMs": 50}`); len(got.Messages) != 0 || got.Next != 0 {
		t.Fatalf("a wait with nothing published: got %+v, want nothing, next 0", got)
	}
	type result struct {
		m    TopicMessages
		code int
		body string
	}
	done := make(chan result, 1)
	go func() { // t.Fatal belongs to the test's goroutine: errors go back as a result
		var m TopicMessages
		resp, err := http.Post(c.url(2, "/v1/aspen/topic/read"), "application/json",
			strings.NewReader(`{"Topic": "t", "Partition": 1, "From": "end", "WaitMs": 30000}`))
		if err != nil {
			done <- result{m, 0, err.Error()}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		json.Unmarshal(body, &m)
		done <- result{m, resp.StatusCode, string(body)}
	}()
	eventually(t, "the read to wait", func() bool { return c.servers[2].topicReaders.count.Load() == 1 })
	select {
	case r := <-done:
		t.Fatalf("the read answered before anything was published: %d %s", r.code, r.body)
	default:
	}
	c.topicOK(0, "publish", `{"Topic": "t", "Messages": [{"Value": "other", "Partition": 0}]}`, nil)
	c.topicOK(0, "publish", `{"Topic": "t", "Messages": [{"Value": "hello", "Partition": 1}]}`, nil)
	r := <-done
	if r.code != http.StatusOK || len(r.m.Messages) != 1 || r.m.Messages[0].Value != "hello" || r.m.Next != 1 {
		t.Fatalf("the waiting read: got %d %s, want hello at offset 0 of partition 1", r.code, r.body)
	}
	if n := c.servers[2].topicReaders.count.Load(); n != 0 {
		t.Fatalf("waits left after the read answered: %d", n)
	}
}
