package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTopicPublish measures messages published per second on a real
// 3-node cluster over HTTP: each iteration is one client's publish of a
// batch of 100 messages of 256 bytes with keys, through the log. 16 clients
// spread over the nodes; the topic has 6 partitions and keeps 8 MiB per
// partition, so retention runs in the steady state.
//
//	go test ./runtime/server/ -run '^$' -bench TopicPublish -benchtime 5s
func BenchmarkTopicPublish(b *testing.B) {
	const batch, valueBytes = 100, 256
	c := startCluster(b, 3)
	for i := range c.servers {
		waitReady(b, c, i)
	}
	if code, _, body := do(b, "POST", c.url(0, "/v1/aspen/topic/create"), `{"Name": "bench", "Partitions": 6, "RetainBytes": 8388608}`); code != http.StatusOK {
		b.Fatalf("create: %d %s", code, body)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var next, published, failed atomic.Int64
	b.SetParallelism(32) // 64 clients on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		id := next.Add(1)
		node := int(id) % len(c.servers)
		value := strings.Repeat("v", valueBytes)
		msgs := make([]TopicMessageIn, batch)
		for i := range msgs {
			key := fmt.Sprintf("client%d-key%d", id, i)
			msgs[i] = TopicMessageIn{Key: &key, Value: value}
		}
		body, _ := json.Marshal(TopicPublish{Topic: "bench", Messages: msgs})
		for pb.Next() {
			resp, err := client.Post(c.url(node, "/v1/aspen/topic/publish"), "application/json", bytes.NewReader(body))
			if err != nil {
				failed.Add(1)
				continue
			}
			_, err = io.Copy(io.Discard, resp.Body) // read it all: a body closed unread costs the connection
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				failed.Add(1)
				continue
			}
			published.Add(batch)
		}
	})
	elapsed := time.Since(start).Seconds()
	b.ReportMetric(float64(published.Load())/elapsed, "msgs/s")
	b.ReportMetric(float64(failed.Load()), "failed")
}

// BenchmarkTopicLatency measures the time from a publish being sent to a
// long-polling reader on another node receiving the message, on a real
// 3-node cluster: one publisher sends one message at a time to the
// node 1, a reader follows the partition through
// node 3 with WaitMs. Each iteration is one message; p50 and p99 are
// reported.
//
//	go test ./runtime/server/ -run '^$' -bench TopicLatency -benchtime 2000x
func BenchmarkTopicLatency(b *testing.B) {
	c := startCluster(b, 3)
	for i := range c.servers {
		waitReady(b, c, i)
	}
	if code, _, body := do(b, "POST", c.url(0, "/v1/aspen/topic/create"), `{"Name": "lat", "Partitions": 1}`); code != http.StatusOK {
		b.Fatalf("create: %d %s", code, body)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(node int, op string, req, v any) error {
		raw, _ := json.Marshal(req)
		resp, err := client.Post(c.url(node, "/v1/aspen/topic/"+op), "application/json", bytes.NewReader(raw))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d %s %v", op, resp.StatusCode, body, err)
		}
		return json.Unmarshal(body, v)
	}
	sent := make([]atomic.Int64, b.N) // UnixNano; the reader reads what the publisher wrote
	got := make([]time.Duration, 0, b.N)
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { // the reader: receipt times by offset
		from := uint64(0)
		for len(got) < b.N {
			var m TopicMessages
			if err := post(2, "read", TopicReadRequest{Topic: "lat", From: fmt.Sprint(from), WaitMs: 10_000}, &m); err != nil {
				done <- err
				return
			}
			now := time.Now()
			for _, msg := range m.Messages {
				got = append(got, time.Duration(now.UnixNano()-sent[msg.Offset].Load()))
			}
			from = m.Next
		}
		done <- nil
	}()
	for i := 0; i < b.N; i++ {
		sent[i].Store(time.Now().UnixNano())
		var p TopicPublished
		if err := post(0, "publish", TopicPublish{Topic: "lat", Messages: []TopicMessageIn{{Value: "x"}}}, &p); err != nil {
			b.Fatal(err)
		}
		if p.Messages[0].Offset != uint64(i) {
			b.Fatalf("publish %d went to offset %d", i, p.Messages[0].Offset)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	slices.Sort(got)
	b.ReportMetric(float64(got[len(got)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(got[len(got)*99/100].Microseconds())/1000, "p99-ms")
}
