package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

const (
	// opTimeout ends one stuck request; it outlasts Aspen's own 10 s
	// deadline and etcd's request timeout, so the server's answer is what
	// gets counted.
	opTimeout = 15 * time.Second
	// samplesMax bounds the latencies one run records over all its
	// clients (8 bytes each); past it percentiles describe the first ones.
	samplesMax = 1 << 24
	// keyPrefix starts every key a load writes.
	keyPrefix = "bench/"
)

// load is the shape of one run.
type load struct {
	Name       string        `json:"name"`
	Op         string        `json:"op"` // put or get
	Clients    int           `json:"clients"`
	Keys       int           `json:"keys"`
	ValueBytes int           `json:"value_bytes"`
	Duration   time.Duration `json:"duration_ns"`
	// ToLeader sends every client to the leader instead of spreading the
	// clients over the nodes, so both systems serve the same path.
	ToLeader bool `json:"to_leader"`
}

// title is how the table names the load.
func (l load) title() string {
	s := fmt.Sprintf("%s, %d clients", l.Op, l.Clients)
	if l.Op == "get" {
		s = fmt.Sprintf("linearizable get, %d clients", l.Clients)
	}
	if l.Clients == 1 {
		s = l.Op + ", 1 client"
	}
	if l.ToLeader {
		s += " (leader)"
	}
	return s
}

// result is what one run of a load on one system measured.
type result struct {
	System       string  `json:"system"`
	Load         string  `json:"load"`
	Round        int     `json:"round"`
	Seconds      float64 `json:"seconds"` // from the start to the last answer
	Ops          uint64  `json:"ops"`
	Errors       uint64  `json:"errors"`
	OpsPerSecond float64 `json:"ops_per_second"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	FirstError   string  `json:"first_error,omitempty"`
	// CPU time per answered op: the three nodes' together, and the load
	// generator's (the client library's cost, which shares the machine).
	NodeCPUUsPerOp       float64 `json:"node_cpu_us_per_op"`
	NodeKernelCPUUsPerOp float64 `json:"node_kernel_cpu_us_per_op"` // of it, in the kernel
	ClientCPUUsPerOp     float64 `json:"client_cpu_us_per_op"`
}

// worker is one closed-loop client: one request in flight, the next sent
// when the last answer arrives.
type worker struct {
	kv         kvClient
	rng        *rand.Rand
	value      []byte
	samplesMax int
	latencies  []time.Duration
	ops        uint64
	errors     uint64
	firstErr   error
}

func (w *worker) run(ctx context.Context, l load, deadline time.Time) {
	for ctx.Err() == nil && time.Now().Before(deadline) {
		key := keyName(w.rng.IntN(l.Keys))
		t0 := time.Now()
		err := w.once(ctx, l.Op, key)
		took := time.Since(t0)
		if err != nil {
			if ctx.Err() != nil {
				return // interrupted: not the server's error
			}
			w.errors++
			if w.firstErr == nil {
				w.firstErr = err
			}
			continue
		}
		w.ops++
		if len(w.latencies) < w.samplesMax {
			w.latencies = append(w.latencies, took)
		}
	}
}

func (w *worker) once(ctx context.Context, op, key string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if op == "get" {
		return w.kv.get(ctx, key)
	}
	return w.kv.put(ctx, key, w.value)
}

func keyName(i int) string { return fmt.Sprintf("%s%08d", keyPrefix, i) }

// newWorkers deals the clients out over kvs round-robin. Each has a random
// value of its own, so that no store can compress or share them.
func newWorkers(kvs []kvClient, l load, seed uint64) []*worker {
	ws := make([]*worker, l.Clients)
	for i := range ws {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		value := make([]byte, l.ValueBytes)
		for j := range value {
			value[j] = byte(rng.Uint32())
		}
		ws[i] = &worker{kv: kvs[i%len(kvs)], rng: rng, value: value, samplesMax: samplesMax / l.Clients}
	}
	return ws
}

// runLoad runs every client until l.Duration has passed and merges what
// they recorded.
func runLoad(ctx context.Context, kvs []kvClient, l load, seed uint64) result {
	ws := newWorkers(kvs, l, seed)
	start := time.Now()
	deadline := start.Add(l.Duration)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.run(ctx, l, deadline) })
	}
	wg.Wait()
	return summarize(ws, time.Since(start))
}

// summarize merges the workers' counts and computes exact percentiles from
// every recorded sample.
func summarize(ws []*worker, took time.Duration) result {
	r := result{Seconds: took.Seconds()}
	var all []time.Duration
	for _, w := range ws {
		r.Ops += w.ops
		r.Errors += w.errors
		all = append(all, w.latencies...)
		if r.FirstError == "" && w.firstErr != nil {
			r.FirstError = w.firstErr.Error()
		}
	}
	if r.Seconds > 0 {
		r.OpsPerSecond = float64(r.Ops) / r.Seconds
	}
	if len(all) == 0 {
		return r
	}
	slices.Sort(all)
	r.P50Ms = millis(percentile(all, 50))
	r.P99Ms = millis(percentile(all, 99))
	r.MaxMs = millis(all[len(all)-1])
	return r
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile is the nearest-rank percentile of sorted samples: the smallest
// sample with at least p% of the samples at or below it.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (len(sorted)*p + 99) / 100
	return sorted[max(rank, 1)-1]
}

// preload writes keys 0 to n-1 once each, dealt out over conns clients
// spread over kvs; the first failure stops it, since reads of missing keys
// would measure nothing.
func preload(ctx context.Context, kvs []kvClient, n, conns, valueBytes int) error {
	ws := newWorkers(kvs, load{Op: "put", Clients: conns, Keys: n, ValueBytes: valueBytes}, 1)
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() {
			for k := i; k < n && errs[i] == nil && ctx.Err() == nil; k += len(ws) {
				errs[i] = w.once(ctx, "put", keyName(k))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("preload %d keys: %w", n, err)
		}
	}
	return ctx.Err()
}
