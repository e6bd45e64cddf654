package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freeAddr reserves a loopback port: peers must know each other's addresses
// before any of them starts.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type cluster struct {
	t       testing.TB
	cfgs    []Config
	servers []*Server
}

func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	return startClusterWith(t, n, nil)
}

// startClusterWith starts n nodes, each config first passed to tune (when set).
// A peer address freeAddr reserved can be taken by another process before
// its node binds it (the ephemeral ports are everyone's, and test packages
// run at once): the bring-up then starts over on new addresses.
func startClusterWith(t testing.TB, n int, tune func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t}
	for attempt := 1; ; attempt++ {
		err := c.bringUp(n, tune)
		if err == nil {
			// After the data dirs' own cleanups, so it runs before them:
			// a node stops before its directory goes.
			t.Cleanup(func() {
				for _, s := range c.servers {
					if s != nil {
						s.Close()
					}
				}
			})
			return c
		}
		for _, s := range c.servers {
			s.Close()
		}
		c.servers, c.cfgs = nil, nil
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == bringUpAttempts {
			t.Fatalf("start the cluster: %v", err)
		}
	}
}

// bringUpAttempts bounds the starts over when a peer address was taken.
const bringUpAttempts = 5

func (c *cluster) bringUp(n int, tune func(*Config)) error {
	members := map[uint64]string{}
	for i := 1; i <= n; i++ {
		members[uint64(i)] = freeAddr(c.t)
	}
	for i := 1; i <= n; i++ {
		c.cfgs = append(c.cfgs, Config{ID: uint64(i), DataDir: c.t.TempDir(), PeerAddr: members[uint64(i)],
			HTTPAddr: "127.0.0.1:0", Cluster: members, Tick: 20 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if tune != nil {
			tune(&c.cfgs[i-1])
		}
	}
	for i := range c.cfgs {
		s, err := Start(c.cfgs[i])
		if err != nil {
			return fmt.Errorf("start node %d: %w", i+1, err)
		}
		c.servers = append(c.servers, s)
	}
	return nil
}

func (c *cluster) start(i int) *Server {
	c.t.Helper()
	s, err := Start(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("start node %d: %v", i+1, err)
	}
	return s
}

// aspenDo POSTs body to Aspen's own API at /v1/aspen/PATH on node i and
// decodes a 200 answer into v (when set).
func (c *cluster) aspenDo(i int, path, body string, v any) (int, string) {
	c.t.Helper()
	code, _, answer := do(c.t, "POST", c.url(i, "/v1/aspen/"+path), body)
	if code == http.StatusOK && v != nil {
		if err := json.Unmarshal([]byte(answer), v); err != nil {
			c.t.Fatalf("%s %s: answer %q: %v", path, body, answer, err)
		}
	}
	return code, answer
}

func (c *cluster) url(i int, path string) string {
	return "http://" + c.servers[i].HTTPAddr() + path
}

func do(t testing.TB, method, url, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestPutGetThroughAnyNode(t *testing.T) {
	c := startCluster(t, 3)
	code, _, body := do(t, "PUT", c.url(1, "/v1/kv/greeting"), "hello")
	if code != 200 || strings.TrimSpace(body) != "true" {
		t.Fatalf("put via node 2: got %d %q, want 200 true", code, body)
	}
	for i := range c.servers {
		code, hdr, body := do(t, "GET", c.url(i, "/v1/kv/greeting?raw"), "")
		if code != 200 || body != "hello" {
			t.Fatalf("get via node %d: got %d %q, want 200 hello", i+1, code, body)
		}
		if hdr.Get("X-Consul-Index") == "" {
			t.Fatalf("get via node %d: no X-Consul-Index", i+1)
		}
	}
}

func TestCASAndErrors(t *testing.T) {
	c := startCluster(t, 3)
	if _, _, body := do(t, "PUT", c.url(0, "/v1/kv/k?cas=0"), "v1"); strings.TrimSpace(body) != "true" {
		t.Fatalf("create-only put: got %q, want true", body)
	}
	if _, _, body := do(t, "PUT", c.url(0, "/v1/kv/k?cas=0"), "v2"); strings.TrimSpace(body) != "false" {
		t.Fatalf("second create-only put: got %q, want false", body)
	}
	_, _, body := do(t, "GET", c.url(0, "/v1/kv/k"), "")
	var entries []consulEntry
	if err := json.Unmarshal([]byte(body), &entries); err != nil || len(entries) != 1 {
		t.Fatalf("get: %q (%v)", body, err)
	}
	idx := entries[0].ModifyIndex
	if _, _, body := do(t, "PUT", c.url(2, fmt.Sprintf("/v1/kv/k?cas=%d", idx)), "v3"); strings.TrimSpace(body) != "true" {
		t.Fatalf("cas at %d: got %q, want true", idx, body)
	}
	big := strings.Repeat("x", 512*1024+1)
	if code, _, body := do(t, "PUT", c.url(0, "/v1/kv/big"), big); code != 413 || !strings.Contains(body, "error") {
		t.Fatalf("oversized value: got %d %q, want 413 with a JSON error", code, body)
	}
	if code, _, _ := do(t, "GET", c.url(0, "/v1/kv/missing"), ""); code != 404 {
		t.Fatalf("missing key: got %d, want 404", code)
	}
	if code, _, body := do(t, "POST", c.url(0, "/v1/kv/k"), ""); code != 405 || !strings.Contains(body, "not allowed") {
		t.Fatalf("POST: got %d %q, want 405", code, body)
	}
	if code, _, _ := do(t, "GET", c.url(0, "/v1/nope"), ""); code != 404 {
		t.Fatalf("unknown path: got %d, want 404", code)
	}
	if code, _, _ := do(t, "PUT", c.url(0, "/v1/txn"), "{not json"); code != 400 {
		t.Fatalf("malformed txn: got %d, want 400", code)
	}
}

func TestBlockingQueryWakesOnWrite(t *testing.T) {
	c := startCluster(t, 3)
	do(t, "PUT", c.url(0, "/v1/kv/b"), "1")
	_, hdr, _ := do(t, "GET", c.url(0, "/v1/kv/b"), "")
	index := hdr.Get("X-Consul-Index")
	done := make(chan string, 1)
	go func() {
		_, _, body := do(t, "GET", c.url(1, "/v1/kv/b?raw&wait=20s&index="+index), "")
		done <- body
	}()
	select {
	case body := <-done:
		t.Fatalf("blocking query returned %q before any write", body)
	case <-time.After(300 * time.Millisecond):
	}
	do(t, "PUT", c.url(2, "/v1/kv/b"), "2")
	select {
	case body := <-done:
		if body != "2" {
			t.Fatalf("blocking query: got %q, want 2", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query did not wake after a write")
	}
}

func TestWatchStreamsChanges(t *testing.T) {
	c := startCluster(t, 3)
	resp, err := http.Get(c.url(0, "/v1/aspen/watch?prefix=w/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	do(t, "PUT", c.url(1, "/v1/kv/w/a"), "1")
	do(t, "PUT", c.url(1, "/v1/kv/other"), "x")
	do(t, "DELETE", c.url(2, "/v1/kv/w/a"), "")
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for len(got) < 2 && sc.Scan() {
		var e WatchEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Type+" "+e.Key+" "+string(e.Value))
	}
	want := []string{"put w/a 1", "delete w/a "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRestartKeepsData(t *testing.T) {
	c := startCluster(t, 3)
	do(t, "PUT", c.url(0, "/v1/kv/durable"), "yes")
	for i, s := range c.servers {
		s.Close()
		c.servers[i] = nil
	}
	for i := range c.cfgs {
		c.cfgs[i].HTTPAddr = "127.0.0.1:0"
		c.servers[i] = c.start(i)
	}
	if code, _, body := do(t, "GET", c.url(0, "/v1/kv/durable?raw"), ""); code != 200 || body != "yes" {
		t.Fatalf("after restart: got %d %q, want 200 yes", code, body)
	}
}

func TestKeysAreOpaque(t *testing.T) {
	c := startCluster(t, 1)
	for _, key := range []string{"a//b", "x/../y", "dot/./s"} {
		if code, _, body := do(t, "PUT", c.url(0, "/v1/kv/"+key), key); code != 200 {
			t.Fatalf("put %q: %d %s", key, code, body)
		}
	}
	code, _, body := do(t, "GET", c.url(0, "/v1/kv/?keys"), "")
	if code != 200 || !strings.Contains(body, `"a//b"`) || !strings.Contains(body, `"x/../y"`) || !strings.Contains(body, `"dot/./s"`) {
		t.Fatalf("keys: %d %s, want each key stored as given", code, body)
	}
}

// The profiler is served only when asked for.
func TestProfilingOptIn(t *testing.T) {
	c := startCluster(t, 1)
	if code, _, _ := do(t, "GET", c.url(0, "/debug/pprof/"), ""); code != http.StatusNotFound {
		t.Fatalf("pprof without Profiling: got %d, want 404", code)
	}
	c.servers[0].Close()
	c.cfgs[0].Profiling = true
	c.servers[0] = c.start(0)
	code, _, body := do(t, "GET", c.url(0, "/debug/pprof/goroutine?debug=1"), "")
	if code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("pprof with Profiling: got %d %.80q, want the goroutine profile", code, body)
	}
}

// The status report names the raft timing, which bounds how long a lease
// may outlive its TTL (a new leader's grace is one election timeout).
func TestStatusReportsTiming(t *testing.T) {
	c := startCluster(t, 1)
	_, _, body := do(t, "GET", c.url(0, "/v1/aspen/status"), "")
	var st StatusReport
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.TickMs != 20 || st.ElectionTimeoutMs != 200 {
		t.Fatalf("status: got tick %d ms, election timeout %d ms; want 20 ms and ten ticks", st.TickMs, st.ElectionTimeoutMs)
	}
}
