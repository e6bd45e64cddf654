//go:build linux

package faultcheck_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/aspen-db/aspen/runtime/worker/hooksig"
)

// The shape of the hook run: a 3-process cluster whose nodes each run a
// worker pool; an http hook to a receiver in this process and a shell hook
// whose script appends the event on its stdin to a file, both on every
// key under load/; hookPuts puts, with the leader kill -9ed (and restarted
// after hookDowntime) when the puts are a third and two thirds done. The
// contract: every put's change reaches both handlers, every delivery job's
// idempotency key arrives at least once, every signature verifies. Beside
// them, a hook whose receiver answers 400 fails after one attempt, and one
// whose receiver answers 503 is retried with backoff until it is dead.
//
// Hooks are created through POST /v1/aspen/hook/create (runtime/server's
// hook API, written beside this test): while that endpoint is missing the
// test fails at the create, loudly.
const (
	hookNodes        = 3
	hookTickMs       = 50
	hookPuts         = 1000
	hookDowntime     = 2 * time.Second
	hookAttemptsMax  = 3
	hookLeaseMs      = 3000 // a delivery leased by a killed node's pool runs again after this
	hookBackoffMs    = 200  // the 503 hook's first backoff, doubling to hookBackoffMaxMs
	hookBackoffMaxMs = 800
	hookParallel     = 16
	hookConcurrency  = 8 // each node's pool
	hookPollMs       = 50
	hookSettle       = 90 * time.Second // after the last put, for every delivery to finish
	hookCallTime     = 3 * time.Second
	hookTestBudget   = 4 * time.Minute
)

func TestHooksThroughLeaderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process cluster with worker pools and kill -9s its leader twice")
	}
	bin, dir := buildAspen(t), artifactsDir(t)
	w := newHookWorld(t, bin, dir)
	c := startProcClusterWith(t, bin, dir, hookNodes, hookTickMs, w.nodeConfig)
	ctx, cancel := context.WithTimeout(context.Background(), hookTestBudget)
	defer cancel()
	if _, err := c.leader(ctx, 15*time.Second, true); err != nil {
		t.Fatalf("cluster start: %v (logs in %s)", err, dir)
	}
	addrs := c.httpAddrs()
	w.createToken(ctx, t, addrs[0])
	w.createHooks(ctx, t, addrs)

	var done atomic.Int64
	faults := make(chan []fault, 1)
	go func() {
		var fs []fault
		for _, at := range []int64{hookPuts / 3, 2 * hookPuts / 3} {
			for done.Load() < at && ctx.Err() == nil {
				wait(ctx, 10*time.Millisecond)
			}
			fs = append(fs, c.killLeaderThenRestart(ctx, 0, hookDowntime))
		}
		faults <- fs
	}()
	start := time.Now()
	for i := range hookPuts {
		putAny(ctx, t, addrs, fmt.Sprintf("load/%04d", i), fmt.Sprintf("v%d", i))
		done.Add(1)
	}
	putAny(ctx, t, addrs, "bad/1", "x")
	putAny(ctx, t, addrs, "busy/1", "x")
	t.Logf("%d puts in %v", hookPuts, time.Since(start).Round(time.Millisecond))
	for _, f := range <-faults {
		if f.err != nil {
			t.Fatalf("fault injection: %v", f.err)
		}
		t.Logf("leader node %d killed %v in, restarted %v in", f.leader, f.killed.Sub(start).Round(time.Millisecond), f.restarted.Sub(start).Round(time.Millisecond))
	}

	httpJobs := waitHookJobs(ctx, t, addrs, "http-all", hookPuts, "succeeded")
	shellJobs := waitHookJobs(ctx, t, addrs, "shell-all", hookPuts, "succeeded")
	t.Logf("all %d deliveries of each hook succeeded %v after the first put", len(httpJobs), time.Since(start).Round(time.Millisecond))
	w.rc.wantEvery(t, "/ok", httpJobs)
	wantEveryKey(t, "http receiver", w.rc.keysAt("/ok"))
	shellSeen := w.readShellEvents(t)
	wantEveryKey(t, "shell hook's file", shellSeen)
	for _, j := range shellJobs {
		if shellSeen[j.Key] == 0 {
			t.Errorf("shell hook: delivery %s (job %d) never reached the script", j.Key, j.ID)
		}
	}
	if n := w.rc.badSignatures.Load(); n != 0 {
		t.Errorf("%d requests failed their signature check", n)
	}

	bad := waitHookJobs(ctx, t, addrs, "bad", 1, "failed")[0]
	if got := w.rc.requestsAt("/bad"); bad.Attempts != 1 || len(got) != 1 {
		t.Errorf("400 hook: %d attempts, %d requests; want one of each (no retry)", bad.Attempts, len(got))
	}
	busy := waitHookJobs(ctx, t, addrs, "busy", 1, "dead")[0]
	got := w.rc.requestsAt("/busy")
	if busy.Attempts != hookAttemptsMax || len(got) != hookAttemptsMax {
		t.Errorf("503 hook: %d attempts, %d requests; want %d of each (retried until dead)", busy.Attempts, len(got), hookAttemptsMax)
	}
	var gaps []string
	for i := 1; i < len(got); i++ {
		gaps = append(gaps, got[i].at.Sub(got[i-1].at).Round(time.Millisecond).String())
		if got[i].key != busy.Key {
			t.Errorf("503 hook: request %d has key %q, want %q on every attempt", i+1, got[i].key, busy.Key)
		}
	}
	t.Logf("503 hook: dead after %d attempts, gaps between them %v (backoff %d ms doubling to %d ms, jittered into the upper half)",
		busy.Attempts, gaps, hookBackoffMs, hookBackoffMaxMs)
}

