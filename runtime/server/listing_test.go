package server

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aspen-db/aspen/core/node"
)

// putAll writes keys (value "v-KEY") through node i's /v1/txn, 64 at a
// time from a few clients at once, and returns the highest revision the
// writes answered.
func putAll(t testing.TB, c *cluster, i int, keys []string) int64 {
	t.Helper()
	const clients, perTxn = 8, txnOpsMax
	var mu sync.Mutex
	var rev int64
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			for lo := w * perTxn; lo < len(keys); lo += clients * perTxn {
				var ops []consulTxnOp
				for _, k := range keys[lo:min(lo+perTxn, len(keys))] {
					ops = append(ops, consulTxnOp{KV: &consulTxnKV{Verb: "set", Key: k, Value: []byte("v-" + k)}})
				}
				body, _ := json.Marshal(ops)
				n, err := send("PUT", c.url(i, "/v1/txn"), string(body))
				if err != nil {
					t.Errorf("txn of %d sets: %v", len(ops), err)
					return
				}
				mu.Lock()
				rev = max(rev, n)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return rev
}

// send is do for other goroutines than the test's: a write that must
// answer 200, and its X-Consul-Index.
func send(method, url, body string) (int64, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, answer)
	}
	return strconv.ParseInt(resp.Header.Get("X-Consul-Index"), 10, 64)
}

func consulIndex(t *testing.T, hdr http.Header) int64 {
	t.Helper()
	n, err := strconv.ParseInt(hdr.Get("X-Consul-Index"), 10, 64)
	if err != nil {
		t.Fatalf("X-Consul-Index %q: %v", hdr.Get("X-Consul-Index"), err)
	}
	return n
}

// getList GETs a listing from node i and decodes its JSON array into v.
func getList(t *testing.T, c *cluster, i int, path string, v any) int64 {
	t.Helper()
	code, hdr, body := do(t, "GET", c.url(i, path), "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %.200s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v in %.200s...", path, err, body)
	}
	return consulIndex(t, hdr)
}

