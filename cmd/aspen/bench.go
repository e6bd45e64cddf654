package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
)

// Limits on the load shape, so that a typo cannot ask for a terabyte.
const (
	benchClientsMax    = 4096
	benchValueBytesMax = 16 << 20
	benchKeysMax       = 10_000_000
	// benchSamplesMax bounds recorded latencies over all clients (8 bytes
	// each); past it the percentiles describe the first benchSamplesMax ops.
	benchSamplesMax = 1 << 24
	// benchOpTimeout ends one stuck request; it outlasts Aspen's own 10 s
	// deadline so that the server's answer is what gets counted.
	benchOpTimeout = 15 * time.Second

	etcdDefaultAddr = "127.0.0.1:2379"
)

// benchConfig is the load shape.
type benchConfig struct {
	Target     string        `json:"target"`
	Mode       string        `json:"mode"`
	Addrs      []string      `json:"addrs"`
	Clients    int           `json:"clients"`
	ValueBytes int           `json:"value_bytes"`
	Keys       int           `json:"keys"`
	Duration   time.Duration `json:"-"`
}

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load a running cluster with closed-loop clients and report throughput and latency",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mode", Usage: "put, get (keys preloaded first) or mixed (50/50, keys preloaded)", Value: "put"},
			&cli.IntFlag{Name: "clients", Usage: "concurrent clients, each with one request in flight", Value: 64},
			&cli.IntFlag{Name: "value-size", Usage: "bytes per value", Value: 256},
			&cli.IntFlag{Name: "keys", Usage: "distinct keys, chosen uniformly", Value: 10000},
			&cli.DurationFlag{Name: "duration", Usage: "how long to measure", Value: 10 * time.Second},
			&cli.StringFlag{Name: "addrs", Aliases: []string{"addr"}, Usage: "comma-separated HTTP addresses; clients are spread over them (default: $" + addrEnv + " or " + defaultAddr + "; " + etcdDefaultAddr + " for etcd)"},
			&cli.StringFlag{Name: "target", Usage: "aspen, or etcd (v3 JSON gateway) for comparison", Value: "aspen"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		OnUsageError: onUsageError,
		Action:       runBench,
	}
}

func runBench(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := benchConfigFrom(c)
	if err != nil {
		return usageError("%v", err)
	}
	rep, err := runLoad(c.Context, cfg)
	if err != nil {
		return failure("bench: %v", err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, rep)
	}
	printBenchReport(c.App.Writer, rep)
	return nil
}

func benchConfigFrom(c *cli.Context) (benchConfig, error) {
	cfg := benchConfig{
		Target: c.String("target"), Mode: c.String("mode"), Clients: c.Int("clients"),
		ValueBytes: c.Int("value-size"), Keys: c.Int("keys"), Duration: c.Duration("duration"),
	}
	cfg.Addrs = benchAddrs(c.String("addrs"), cfg.Target)
	switch {
	case cfg.Mode != "put" && cfg.Mode != "get" && cfg.Mode != "mixed":
		return cfg, fmt.Errorf("--mode %q: want put, get or mixed", cfg.Mode)
	case cfg.Target != "aspen" && cfg.Target != "etcd":
		return cfg, fmt.Errorf("--target %q: want aspen or etcd", cfg.Target)
	case cfg.Clients < 1 || cfg.Clients > benchClientsMax:
		return cfg, fmt.Errorf("--clients %d: want 1 to %d", cfg.Clients, benchClientsMax)
	case cfg.ValueBytes < 0 || cfg.ValueBytes > benchValueBytesMax:
		return cfg, fmt.Errorf("--value-size %d: want 0 to %d", cfg.ValueBytes, benchValueBytesMax)
	case cfg.Keys < 1 || cfg.Keys > benchKeysMax:
		return cfg, fmt.Errorf("--keys %d: want 1 to %d", cfg.Keys, benchKeysMax)
	case cfg.Duration <= 0:
		return cfg, fmt.Errorf("--duration %s: want more than zero", cfg.Duration)
	case len(cfg.Addrs) == 0:
		return cfg, fmt.Errorf("--addrs %q names no address", c.String("addrs"))
	}
	return cfg, nil
}