// hookWorld is what the test sets up beside the cluster: the cluster key,
// the shell hook's script, the file it appends to, the token that allows
// it, and the http receiver.
type hookWorld struct {
	shellWorld
	events string
	secret []byte
	rc     *hookReceiver
}

// hookScript appends the event on its stdin (one line of JSON) to $1.
const hookScript = `#!/bin/sh
cat >> "$1"
`

func newHookWorld(t *testing.T, bin, dir string) *hookWorld {
	t.Helper()
	w := &hookWorld{shellWorld: newShellWorld(t, bin, dir, "on-change.sh", hookScript, "hook.token", hookConcurrency, hookPollMs),
		secret: []byte("whsec-faultcheck")}
	w.events = filepath.Join(w.work, "events.jsonl")
	w.rc = newHookReceiver(t, w.secret)
	return w
}

// createHooks creates the four hooks; a missing endpoint fails the test.
func (w *hookWorld) createHooks(ctx context.Context, t *testing.T, addrs []string) {
	t.Helper()
	tok, err := os.ReadFile(w.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	httpHook := func(name, pattern, path string) server.HookRequest {
		return server.HookRequest{Name: name, Pattern: pattern, Handler: hooks.HandlerHTTP, URL: w.rc.URL + path, Secret: string(w.secret)}
	}
	defs := []server.HookRequest{
		httpHook("http-all", "load/", "/ok"),
		{Name: "shell-all", Pattern: "load/", Handler: hooks.HandlerShell, ShellCommand: server.ShellCommand{Argv: []string{w.script, w.events},
			Dir: w.work, Capability: strings.TrimSpace(string(tok))}},
		httpHook("bad", "bad/", "/bad"),
		httpHook("busy", "busy/", "/busy"),
	}
	for _, d := range defs {
		d.Mode, d.Parallel = hooks.Parallel, hookParallel
		d.MaxAttempts, d.TimeoutMs, d.BackoffMs, d.BackoffMaxMs = hookAttemptsMax, hookLeaseMs, hookBackoffMs, hookBackoffMaxMs
		var answer json.RawMessage
		err := pollUntilEach(ctx, 15*time.Second, hookCallTime, func(ctx context.Context) error {
			code, err := postJSON(ctx, addrs[0], "/v1/aspen/hook/create", d, &answer)
			if code >= 400 && code < 500 {
				t.Fatalf("create hook %s: %v ", d.Name, err)
			}
			return err
		})
		if err != nil {
			t.Fatalf("create hook %s: %v", d.Name, err)
		}
	}
}

// putAny writes key through the first node that takes it, retrying through
// elections. A put retried after an answer was lost may be applied twice:
// two revisions, two deliveries, both checked like any other.
func putAny(ctx context.Context, t *testing.T, addrs []string, key, value string) {
	t.Helper()
	err := pollUntilEach(ctx, 30*time.Second, hookCallTime, func(ctx context.Context) error {
		var errs []string
		for _, addr := range addrs {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+addr+"/v1/kv/"+key, strings.NewReader(value))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			errs = append(errs, fmt.Sprintf("%s: %s", addr, resp.Status))
		}
		return fmt.Errorf("put %s: %s", key, strings.Join(errs, "; "))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitHookJobs waits for hook name's delivery jobs to number at least n
// and all be in state, and returns them.
func waitHookJobs(ctx context.Context, t *testing.T, addrs []string, name string, n int, state string) []server.JobInfo {
	t.Helper()
	var js []server.JobInfo
	err := pollUntilEach(ctx, hookSettle, 5*hookCallTime, func(ctx context.Context) error {
		var err error
		if js, err = jobsKeyed(ctx, addrs, name+":"); err != nil {
			return err
		}
		byState := map[string]int{}
		for _, j := range js {
			byState[j.State]++
		}
		if len(js) < n || byState[state] != len(js) {
			return fmt.Errorf("jobs by state %v; want at least %d, all %s", byState, n, state)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("hook %s's deliveries: %v", name, err)
	}
	return js
}

// jobsKeyed lists the jobs whose key starts with prefix, in every state.
func jobsKeyed(ctx context.Context, addrs []string, prefix string) ([]server.JobInfo, error) {
	var out []server.JobInfo
	for _, state := range jobStates {
		after := uint64(0)
		for range 1000 { // pages: far more than a run creates
			var page server.JobList
			if err := callAny(ctx, addrs, "/v1/aspen/job/list", server.JobRequest{State: state, After: after}, &page); err != nil {
				return nil, fmt.Errorf("list %s jobs: %w", state, err)
			}
			for _, j := range page.Jobs {
				if strings.HasPrefix(j.Key, prefix) {
					out = append(out, j)
				}
			}
			if after = page.Next; after == 0 {
				break
			}
		}
	}
	return out, nil
}

// readShellEvents counts the events the script appended, by idempotency key.
func (w *hookWorld) readShellEvents(t *testing.T) map[string]int {
	t.Helper()
	f, err := os.Open(w.events)
	if err != nil {
		t.Fatalf("the shell hook's file: %v", err)
	}
	defer f.Close()
	seen := map[string]int{}
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var e hooks.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: line %q: %v", w.events, sc.Text(), err)
		}
		seen[e.IdempotencyKey]++
	}
	return seen
}

// wantEveryKey checks every put key has a delivery among seen (keyed
// hook:revision:key), and logs how many arrived more than once.
func wantEveryKey(t *testing.T, where string, seen map[string]int) {
	t.Helper()
	byKey := map[string]bool{}
	repeats, resyncs := 0, 0
	for idem, n := range seen {
		if strings.Contains(idem, ":resync:") {
			resyncs++
		}
		if n > 1 {
			repeats++
		}
		parts := strings.SplitN(idem, ":", 3)
		if len(parts) == 3 {
			byKey[parts[2]] = true
		}
	}
	var missing []string
	for i := range hookPuts {
		if k := fmt.Sprintf("load/%04d", i); !byKey[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 || resyncs > 0 {
		t.Errorf("%s: %d of %d put keys never delivered (%v), %d resync deliveries (a hook lagged); want every change one by one",
			where, len(missing), hookPuts, missing[:min(len(missing), 10)], resyncs)
	}
	t.Logf("%s: %d deliveries seen, %d of them more than once", where, len(seen), repeats)
}

// hookReceiver is the http hooks' receiver: it verifies every request's
// signature and timestamp as a receiver must, records it by path, and
// answers 200 on /ok, 400 on /bad and 503 on /busy.
type hookReceiver struct {
	*httptest.Server
	secret        []byte
	badSignatures atomic.Int64

	mu  sync.Mutex
	got map[string][]hookRequest
}

type hookRequest struct {
	key string
	at  time.Time
}

func newHookReceiver(t *testing.T, secret []byte) *hookReceiver {
	rc := &hookReceiver{secret: secret, got: map[string][]hookRequest{}}
	answers := map[string]int{"/ok": http.StatusOK, "/bad": http.StatusBadRequest, "/busy": http.StatusServiceUnavailable}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := hooksig.Verify(rc.secret, r.Header.Get(hooksig.HeaderTimestamp), r.Header.Get(hooksig.HeaderSignature), body, time.Now(), hooksig.ToleranceDefault); err != nil {
			rc.badSignatures.Add(1)
			t.Errorf("%s %s: %v", r.URL.Path, r.Header.Get(hooksig.HeaderIdempotencyKey), err)
		}
		var e hooks.Event
		if err := json.Unmarshal(body, &e); err != nil || e.IdempotencyKey != r.Header.Get(hooksig.HeaderIdempotencyKey) {
			t.Errorf("%s: body %q (%v): want the event, keyed as its header %q", r.URL.Path, body, err, r.Header.Get(hooksig.HeaderIdempotencyKey))
		}
		rc.mu.Lock()
		rc.got[r.URL.Path] = append(rc.got[r.URL.Path], hookRequest{key: e.IdempotencyKey, at: time.Now()})
		rc.mu.Unlock()
		w.WriteHeader(answers[r.URL.Path])
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *hookReceiver) requestsAt(path string) []hookRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hookRequest(nil), rc.got[path]...)
}

func (rc *hookReceiver) keysAt(path string) map[string]int {
	seen := map[string]int{}
	for _, r := range rc.requestsAt(path) {
		seen[r.key]++
	}
	return seen
}

// wantEvery checks every job's key arrived at path at least once.
func (rc *hookReceiver) wantEvery(t *testing.T, path string, js []server.JobInfo) {
	t.Helper()
	seen := rc.keysAt(path)
	for _, j := range js {
		if seen[j.Key] == 0 {
			t.Errorf("http hook: delivery %s (job %d) succeeded but never reached the receiver", j.Key, j.ID)
		}
	}
}
