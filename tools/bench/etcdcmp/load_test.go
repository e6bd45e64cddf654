package main

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		var ds []time.Duration
		for _, v := range vs {
			ds = append(ds, time.Duration(v)*time.Millisecond)
		}
		return ds
	}
	tests := []struct {
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{ms(7), 50, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %d): got %v, want %v", tt.sorted, tt.p, got, tt.want)
		}
	}
}

func TestStatOf(t *testing.T) {
	got := statOf([]float64{4, 1, 3, 2})
	want := stat{Median: 2.5, Min: 1, Max: 4, Sum: 10, N: 4}
	if got != want {
		t.Errorf("statOf: got %+v, want %+v", got, want)
	}
}

func TestSummaryRowsRatioWithinRound(t *testing.T) {
	l := standardLoads[0]
	results := []result{
		{System: "aspen", Load: l.Name, Round: 1, OpsPerSecond: 200},
		{System: "etcd", Load: l.Name, Round: 1, OpsPerSecond: 100},
		{System: "etcd", Load: l.Name, Round: 2, OpsPerSecond: 50},
		{System: "aspen", Load: l.Name, Round: 2, OpsPerSecond: 200},
	}
	rows := summaryRows([]load{l}, results)
	if got, want := rows[0].Ratio, (stat{Median: 3, Min: 2, Max: 4, Sum: 6, N: 2}); got != want {
		t.Errorf("ops/s ratio: got %+v, want %+v", got, want)
	}
	if got := rows[1].Ratio.N; got != 0 {
		t.Errorf("p50 ratio of zero latencies: got N %d, want 0", got)
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := count(n); got != want {
			t.Errorf("count(%d): got %q, want %q", n, got, want)
		}
	}
}

func TestReadMemoryOfSelf(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.VmRSSKB <= 0 || m.RssAnonKB <= 0 || m.RssAnonKB > m.VmRSSKB {
		t.Errorf("readMemory: got %+v, want 0 < RssAnon <= VmRSS", m)
	}
}

// fakeKV answers every put at once and fails every get of a key never put.
type fakeKV struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (f *fakeKV) put(_ context.Context, key string, value []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(value) != 256 {
		return errors.New("want 256-byte values")
	}
	f.keys[key] = true
	return nil
}

func (f *fakeKV) get(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.keys[key] {
		return errors.New("not found")
	}
	return nil
}

func (f *fakeKV) count(context.Context, string) (int64, error) { return int64(len(f.keys)), nil }
func (f *fakeKV) isLeader(context.Context) (bool, error)       { return true, nil }
func (f *fakeKV) close() error                                 { return nil }

func TestPreloadThenGetsFindEveryKey(t *testing.T) {
	kvs := []kvClient{&fakeKV{keys: map[string]bool{}}}
	if err := preload(context.Background(), kvs, 100, 8, 256); err != nil {
		t.Fatal(err)
	}
	if n, _ := kvs[0].count(context.Background(), keyPrefix); n != 100 {
		t.Fatalf("preload: got %d keys, want 100", n)
	}
	l := load{Op: "get", Clients: 4, Keys: 100, ValueBytes: 256, Duration: 20 * time.Millisecond}
	r := runLoad(context.Background(), kvs, l, 1)
	if r.Ops == 0 || r.Errors != 0 {
		t.Errorf("runLoad: got %d ops and %d errors (%s), want ops and no errors", r.Ops, r.Errors, r.FirstError)
	}
}

func TestParseFlagsRefusesUnknownLoad(t *testing.T) {
	if _, err := parseFlags([]string{"-loads", "put64,put9"}, os.Stderr); err == nil {
		t.Error("parseFlags -loads put9: got no error, want one")
	}
}

// readCPU reads the CPU time the kernel counts for a process: over a busy
// loop of 300 ms of this process's CPU (by getrusage), /proc/PID/stat's
// utime and stime must grow by as much, to their 10 ms steps.
func TestReadCPU(t *testing.T) {
	before, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for self0 := selfCPU(); selfCPU()-self0 < 300*time.Millisecond; {
	}
	got, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if burned := got.minus(before).total(); burned < 250*time.Millisecond || burned > time.Second {
		t.Fatalf("300 ms of CPU burned: /proc/self/stat grew %v", burned)
	}
}