func benchAddrs(flag, target string) []string {
	if flag == "" {
		flag = os.Getenv(addrEnv)
		if target == "etcd" || flag == "" {
			flag = map[string]string{"aspen": defaultAddr, "etcd": etcdDefaultAddr}[target]
		}
	}
	var addrs []string
	for _, a := range strings.Split(flag, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// benchStore builds the two requests a target understands. Both targets go
// through the same HTTP client, so client costs cancel out in a comparison.
type benchStore interface {
	put(base, key string) (*http.Request, error)
	get(base, key string) (*http.Request, error)
}

// aspenStore speaks Consul's KV API; gets are linearizable (no ?stale).
type aspenStore struct{ value []byte }

func (s aspenStore) put(base, key string) (*http.Request, error) {
	return http.NewRequest(http.MethodPut, base+"/v1/kv/"+key, bytes.NewReader(s.value))
}

func (s aspenStore) get(base, key string) (*http.Request, error) {
	return http.NewRequest(http.MethodGet, base+"/v1/kv/"+key, nil)
}

// etcdStore speaks etcd v3's JSON gateway; its ranges are linearizable by
// default, so the two stores are asked for the same guarantee.
type etcdStore struct{ value64 string }

func (s etcdStore) put(base, key string) (*http.Request, error) {
	body := `{"key":"` + base64.StdEncoding.EncodeToString([]byte(key)) + `","value":"` + s.value64 + `"}`
	return http.NewRequest(http.MethodPost, base+"/v3/kv/put", strings.NewReader(body))
}

func (s etcdStore) get(base, key string) (*http.Request, error) {
	body := `{"key":"` + base64.StdEncoding.EncodeToString([]byte(key)) + `"}`
	return http.NewRequest(http.MethodPost, base+"/v3/kv/range", strings.NewReader(body))
}

func newBenchStore(cfg benchConfig) benchStore {
	value := bytes.Repeat([]byte("v"), cfg.ValueBytes)
	if cfg.Target == "etcd" {
		return etcdStore{value64: base64.StdEncoding.EncodeToString(value)}
	}
	return aspenStore{value: value}
}

// benchHTTPClient is shared by all clients. Idle connections per host must
// cover every client: with Go's default of 2, most clients would dial a new
// connection per request and the run would measure TCP setup instead.
func benchHTTPClient(clients int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no overall limit
		MaxIdleConnsPerHost: clients,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: benchOpTimeout}
}

// benchClient is one closed-loop client: one request in flight, the next
// sent when the last answer arrives.
type benchClient struct {
	hc         *http.Client
	base       string
	store      benchStore
	rng        *rand.Rand
	samplesMax int
	latencies  []time.Duration
	ops        uint64
	errors     uint64
	firstErr   error
}

func (b *benchClient) run(cfg benchConfig, keys []string, deadline time.Time) {
	for time.Now().Before(deadline) {
		key := keys[b.rng.IntN(len(keys))]
		get := cfg.Mode == "get" || cfg.Mode == "mixed" && b.rng.IntN(2) == 0
		t0 := time.Now()
		err := b.once(key, get)
		took := time.Since(t0)
		if err != nil {
			b.errors++
			b.firstErr = firstOf(b.firstErr, err)
			continue
		}
		b.ops++
		if len(b.latencies) < b.samplesMax {
			b.latencies = append(b.latencies, took)
		}
	}
}

// once sends one request and reads the whole answer, so that the connection
// goes back to the pool for the next one.
func (b *benchClient) once(key string, get bool) error {
	newReq := b.store.put
	if get {
		newReq = b.store.get
	}
	req, err := newReq(b.base, key)
	if err != nil {
		return err
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, benchValueBytesMax*2))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s answered %d: %s", req.Method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(body[:min(len(body), 200)]))
	}
	return nil
}

func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// benchReport is what a run measured.
type benchReport struct {
	benchConfig
	RequestedSeconds float64 `json:"requested_seconds"`
	DurationSeconds  float64 `json:"duration_seconds"` // measured, from start to the last answer
	PreloadSeconds   float64 `json:"preload_seconds,omitempty"`
	Ops              uint64  `json:"ops"`
	Errors           uint64  `json:"errors"`
	OpsPerSecond     float64 `json:"ops_per_second"`
	LatencyP50Ms     float64 `json:"latency_p50_ms"`
	LatencyP99Ms     float64 `json:"latency_p99_ms"`
	LatencyMaxMs     float64 `json:"latency_max_ms"`
	Samples          int     `json:"samples"`
	FirstError       string  `json:"first_error,omitempty"`
}

