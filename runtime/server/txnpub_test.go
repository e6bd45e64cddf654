package server

import (
	"context"
	"encoding/json"
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
