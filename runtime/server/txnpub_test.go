package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/topics"
)

// Aspen's Publish op of /v1/txn: the message is published with the
// transaction's writes, or not at all.
func TestTxnPublish(t *testing.T) {
	c := startCluster(t, 3)
	if _, err := c.servers[0].Call(context.Background(), topics.Create(topics.Def{Name: "orders", Partitions: 2,
		RetainMessages: 100, RetainBytes: 1 << 20})); err != nil {
		t.Fatal(err)
	}
	count := func() uint64 {
		v, err := c.servers[1].Query(context.Background(), topics.Get("orders"))
		if err != nil {
			t.Fatal(err)
		}
		return v.(topics.Answer).Topics[0].Published
	}
	body := func(index int, topic string) string {
		return `[{"KV": {"Verb": "cas", "Key": "order/1", "Value": "cGxhY2Vk", "Index": ` + itoa(index) + `}},
		 {"Publish": {"Topic": "` + topic + `", "Key": "order/1", "Value": "eyJwbGFjZWQiOjF9"}}]`
	}
	code, _, answer := do(t, "PUT", c.url(1, "/v1/txn"), body(0, "orders"))
	var resp struct {
		Results []struct {
			KV      *struct{ Key string }
			Publish *struct{ Topic string }
		}
	}
	if code != 200 || json.Unmarshal([]byte(answer), &resp) != nil || len(resp.Results) != 2 || resp.Results[0].KV == nil ||
		resp.Results[1].Publish == nil || resp.Results[1].Publish.Topic != "orders" {
		t.Fatalf("txn with a publish: %d %s", code, answer)
	}
	if n := count(); n != 1 {
		t.Fatalf("published %d messages, want 1", n)
	}
	if code, _, answer := do(t, "PUT", c.url(2, "/v1/txn"), body(0, "orders")); code != 409 {
		t.Fatalf("the same cas again: %d %s, want 409", code, answer)
	}
	if code, _, answer := do(t, "PUT", c.url(0, "/v1/txn"), body(0, "nope")); code != 404 || !strings.Contains(answer, `topic \"nope\" not found`) {
		t.Fatalf("publish to an unknown topic: %d %s, want 404", code, answer)
	}
	if code, _, answer := do(t, "PUT", c.url(0, "/v1/txn"), `[{"Publish": {"Topic": "orders"}, "KV": {"Verb": "set", "Key": "x"}}]`); code != 400 {
		t.Fatalf("an op with both KV and Publish: %d %s, want 400", code, answer)
	}
	if n := count(); n != 1 {
		t.Fatalf("after the refused txns: %d messages, want still 1", n)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// A publish under the caller's own session (X-Aspen-Client, X-Aspen-Seq)
// applies once: a retry, through another node, answers the first
// placements and publishes nothing again; a leftover lower seq is refused.
func TestPublishUnderCallerSession(t *testing.T) {
	c := startCluster(t, 3)
	if _, err := c.servers[0].Call(context.Background(), topics.Create(topics.Def{Name: "events", Partitions: 3,
		RetainMessages: 100, RetainBytes: 1 << 20})); err != nil {
		t.Fatal(err)
	}
	publish := func(i int, client, seq, value string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", c.url(i, "/v1/aspen/topic/publish"), strings.NewReader(`{"Topic": "events", "Messages": [{"Key": "k", "Value": "`+value+`"}]}`))
		if client != "" {
			req.Header.Set("X-Aspen-Client", client)
		}
		if seq != "" {
			req.Header.Set("X-Aspen-Seq", seq)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, first := publish(0, "producer-1", "1", "a")
	if code != 200 {
		t.Fatalf("publish: %d %s", code, first)
	}
	if code, again := publish(2, "producer-1", "1", "a"); code != 200 || again != first {
		t.Fatalf("the retry through another node: %d %s, want the first answer %s", code, again, first)
	}
	if code, body := publish(1, "producer-1", "2", "b"); code != 200 {
		t.Fatalf("the next publish: %d %s", code, body)
	}
	if code, body := publish(1, "producer-1", "1", "a"); code != 409 {
		t.Fatalf("a leftover retry of seq 1 after seq 2: %d %s, want 409", code, body)
	}
	for _, bad := range [][2]string{{"producer-1", ""}, {"", "3"}, {"producer-1", "0"}, {"producer-1", "x"}} {
		if code, body := publish(0, bad[0], bad[1], "c"); code != 400 {
			t.Errorf("headers %q: %d %s, want 400", bad, code, body)
		}
	}
	v, err := c.servers[0].Query(context.Background(), topics.Get("events"))
	if err != nil {
		t.Fatal(err)
	}
	if n := v.(topics.Answer).Topics[0].Published; n != 2 {
		t.Fatalf("published %d messages, want 2 (the retry and the leftover applied nothing)", n)
	}
}
