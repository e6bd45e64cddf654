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
		for pb.Next() {
			var leased JobLeased
			ok := post("submit", map[string]any{"Type": "bench", "Payload": "x"}, nil) &&
				post("lease", map[string]any{"Worker": fmt.Sprintf("w%d", node), "Types": []string{"bench"}, "Max": 1}, &leased)
			if ok && len(leased.Jobs) == 1 {
				j := leased.Jobs[0]
				ok = post("complete", map[string]any{"ID": j.ID, "Token": j.Token, "Output": "ok"}, nil)
				if ok {
					done.Add(1)
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