// runLoad preloads the keys when reads need them, then runs every client
// until the deadline and merges what they recorded.
func runLoad(ctx context.Context, cfg benchConfig) (benchReport, error) {
	keys := benchKeys(cfg.Keys)
	clients := newBenchClients(cfg)
	rep := benchReport{benchConfig: cfg, RequestedSeconds: cfg.Duration.Seconds()}
	if cfg.Mode != "put" {
		t0 := time.Now()
		if err := preload(clients, keys); err != nil {
			return rep, fmt.Errorf("preload %d keys: %w", len(keys), err)
		}
		rep.PreloadSeconds = time.Since(t0).Seconds()
	}
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var wg sync.WaitGroup
	for _, b := range clients {
		wg.Go(func() { b.run(cfg, keys, deadline) })
	}
	wg.Wait()
	rep.DurationSeconds = time.Since(start).Seconds()
	summarize(&rep, clients)
	if rep.Ops == 0 && rep.FirstError != "" {
		return rep, fmt.Errorf("no request succeeded: %s", rep.FirstError)
	}
	return rep, nil
}

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench/%08d", i)
	}
	return keys
}

// newBenchClients spreads the clients over the addresses round-robin.
func newBenchClients(cfg benchConfig) []*benchClient {
	hc := benchHTTPClient(cfg.Clients)
	store := newBenchStore(cfg)
	clients := make([]*benchClient, cfg.Clients)
	for i := range clients {
		clients[i] = &benchClient{
			hc: hc, base: baseURL(cfg.Addrs[i%len(cfg.Addrs)]), store: store,
			rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))), samplesMax: benchSamplesMax / cfg.Clients,
		}
	}
	return clients
}

// preload writes every key once, the keys dealt out over the clients; the
// first failure stops it, since reads of missing keys would measure nothing.
func preload(clients []*benchClient, keys []string) error {
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, b := range clients {
		wg.Go(func() {
			for k := i; k < len(keys) && errs[i] == nil; k += len(clients) {
				errs[i] = b.once(keys[k], false)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// summarize merges the clients' counts and computes exact percentiles from
// every recorded sample.
func summarize(rep *benchReport, clients []*benchClient) {
	var all []time.Duration
	for _, b := range clients {
		rep.Ops += b.ops
		rep.Errors += b.errors
		all = append(all, b.latencies...)
		if rep.FirstError == "" && b.firstErr != nil {
			rep.FirstError = b.firstErr.Error()
		}
	}
	rep.OpsPerSecond = float64(rep.Ops) / rep.DurationSeconds
	rep.Samples = len(all)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rep.LatencyP50Ms = ms(percentile(all, 50))
	rep.LatencyP99Ms = ms(percentile(all, 99))
	rep.LatencyMaxMs = ms(all[len(all)-1])
}

// percentile is the nearest-rank percentile of sorted samples: the smallest
// sample with at least p% of the samples at or below it.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (len(sorted)*p + 99) / 100
	return sorted[max(rank, 1)-1]
}

func printBenchReport(w io.Writer, rep benchReport) {
	fmt.Fprintf(w, "%s %s: %d clients over %d address(es) (%s), %d-byte values, %d keys, %s\n",
		rep.Target, rep.Mode, rep.Clients, len(rep.Addrs), strings.Join(rep.Addrs, ", "), rep.ValueBytes, rep.Keys, rep.Duration)
	if rep.PreloadSeconds > 0 {
		fmt.Fprintf(w, "  preload   %d keys in %.1fs\n", rep.Keys, rep.PreloadSeconds)
	}
	fmt.Fprintf(w, "  ops/s     %.0f  (%d ops in %.2fs)\n", rep.OpsPerSecond, rep.Ops, rep.DurationSeconds)
	fmt.Fprintf(w, "  errors    %d\n", rep.Errors)
	fmt.Fprintf(w, "  latency   p50 %.2fms  p99 %.2fms  max %.2fms  (%d samples)\n", rep.LatencyP50Ms, rep.LatencyP99Ms, rep.LatencyMaxMs, rep.Samples)
	if rep.FirstError != "" {
		fmt.Fprintf(w, "  first error: %s\n", rep.FirstError)
	}
}
