package faultcheck

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Config shapes one run.
type Config struct {
	Addrs   []string // HTTP addresses (host:port) of the cluster's nodes
	Clients int      // concurrent clients, each with one op in flight
	Keys    int      // size of the key space
	// KeyPrefix names the keys KeyPrefix0 .. KeyPrefix<Keys-1>. The keys must
	// not exist yet: the model starts every key absent. The default is
	// "faultcheck-<random>-", fresh for each run.
	KeyPrefix string
	Duration  time.Duration // how long the load runs
	// OpTimeout bounds one client call; a write that runs out of it has an
	// unknown outcome.
	OpTimeout time.Duration
	// FinalReadTimeout bounds the retries of the reads made after the load.
	FinalReadTimeout time.Duration
	// Seed picks operations and keys; 0 picks one at random.
	Seed uint64
	// Logf, if set, hears about unknown outcomes and failed final reads.
	Logf func(format string, args ...any)
}

// Limits on a run's shape, so a mistyped flag cannot start a runaway.
const (
	clientsMax  = 1024
	keysMax     = 1 << 16
	opsMax      = 1 << 20 // ops one run may record (about 200 MB)
	errorPause  = 10 * time.Millisecond
	defaultWait = 10 * time.Second
)

func (c Config) validate() error {
	switch {
	case len(c.Addrs) == 0:
		return errors.New("no node addresses")
	case c.Clients < 1 || c.Clients > clientsMax:
		return fmt.Errorf("clients %d: want 1..%d", c.Clients, clientsMax)
	case c.Keys < 1 || c.Keys > keysMax:
		return fmt.Errorf("keys %d: want 1..%d", c.Keys, keysMax)
	case c.Duration <= 0:
		return fmt.Errorf("duration %v: want > 0", c.Duration)
	case c.OpTimeout <= 0:
		return fmt.Errorf("op timeout %v: want > 0", c.OpTimeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.KeyPrefix == "" {
		c.KeyPrefix = fmt.Sprintf("faultcheck-%08x-", rand.Uint32())
	}
	if c.FinalReadTimeout <= 0 {
		c.FinalReadTimeout = defaultWait
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64() | 1
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// Run drives cfg.Clients clients for cfg.Duration (or until ctx ends), then
// reads every key once more, and returns everything the clients saw. It fails
// only before the load: on a bad config, or keys that exist or cannot be read.
func Run(ctx context.Context, cfg Config) (*History, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg = cfg.withDefaults()
	r := newRecorder(cfg)
	defer r.kv.http.CloseIdleConnections()
	if err := r.checkFresh(ctx); err != nil {
		return nil, err
	}
	r.start = time.Now() // time 0 is the start of the load
	loadCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.newClient(i).run(loadCtx, ctx)
		}()
	}
	wg.Wait()
	r.finalReads(ctx)
	return r.history(), nil
}

// recorder owns the history while clients append to it.
type recorder struct {
	cfg         Config
	start       time.Time
	kv          kvClient
	keys        []string
	nextProcess atomic.Int64
	nextValue   atomic.Uint64

	mu     sync.Mutex
	ops    []Op
	unread []string
}

func newRecorder(cfg Config) *recorder {
	keys := make([]string, cfg.Keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%d", cfg.KeyPrefix, i)
	}
	// Each client has one request in flight; idle connections are kept so
	// that a request mostly reuses one instead of dialing.
	tr := &http.Transport{MaxIdleConnsPerHost: cfg.Clients, IdleConnTimeout: time.Minute}
	r := &recorder{cfg: cfg, start: time.Now(), kv: kvClient{http: &http.Client{Transport: tr}}, keys: keys}
	r.nextProcess.Store(int64(cfg.Clients))
	return r
}

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

// record appends op unless the run hit its op budget.
func (r *recorder) record(op Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ops) < opsMax {
		r.ops = append(r.ops, op)
	}
}

func (r *recorder) full() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops) >= opsMax
}

func (r *recorder) history() *History {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &History{Start: r.start, Seed: r.cfg.Seed, Keys: r.keys, Ops: r.ops, Unread: r.unread}
}

// uniqueValue names a write: no two writes carry the same value, so a value
// read identifies the one write that produced it.
func (r *recorder) uniqueValue(client int) string {
	return fmt.Sprintf("c%d-%d", client, r.nextValue.Add(1))
}

// finalReads reads every key after the load through every node (so a node
// that was restarted must serve what it recovered), retrying across nodes if
// none answered: these reads are what the durability check compares
// acknowledged writes with.
func (r *recorder) finalReads(ctx context.Context) {
	c := r.newClient(-1)
	for _, key := range r.keys {
		answered := false
		for i := range r.cfg.Addrs {
			c.addr = i
			_, ok := c.doGet(ctx, key)
			answered = answered || ok
		}
		if !answered && !c.finalRead(ctx, key) {
			r.mu.Lock()
			r.unread = append(r.unread, key)
			r.mu.Unlock()
		}
	}
}

// checkFresh makes sure no key exists yet, since the model starts every key
// absent; a reused prefix would otherwise read as a linearizability failure.
func (r *recorder) checkFresh(ctx context.Context) error {
	c := r.newChecker()
	for _, key := range r.keys {
		value, ok := c.readOnce(ctx, key)
		switch {
		case !ok:
			return fmt.Errorf("cannot read %s from any of %v: is the cluster up?", key, r.cfg.Addrs)
		case value != "":
			return fmt.Errorf("key %s already exists (%q): use a fresh key prefix", key, value)
		}
	}
	return nil
}