// foldRef is what ?keys&separator answers, computed the plain way.
func foldRef(keys []string, prefix, sep string) []string {
	set := map[string]bool{}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if i := strings.Index(k[len(prefix):], sep); sep != "" && i >= 0 {
			k = k[:len(prefix)+i+len(sep)]
		}
		set[k] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// A listing holds every key under the prefix, far past the replica's range
// cap of 10,000, in order and at the revision X-Consul-Index names.
func TestListingHasEveryKey(t *testing.T) {
	c := startCluster(t, 3)
	keys := []string{"a", "bigfoot", "big/012", "big/top-a", "big/top-b"}
	for d := range 25 {
		for k := range 1000 {
			keys = append(keys, fmt.Sprintf("big/%03d/%04d", d, k))
		}
	}
	rev := putAll(t, c, 0, keys)
	under := foldRef(keys, "big/", "")

	var got []string
	if idx := getList(t, c, 1, "/v1/kv/big/?keys", &got); idx != rev || !slices.Equal(got, under) {
		t.Fatalf("?keys: got %d keys (%q ... %q) at index %d, want the %d under big/ at %d",
			len(got), got[:min(2, len(got))], got[max(0, len(got)-2):], idx, len(under), rev)
	}
	// Node 1 answered the writes once it had applied them, so even its
	// stale reads have them all.
	if idx := getList(t, c, 0, "/v1/kv/big/?keys&stale", &got); idx != rev || !slices.Equal(got, under) {
		t.Fatalf("?keys&stale via node 1: got %d keys at index %d, want %d at %d", len(got), idx, len(under), rev)
	}
	var entries []consulEntry
	if idx := getList(t, c, 2, "/v1/kv/big/?recurse", &entries); idx != rev || len(entries) != len(under) {
		t.Fatalf("?recurse: got %d entries at index %d, want %d at %d", len(entries), idx, len(under), rev)
	}
	for i, e := range entries {
		if e.Key != under[i] || string(e.Value) != "v-"+e.Key || e.ModifyIndex == 0 || int64(e.ModifyIndex) > rev {
			t.Fatalf("?recurse entry %d: got %+v, want key %q, value v-%[3]s, modify index in 1..%d", i, e, under[i], rev)
		}
	}
	for _, prefix := range []string{"big/", "big", ""} {
		want := foldRef(keys, prefix, "/")
		if getList(t, c, 0, "/v1/kv/"+prefix+"?keys&separator=/", &got); !slices.Equal(got, want) {
			t.Fatalf("?keys&separator=/ under %q: got %q, want %q", prefix, got, want)
		}
	}
	t.Run("txn get-tree says it was cut", func(t *testing.T) { testTxnGetTreeCut(t, c, under) })
	t.Run("blocking query", func(t *testing.T) { testBlockingListing(t, c) })
}

// A /v1/txn get-tree stays capped (a transaction's answer is held whole),
// and says so: a read-only one is refused, one that wrote names the cut op
// and the last key it listed.
func testTxnGetTreeCut(t *testing.T, c *cluster, under []string) {
	code, _, answer := do(t, "PUT", c.url(1, "/v1/txn"), `[{"KV": {"Verb": "get-tree", "Key": "big/"}}]`)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(answer, `operation 0: get-tree \"big/\" holds more than 10000 keys`) ||
		!strings.Contains(answer, "GET /v1/kv/big/?recurse") {
		t.Fatalf("read-only get-tree of %d keys: got %d %.300s, want 413 naming the op and the way to list them", len(under), code, answer)
	}
	body := `[{"KV": {"Verb": "set", "Key": "big/zz", "Value": "eA=="}}, {"KV": {"Verb": "get-tree", "Key": "big/"}}]`
	code, _, answer = do(t, "PUT", c.url(1, "/v1/txn"), body)
	var resp consulTxnResponse
	if err := json.Unmarshal([]byte(answer), &resp); code != http.StatusOK || err != nil {
		t.Fatalf("set and get-tree: got %d %.300s (%v), want 200", code, answer, err)
	}
	if want := []txnMore{{OpIndex: 1, After: under[9999]}}; !slices.Equal(resp.More, want) || len(resp.Results) != 1+10000 {
		t.Fatalf("set and get-tree: got %d results and More %+v, want 10001 and %+v", len(resp.Results), resp.More, want)
	}
}

// A blocking listing (?index=) waits for a write past the index and then
// lists every key, the new one included.
func testBlockingListing(t *testing.T, c *cluster) {
	var keys []string
	rev := getList(t, c, 2, "/v1/kv/big/?keys", &keys)
	type answer struct {
		keys []string
		idx  int64
		err  error
	}
	done := make(chan answer, 1)
	go func() { // not the test's goroutine: it reports, never stops the test
		var a answer
		resp, err := http.Get(c.url(2, fmt.Sprintf("/v1/kv/big/?keys&index=%d&wait=20s", rev)))
		if a.err = err; err == nil {
			defer resp.Body.Close()
			a.err = json.NewDecoder(resp.Body).Decode(&a.keys)
			a.idx, _ = strconv.ParseInt(resp.Header.Get("X-Consul-Index"), 10, 64)
		}
		done <- a
	}()
	do(t, "PUT", c.url(0, "/v1/kv/big/~last"), "x")
	a := <-done
	if a.err != nil {
		t.Fatalf("blocking ?keys at index %d: %v", rev, a.err)
	}
	if a.idx <= rev || len(a.keys) != len(keys)+1 || a.keys[len(a.keys)-1] != "big/~last" {
		t.Fatalf("blocking ?keys at index %d: got %d keys ending %q at index %d, want %d ending big/~last at a later index",
			rev, len(a.keys), a.keys[max(0, len(a.keys)-1):], a.idx, len(keys)+1)
	}
}

// liveOp is one acknowledged write of the consistency test.
type liveOp struct {
	key     string
	rev     int64
	deleted bool
}

// A listing taken while writes go on is the state at one revision: exactly
// the keys, with their modify indexes, that the writes acknowledged at or
// before X-Consul-Index leave, whichever node serves it.
func TestListingIsOneRevision(t *testing.T) {
	c := startCluster(t, 3)
	var keys []string
	for i := range 10000 { // past listCopyKeysMax: listings come from a clone
		keys = append(keys, fmt.Sprintf("live/%05d", i))
	}
	putAll(t, c, 0, keys)
	var base []consulEntry
	baseRev := getList(t, c, 0, "/v1/kv/live/?recurse", &base)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	const writers = 16
	acked := make([][]liveOp, writers)
	for w := range writers {
		wg.Go(func() { acked[w] = writeLive(t, c, w, writers, len(keys), stop) })
	}
	type taken struct {
		rev     int64
		entries []consulEntry
	}
	var listings []taken
	for i := range 10 {
		var l taken
		l.rev = getList(t, c, i%3, "/v1/kv/live/?recurse", &l.entries)
		listings = append(listings, l)
	}
	close(stop)
	wg.Wait()
	ops := slices.Concat(acked...)
	slices.SortFunc(ops, func(a, b liveOp) int { return int(a.rev - b.rev) })
	if len(ops) == 0 || ops[len(ops)-1].rev <= listings[0].rev {
		t.Fatalf("%d writes acknowledged: none came after the first listing (at %d)", len(ops), listings[0].rev)
	}
	for i, l := range listings {
		want := stateAt(base, baseRev, ops, l.rev)
		got := map[string]int64{}
		for j, e := range l.entries {
			got[e.Key] = int64(e.ModifyIndex)
			if j > 0 && e.Key <= l.entries[j-1].Key {
				t.Fatalf("listing %d: %q after %q, want ascending keys", i, e.Key, l.entries[j-1].Key)
			}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("listing %d at index %d: %d keys, want the %d that the acknowledged writes leave at that revision (%s)",
				i, l.rev, len(got), len(want), firstDiff(got, want))
		}
	}
}

// writeLive puts and deletes keys of its own (those whose number modulo n
// is w, and new ones) until stop, and returns what was acknowledged. Every
// write changes the store, so each has a revision of its own.
func writeLive(t *testing.T, c *cluster, w, n, preloaded int, stop <-chan struct{}) []liveOp {
	var ops []liveOp
	gone := map[int]bool{}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return ops
		default:
		}
		num := w + n*(i%(preloaded/n))
		method := "PUT"
		switch {
		case i%3 == 2:
			num = preloaded + w + n*i // a new key
		case i%3 == 1 && !gone[num]:
			method = "DELETE"
		}
		gone[num] = method == "DELETE"
		key := fmt.Sprintf("live/%05d", num)
		rev, err := send(method, c.url((w+i)%3, "/v1/kv/"+key), "x")
		if err != nil {
			t.Error(err)
			return ops
		}
		ops = append(ops, liveOp{key: key, rev: rev, deleted: method == "DELETE"})
	}
}

