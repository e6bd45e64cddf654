package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/topics"
)

// Consumer group benchmarks on a real 3-node cluster over HTTP, three
// members, one per node. Messages are 256 bytes, published beforehand
// through the Go API (100 per iteration) in batches of 1000.
//
//	go test ./runtime/server/ -run '^$' -bench 'Group' -benchtime 50x

const groupBenchValueBytes = 256

// groupBenchPost POSTs req to a group endpoint and decodes a 200 into v.
func groupBenchPost(hc *http.Client, c *cluster, node int, op string, req GroupRequest, v any) bool {
	raw, _ := json.Marshal(req)
	resp, err := hc.Post(c.url(node, "/v1/aspen/group/"+op), "application/json", bytes.NewReader(raw))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK && (v == nil || json.Unmarshal(body, v) == nil)
}

// groupBenchTopic creates topic t of 3 partitions holding n messages.
func groupBenchTopic(b *testing.B, c *cluster, n int) {
	ctx := context.Background()
	if _, err := c.servers[0].Call(ctx, topics.Create(topics.Def{Name: "t", Partitions: 3, RetainMessages: 10_000_000, RetainBytes: 1 << 30})); err != nil {
		b.Fatal(err)
	}
	value := bytes.Repeat([]byte("x"), groupBenchValueBytes)
	for sent := 0; sent < n; {
		in := make([]topics.In, min(1000, n-sent))
		for i := range in {
			in[i] = topics.In{Value: value, Partition: -1}
		}
		if _, err := c.servers[0].Call(ctx, topics.Publish("t", in)); err != nil {
			b.Fatal(err)
		}
		sent += len(in)
	}
}

// BenchmarkGroupCompeting: three members fetch batches of 100 and ack each
// message (acks 16 at a time per member) until every message is acked.
func BenchmarkGroupCompeting(b *testing.B) {
	benchCompeting(b, func(hc *http.Client, c *cluster, m int, member string, msgs []GroupDelivery) int64 {
		handles := make(chan string, len(msgs))
		for _, d := range msgs {
			handles <- d.Handle
		}
		close(handles)
		var acked atomic.Int64
		var acks sync.WaitGroup
		for range 16 {
			acks.Add(1)
			go func() {
				defer acks.Done()
				for h := range handles {
					if groupBenchPost(hc, c, m, "ack", GroupRequest{Name: "q", Member: member, Handle: h}, nil) {
						acked.Add(1)
					}
				}
			}()
		}
		acks.Wait()
		return acked.Load()
	})
}

// BenchmarkGroupCompetingBatched: as BenchmarkGroupCompeting, but each
// member acks the batch it fetched with one settle/batch call.
func BenchmarkGroupCompetingBatched(b *testing.B) {
	benchCompeting(b, func(hc *http.Client, c *cluster, m int, member string, msgs []GroupDelivery) int64 {
		req := GroupSettleBatch{Name: "q", Member: member, Items: make([]GroupSettleItem, len(msgs))}
		for i, d := range msgs {
			req.Items[i] = GroupSettleItem{Op: "ack", Handle: d.Handle}
		}
		var out GroupBatchAnswer
		raw, _ := json.Marshal(req)
		resp, err := hc.Post(c.url(m, "/v1/aspen/group/settle/batch"), "application/json", bytes.NewReader(raw))
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&out) != nil {
			return 0
		}
		acked := int64(0)
		for _, it := range out.Items {
			if it.Status == http.StatusOK {
				acked++
			}
		}
		return acked
	})
}

