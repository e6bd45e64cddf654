package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func testBench(t *testing.T, d *devCluster) {
	addrs := strings.Join(d.addrs, ",")
	o := aspen(t, "", "bench", "--addrs", addrs, "--duration", "2s", "--clients", "4")
	o.wantCode(t, 0)
	for _, want := range []string{"aspen put: 4 clients over 3 address(es)", "ops/s", "errors    0", "p50"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("bench output lacks %q; got:\n%s", want, o.stdout)
		}
	}

	o = aspen(t, "", "bench", "--addrs", addrs, "--mode", "get", "--keys", "50", "--duration", "1s", "--clients", "4", "--json")
	o.wantCode(t, 0)
	var rep benchReport
	if err := json.Unmarshal([]byte(o.stdout), &rep); err != nil {
		t.Fatalf("bench --json printed %q: %v", o.stdout, err)
	}
	if rep.Ops == 0 || rep.Errors != 0 || rep.PreloadSeconds == 0 {
		t.Errorf("got %d ops, %d errors, preload %.3fs; want ops, no errors, a preload", rep.Ops, rep.Errors, rep.PreloadSeconds)
	}
	if !(rep.LatencyP50Ms <= rep.LatencyP99Ms && rep.LatencyP99Ms <= rep.LatencyMaxMs) {
		t.Errorf("got p50 %v, p99 %v, max %v ms, want them ascending", rep.LatencyP50Ms, rep.LatencyP99Ms, rep.LatencyMaxMs)
	}
}

func TestBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		inStderr string
	}{
		{[]string{"bench", "--mode", "scan"}, "--mode"},
		{[]string{"bench", "--target", "redis"}, "--target"},
		{[]string{"bench", "--clients", "0"}, "--clients"},
		{[]string{"bench", "--duration", "0s"}, "--duration"},
		{[]string{"bench", "extra"}, "takes no arguments"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o := aspen(t, "", tc.args...)
			o.wantCode(t, exitUsage)
			wantStderr(t, o, tc.inStderr)
		})
	}
}

func TestBenchUnreachable(t *testing.T) {
	o := aspen(t, "", "bench", "--addrs", closedAddr(t), "--duration", "100ms", "--clients", "1")
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "no request succeeded")
}

// fakeEtcd answers the two gateway calls the etcd target makes, checking
// their bodies are what the gateway accepts.
type fakeEtcd struct {
	mu    sync.Mutex
	calls map[string]int
	bad   []string
}

func (f *fakeEtcd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct{ Key, Value string }
	err := json.NewDecoder(r.Body).Decode(&body)
	key, keyErr := base64.StdEncoding.DecodeString(body.Key)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[r.URL.Path]++
	if r.Method != http.MethodPost || err != nil || keyErr != nil || !strings.HasPrefix(string(key), "bench/") {
		f.bad = append(f.bad, r.Method+" "+r.URL.Path)
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	w.Write([]byte(`{"header":{}}`))
}

func TestBenchEtcdTarget(t *testing.T) {
	fake := &fakeEtcd{calls: map[string]int{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cfg := benchConfig{Target: "etcd", Mode: "mixed", Addrs: []string{srv.URL}, Clients: 4, ValueBytes: 16, Keys: 20, Duration: 200 * time.Millisecond}
	rep, err := runLoad(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if rep.Errors != 0 || len(fake.bad) > 0 {
		t.Fatalf("got %d errors (first %q), bad requests %q; want none", rep.Errors, rep.FirstError, fake.bad)
	}
	if fake.calls["/v3/kv/put"] < cfg.Keys || fake.calls["/v3/kv/range"] == 0 {
		t.Errorf("got calls %v, want a preload of %d puts and some ranges", fake.calls, cfg.Keys)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{"one sample", ms(7), 50, 7 * time.Millisecond},
		{"p50 of two", ms(1, 2), 50, 1 * time.Millisecond},
		{"p99 of two", ms(1, 2), 99, 2 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}