// stateAt replays the acknowledged writes after base up to rev: each key's
// modify index.
func stateAt(base []consulEntry, baseRev int64, ops []liveOp, rev int64) map[string]int64 {
	state := map[string]int64{}
	for _, e := range base {
		state[e.Key] = int64(e.ModifyIndex)
	}
	for _, op := range ops {
		switch {
		case op.rev <= baseRev || op.rev > rev:
		case op.deleted:
			delete(state, op.key)
		default:
			state[op.key] = op.rev
		}
	}
	return state
}

func firstDiff(got, want map[string]int64) string {
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok || g != want[k] {
			return fmt.Sprintf("key %s: got index %d (present %v), want %d", k, g, ok, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			return fmt.Sprintf("key %s at index %d: not written by then", k, got[k])
		}
	}
	return "no difference"
}

// A replica whose range cap is below the listing's copy bound still lists
// everything: its reads copy no more than it allows.
func TestListingUnderALowRangeCap(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *Config) {
		ncfg := node.DefaultConfig(cfg.ID, nil)
		ncfg.Limits.RangeLimitMax = 10
		cfg.Node = &ncfg
	})
	var keys []string
	for i := range 25 {
		keys = append(keys, fmt.Sprintf("low/%02d", i))
	}
	rev := putAll(t, c, 0, keys)
	var got []string
	if idx := getList(t, c, 0, "/v1/kv/low/?keys", &got); idx != rev || !slices.Equal(got, keys) {
		t.Fatalf("?keys under a range cap of 10: got %q at index %d, want %q at %d", got, idx, keys, rev)
	}
}
