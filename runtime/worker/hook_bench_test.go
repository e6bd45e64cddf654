package worker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/aspen-db/aspen/runtime/server/servertest"
	"github.com/aspen-db/aspen/runtime/worker/hooksig"
)

// The shape of the delivery benchmark: each iteration submits
// hookBenchDeliveries hook.http jobs to a one-node cluster, built as the
// hooks module builds them (hooks.Payload, the secret sealed under the
// cluster key, the idempotency key as the job's), then starts a pool with
// hookBenchConcurrency slots and times it until every delivery has
// reached a local receiver that verifies each signature and every job
// has succeeded. The figure is deliveries per second, leases and
// completions through raft included.
const (
	hookBenchDeliveries  = 2000
	hookBenchConcurrency = 64
	hookBenchSubmitters  = 16
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
	sealed, err := token.Seal(key, secret)
	if err != nil {
		b.Fatal(err)
	}
	var rev atomic.Int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		submitHookJobs(b, addr, hookBenchDeliveries, func() server.JobRequest {
			n := rev.Add(1)
			e := hooks.Event{Hook: "bench", Kind: hooks.KindPut, Key: fmt.Sprintf("bench/%d", n), Value: []byte("v"), Revision: n,
				TimeUnixNano: time.Now().UnixNano(), IdempotencyKey: fmt.Sprintf("bench:%d:bench/%d", n, n)}
			p, _ := json.Marshal(hooks.Payload{Event: e, URL: rc.URL, Secret: sealed})
			return server.JobRequest{Type: HookHTTPType, Payload: string(p), MaxAttempts: 3, TimeoutMs: 10_000, Key: e.IdempotencyKey}
		})
		before := got.Load()
		b.StartTimer()
		start := time.Now()
		pool, err := Start(Config{Name: "bench", Concurrency: hookBenchConcurrency, PollMs: 20, Types: []string{HookHTTPType}}, []string{addr}, key,
			slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if err != nil {
			b.Fatal(err)
		}
		waitSucceeded(b, addr, (i+1)*hookBenchDeliveries)
		took := time.Since(start)
		b.StopTimer()
		pool.Stop()
		if n := got.Load() - before; n < hookBenchDeliveries {
			b.Fatalf("receiver got %d deliveries, want %d", n, hookBenchDeliveries)
		}
		b.ReportMetric(float64(hookBenchDeliveries)/took.Seconds(), "deliveries/s")
	}
	if bad.Load() != 0 {
		b.Fatalf("%d deliveries failed their signature check", bad.Load())
	}
}

// submitHookJobs submits n jobs made by next, from several clients at once.
func submitHookJobs(b *testing.B, addr string, n int, next func() server.JobRequest) {
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(n))
	errs := make(chan error, hookBenchSubmitters)
	for range hookBenchSubmitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				body, _ := json.Marshal(next())
				resp, err := http.Post("http://"+addr+"/v1/aspen/job/submit", "application/json", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("submit: %d %s", resp.StatusCode, raw)
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
