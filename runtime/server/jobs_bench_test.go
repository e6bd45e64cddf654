package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkJobCycle measures jobs submitted, leased and completed per second
// on a real 3-node cluster over HTTP: each iteration is one client's submit,
// then a lease, then the complete of whatever it leased (three writes through
// the log). 64 clients spread over the nodes, as aspen bench does.
//
//	go test ./runtime/server/ -run '^$' -bench JobCycle -benchtime 5s
func BenchmarkJobCycle(b *testing.B) {
	benchJobCycle(b, 1)
}

// BenchmarkJobCycleBatched is BenchmarkJobCycle with workers that lease up
// to 8 jobs at once and complete them in one complete/batch call: each
// iteration submits 8 jobs one by one, leases up to 8 and completes what it
// got (8 + 2 writes for 8 jobs, against 24). Every job counted was still
// submitted, leased and completed through the HTTP API.
func BenchmarkJobCycleBatched(b *testing.B) {
	benchJobCycle(b, 8)
}

// benchJobCycle runs the cycle with batch jobs submitted per iteration,
// leased together and completed together (batch 1: the single endpoints).
func benchJobCycle(b *testing.B, batch int) {
	c := startCluster(b, 3)
	for i := range c.servers {
		waitReady(b, c, i)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var next, done, failed atomic.Int64
	b.SetParallelism(32) // 64 clients on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		node := int(next.Add(1)) % len(c.servers)
		post := func(op string, req any, v any) bool {
			raw, _ := json.Marshal(req)
			resp, err := client.Post(c.url(node, "/v1/aspen/job/"+op), "application/json", bytes.NewReader(raw))
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			// Read the whole body, as aspen bench does: a body closed
			// unread costs the connection, and the next call dials again.
			body, err := io.ReadAll(resp.Body)
			return err == nil && resp.StatusCode == http.StatusOK && (v == nil || json.Unmarshal(body, v) == nil)
		}
		worker := fmt.Sprintf("w%d", node)
		for pb.Next() {
			ok := true
			for i := 0; i < batch && ok; i++ {
				ok = post("submit", map[string]any{"Type": "bench", "Payload": "x"}, nil)
			}
			var leased JobLeased
			ok = ok && post("lease", map[string]any{"Worker": worker, "Types": []string{"bench"}, "Max": batch}, &leased)
			if ok && batch == 1 && len(leased.Jobs) == 1 {
				j := leased.Jobs[0]
				if ok = post("complete", map[string]any{"ID": j.ID, "Token": j.Token, "Output": "ok"}, nil); ok {
					done.Add(1)
				}
			}
			if ok && batch > 1 && len(leased.Jobs) > 0 {
				items := make([]JobCompleteItem, len(leased.Jobs))
				for i, j := range leased.Jobs {
					items[i] = JobCompleteItem{ID: j.ID, Token: j.Token, Output: "ok"}
				}
				var answer JobBatchAnswer
				ok = post("complete/batch", JobCompleteBatch{Items: items}, &answer)
				for _, it := range answer.Items {
					if it.Status == http.StatusOK {
						done.Add(1)
					}
				}
			}
			if !ok {
				failed.Add(1)
			}
		}
	})
	elapsed := time.Since(start).Seconds()
	b.ReportMetric(float64(done.Load())/elapsed, "jobs/s")
	b.ReportMetric(float64(failed.Load()), "failed")
}

// waitReady waits until node i answers a job list, so the first iterations
// do not time against an election.
func waitReady(b *testing.B, c *cluster, i int) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, _, _ := do(b, "POST", c.url(i, "/v1/aspen/job/dead/list"), `{}`); code == http.StatusOK {
			return
		}
	}
	b.Fatalf("node %d never answered", i+1)
}
