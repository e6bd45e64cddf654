package server

import (
	"context"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/topics"
)

// A key JSON cannot carry back unchanged (a NUL byte, bytes that are not
// UTF-8) is refused with 400 on every path that names a key or a prefix,
// and the refusal changes nothing. Keys that reached the store before the
// check (here through the Go API, which does not check) stay as they are.
func TestKeysMustBeText(t *testing.T) {
	c := startCluster(t, 1)
	ctx := context.Background()
	var held LeaseInfo
	c.leaseOK(0, "grant", `{"TTL": 60, "ID": 7}`, &held)
	if _, err := c.servers[0].Call(ctx, topics.Create(topics.Def{Name: "orders", Partitions: 1,
		RetainMessages: 100, RetainBytes: 1 << 20})); err != nil {
		t.Fatal(err)
	}
	legacy := []string{"legacy\x00key", "legacy\xffkey"}
	if _, err := c.servers[0].Write(ctx, kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte(legacy[0]), Value: []byte("0")},
		{Type: kv.OpPut, Key: []byte(legacy[1]), Value: []byte("1")}}}); err != nil {
		t.Fatal(err)
	}
	_, hdr, _ := do(t, "GET", c.url(0, "/v1/kv/?recurse"), "")
	revision := hdr.Get("X-Consul-Index")

	const nul, notUTF8 = "NUL byte at offset 1", "byte 0xff at offset 3 is not UTF-8"
	const inTxn = "kv: key must be UTF-8 text without NUL bytes: " + nul
	type refused struct{ method, path, body, inBody string }
	cases := []refused{
		{"PUT", "/v1/kv/a%00b", "v", nul},
		{"PUT", "/v1/kv/bad%FFkey", "v", notUTF8},
		{"PUT", "/v1/kv/a%00b?cas=0", "v", nul},
		{"PUT", "/v1/kv/a%00b?lease=7", "v", nul},
		{"PUT", "/v1/kv/bad%FFkey?lease=7", "v", notUTF8},
		{"DELETE", "/v1/kv/legacy%00key", "", "NUL byte at offset 6"},
		{"DELETE", "/v1/kv/legacy%FFkey?cas=2", "", "byte 0xff at offset 6"},
		{"DELETE", "/v1/kv/legacy%00?recurse", "", "NUL byte at offset 6"},
		{"GET", "/v1/kv/legacy%00key", "", "NUL byte at offset 6"},
		{"GET", "/v1/kv/legacy%FF?keys", "", "byte 0xff at offset 6"},
		{"PUT", "/v1/txn", `[{"KV": {"Verb": "set", "Key": "ok"}}, {"KV": {"Verb": "delete", "Key": "a\u0000b"}}]`, "operation 1: " + inTxn},
		{"PUT", "/v1/txn", `[{"KV": {"Verb": "set", "Key": "a\u0000b", "Value": "eA=="}}, {"Publish": {"Topic": "orders", "Value": "eA=="}}]`, "operation 0: " + inTxn},
	}
	for _, verb := range []string{"set", "cas", "get", "get-tree", "check-index", "check-not-exists", "delete", "delete-tree", "delete-cas"} {
		cases = append(cases, refused{"PUT", "/v1/txn", `[{"KV": {"Verb": "` + verb + `", "Key": "a\u0000b", "Value": "eA=="}}]`, "operation 0: " + inTxn})
	}
	for _, tc := range cases {
		code, _, body := do(t, tc.method, c.url(0, tc.path), tc.body)
		if code != 400 || !strings.Contains(body, tc.inBody) {
			t.Errorf("%s %s %s: got %d %s, want 400 with %q", tc.method, tc.path, tc.body, code, body, tc.inBody)
		}
	}

	if _, hdr, _ := do(t, "GET", c.url(0, "/v1/kv/?recurse"), ""); hdr.Get("X-Consul-Index") != revision {
		t.Errorf("store revision after the refusals: got %s, want %s", hdr.Get("X-Consul-Index"), revision)
	}
	for _, key := range legacy {
		resp, err := c.servers[0].Read(ctx, kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: []byte(key)}}}, false)
		if err != nil || len(resp.Results[0].Records) != 1 {
			t.Errorf("stored key %q after the refused deletes: got %+v, %v; want it still there", key, resp, err)
		}
	}
	c.wantKey("ok", false)
	var ttl LeaseInfo
	if c.leaseOK(0, "ttl", `{"ID": 7}`, &ttl); ttl.KeyCount != 0 {
		t.Errorf("lease 7 after the refused puts: got %d keys, want 0", ttl.KeyCount)
	}
	v, err := c.servers[0].Query(ctx, topics.Get("orders"))
	if err != nil {
		t.Fatal(err)
	}
	if n := v.(topics.Answer).Topics[0].Published; n != 0 {
		t.Errorf("topic after the refused publish-with-txn: got %d messages, want 0", n)
	}
}
