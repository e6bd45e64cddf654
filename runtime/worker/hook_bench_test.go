package worker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/aspen-db/aspen/runtime/server/servertest"
	"github.com/aspen-db/aspen/runtime/worker/hooksig"
)

// The shape of the delivery benchmark: a one-node cluster with one http
// hook (parallel, hookBenchParallel in flight) on bench/, a local receiver
// that verifies every signature, and a pool with hookBenchConcurrency
// slots. Each iteration puts hookBenchDeliveries keys from
// hookBenchClients clients and times from the first put until every
// delivery job has succeeded: the figure is deliveries per second, the
// puts, the hook's pumps and the jobs' leases and completions through raft
// included.
const (
	hookBenchDeliveries  = 2000
	hookBenchConcurrency = 64
	hookBenchParallel    = 64
	hookBenchClients     = 16
)

func BenchmarkHookHTTPDelivery(b *testing.B) {
	s := servertest.StartOne(b)
	addr, key, secret := s.HTTPAddr(), s.ClusterKey(), []byte("whsec-bench")
	var got, bad atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if hooksig.Verify(secret, r.Header.Get(hooksig.HeaderTimestamp), r.Header.Get(hooksig.HeaderSignature), body, time.Now(), hooksig.ToleranceDefault) != nil {
			bad.Add(1)
		}
		got.Add(1)
	}))
	defer rc.Close()
	create, _ := json.Marshal(server.HookRequest{Name: "bench", Pattern: "bench/", Handler: hooks.HandlerHTTP, URL: rc.URL,
		Secret: string(secret), Mode: hooks.Parallel, Parallel: hookBenchParallel, TimeoutMs: 10_000})
	if resp, err := http.Post("http://"+addr+"/v1/aspen/hook/create", "application/json", bytes.NewReader(create)); err != nil || resp.StatusCode != 200 {
		b.Fatalf("create hook: %v %v", resp, err)
	}
	pool, err := Start(Config{Name: "bench", Concurrency: hookBenchConcurrency, PollMs: 20, Types: []string{HookHTTPType}}, []string{addr}, key,
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Stop()
	var n atomic.Int64
	for i := 0; i < b.N; i++ {
		start := time.Now()
		putKeys(b, addr, hookBenchDeliveries, func() string { return fmt.Sprintf("bench/%d", n.Add(1)) })
		waitSucceeded(b, addr, (i+1)*hookBenchDeliveries)
		b.ReportMetric(float64(hookBenchDeliveries)/time.Since(start).Seconds(), "deliveries/s")
	}
	if bad.Load() != 0 || got.Load() < int64(b.N*hookBenchDeliveries) {
		b.Fatalf("receiver: %d deliveries, %d failed their signature check; want %d, none", got.Load(), bad.Load(), b.N*hookBenchDeliveries)
	}
}

// putKeys puts n keys, named by next, from several clients at once.
func putKeys(b *testing.B, addr string, n int, next func() string) {
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(n))
	errs := make(chan error, hookBenchClients)
	for range hookBenchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/kv/"+next(), bytes.NewReader([]byte("v")))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("put: %s", resp.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// waitSucceeded polls the job stats until want jobs have succeeded.
func waitSucceeded(b *testing.B, addr string, want int) {
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/v1/aspen/job/stats")
		if err != nil {
			b.Fatal(err)
		}
		var st server.JobStats
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		if st.Counts.Succeeded >= want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("job counts %+v after 2 min, want %d succeeded", st.Counts, want)
		}
	}
}

// BenchmarkHookDeliveryLag paces puts at hookLagRate a second into a
// one-node cluster with one parallel http hook, and measures each change's
// lag: from the put's answer to the receiver's first sight of its
// delivery. It reports p50 and p99 of each iteration's hookLagPuts puts.
func BenchmarkHookDeliveryLag(b *testing.B) {
	const hookLagRate, hookLagPuts = 500, 1500
	s := servertest.StartOne(b)
	addr, key := s.HTTPAddr(), s.ClusterKey()
	var mu sync.Mutex
	seen := map[string]time.Time{}
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e struct{ Event hooks.Event }
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &e.Event)
		mu.Lock()
		if _, ok := seen[e.Event.Key]; !ok {
			seen[e.Event.Key] = time.Now()
		}
		mu.Unlock()
	}))
	defer rc.Close()
	create, _ := json.Marshal(server.HookRequest{Name: "lag", Pattern: "lag/", Handler: hooks.HandlerHTTP, URL: rc.URL,
		Secret: "whsec-lag", Mode: hooks.Parallel, Parallel: hookBenchParallel, TimeoutMs: 10_000})
	if resp, err := http.Post("http://"+addr+"/v1/aspen/hook/create", "application/json", bytes.NewReader(create)); err != nil || resp.StatusCode != 200 {
		b.Fatalf("create hook: %v %v", resp, err)
	}
	pool, err := Start(Config{Name: "lag", Concurrency: hookBenchConcurrency, PollMs: 10, Types: []string{HookHTTPType}}, []string{addr}, key,
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Stop()
	n := 0
	for i := 0; i < b.N; i++ {
		acked := make(map[string]time.Time, hookLagPuts)
		var amu sync.Mutex
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / hookLagRate)
		for range hookLagPuts {
			<-tick.C
			n++
			k := fmt.Sprintf("lag/%d", n)
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/kv/"+k, bytes.NewReader([]byte("v")))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				amu.Lock()
				acked[k] = time.Now()
				amu.Unlock()
			}()
		}
		tick.Stop()
		wg.Wait()
		var lags []time.Duration
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			lags = lags[:0]
			for k, at := range acked {
				if got, ok := seen[k]; ok {
					lags = append(lags, max(0, got.Sub(at)))
				}
			}
			mu.Unlock()
			if len(lags) == len(acked) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d deliveries after a minute", len(lags), len(acked))
			}
		}
		slices.Sort(lags)
		b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99_ms")
	}
}