// benchCompeting runs three members, one per node, that fetch batches of
// 100 (waiting up to a second for one) and settle each with settle, which
// answers how many it acked, until every message is acked.
func benchCompeting(b *testing.B, settle func(hc *http.Client, c *cluster, m int, member string, msgs []GroupDelivery) int64) {
	c := startCluster(b, 3)
	total := 100 * b.N
	groupBenchTopic(b, c, total)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	if !groupBenchPost(hc, c, 0, "create", GroupRequest{Name: "q", Topic: "t", Mode: "competing", AckWaitMs: 60_000, MaxInFlight: 1000}, nil) {
		b.Fatal("create")
	}
	var acked atomic.Int64
	var end time.Time // when the last message was acked: a member still waiting in a fetch then costs nothing
	var once sync.Once
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for m := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			member := "m" + strconv.Itoa(m)
			for acked.Load() < int64(total) {
				var f GroupDeliveries
				if !groupBenchPost(hc, c, m, "fetch", GroupRequest{Name: "q", Member: member, Max: 100, WaitMs: 1000}, &f) || len(f.Messages) == 0 {
					continue
				}
				if acked.Add(settle(hc, c, m, member, f.Messages)) >= int64(total) {
					once.Do(func() { end = time.Now() })
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(acked.Load())/end.Sub(start).Seconds(), "msgs/s")
}

// BenchmarkGroupPartitioned: three members, one partition each once the
// group has settled, read batches of 100 and commit after each.
func BenchmarkGroupPartitioned(b *testing.B) {
	c := startCluster(b, 3)
	total := 100 * b.N
	groupBenchTopic(b, c, total)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	if !groupBenchPost(hc, c, 0, "create", GroupRequest{Name: "p", Topic: "t", Mode: "partitioned", SessionMs: 60_000}, nil) {
		b.Fatal("create")
	}
	assigned := make([]GroupAssignment, 3)
	for m := range 3 {
		groupBenchPost(hc, c, m, "join", GroupRequest{Name: "p", Member: "m" + strconv.Itoa(m)}, &assigned[m])
	}
	for settled := false; !settled; {
		settled = true
		for m := range 3 {
			a := assigned[m]
			groupBenchPost(hc, c, m, "heartbeat", GroupRequest{Name: "p", Member: a.Member, Released: a.Revoking}, &assigned[m])
			settled = settled && len(assigned[m].Assigned) == 1 && len(assigned[m].Revoking) == 0
		}
	}
	var read atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for m := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := assigned[m]
			p := a.Assigned[0]
			for read.Load() < int64(total) {
				var r GroupMessages
				if !groupBenchPost(hc, c, m, "read", GroupRequest{Name: "p", Member: a.Member, Partition: &p, Max: 100}, &r) || len(r.Messages) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				off := int64(r.Next)
				if groupBenchPost(hc, c, m, "commit", GroupRequest{Name: "p", Member: a.Member, Generation: a.Generation, Partition: &p, Offset: &off}, nil) {
					read.Add(int64(len(r.Messages)))
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(read.Load())/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkGroupLatency: one message at a time published through node 1
// (the Go API) to a competing member whose fetch through node 2 waits for
// it (WaitMs, registered before the publish starts); the time from the
// publish call to the fetch's answer, p50 and p99.
func BenchmarkGroupLatency(b *testing.B) {
	c := startCluster(b, 3)
	groupBenchTopic(b, c, 0)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	if !groupBenchPost(hc, c, 0, "create", GroupRequest{Name: "q", Topic: "t", Mode: "competing", AckWaitMs: 60_000}, nil) {
		b.Fatal("create")
	}
	lat := make([]time.Duration, 0, b.N)
	value := bytes.Repeat([]byte("x"), groupBenchValueBytes)
	b.ResetTimer()
	for i := range b.N {
		got := make(chan GroupDeliveries, 1)
		go func() {
			var f GroupDeliveries
			groupBenchPost(hc, c, 1, "fetch", GroupRequest{Name: "q", Member: "m", Max: 1, WaitMs: 10_000}, &f)
			got <- f
		}()
		for c.servers[1].topicReaders.count.Load() == 0 {
			time.Sleep(20 * time.Microsecond)
		}
		t0 := time.Now()
		if _, err := c.servers[0].Call(context.Background(), topics.Publish("t", []topics.In{{Value: value, Partition: -1}})); err != nil {
			b.Fatal(err)
		}
		f := <-got
		if len(f.Messages) != 1 {
			b.Fatalf("message %d never arrived", i)
		}
		lat = append(lat, time.Since(t0))
		groupBenchPost(hc, c, 1, "ack", GroupRequest{Name: "q", Member: "m", Handle: f.Messages[0].Handle}, nil)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
