package worker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/aspen-db/aspen/runtime/server/servertest"
	"github.com/aspen-db/aspen/runtime/worker/hooksig"
	"github.com/aspen-db/aspen/runtime/worker/shell"
	"github.com/prometheus/client_golang/prometheus"
)

// hookRig is a rig whose node is at hand, to create hooks through its Go
// API: the hooks module's own command, as the HTTP API sends it.
type hookRig struct {
	*rig
	s *server.Server
}

func newHookRig(t *testing.T) *hookRig {
	s := servertest.StartOne(t)
	return &hookRig{rig: newRig(t, s), s: s}
}

// create adds a hook with the test's usual limits unless d sets them.
func (r *hookRig) create(d hooks.Def) {
	r.t.Helper()
	if d.Mode == "" {
		d.Mode, d.Parallel = hooks.Parallel, 4
	}
	if d.AttemptsMax == 0 {
		d.AttemptsMax = 3
	}
	if d.TimeoutNs == 0 {
		d.TimeoutNs = int64(2 * time.Second)
	}
	if d.BackoffBaseNs == 0 {
		d.BackoffBaseNs, d.BackoffMaxNs = int64(50*time.Millisecond), int64(200*time.Millisecond)
	}
	if _, err := r.s.Call(r.t.Context(), hooks.Create(d)); err != nil {
		r.t.Fatalf("create hook %s: %v", d.Name, err)
	}
}

// httpHook is an http hook on pattern to url signing with secret, sealed
// under sealKey (the cluster's, unless a test wants it wrong).
func (r *hookRig) httpHook(name, pattern, url string, secret, sealKey []byte) hooks.Def {
	r.t.Helper()
	sealed, err := token.Seal(sealKey, secret)
	if err != nil {
		r.t.Fatal(err)
	}
	return hooks.Def{Name: name, Pattern: pattern, Handler: hooks.Handler{Kind: hooks.HandlerHTTP, URL: url, Secret: sealed}}
}

func (r *hookRig) put(key, value string) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+r.addr+"/v1/kv/"+key, strings.NewReader(value))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("put %s: %v", key, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.t.Fatalf("put %s: %d", key, resp.StatusCode)
	}
}

// hookJobs lists the delivery jobs of hook name, in every state.
func (r *hookRig) hookJobs(name string) []server.JobInfo {
	r.t.Helper()
	var out []server.JobInfo
	for _, state := range []string{"pending", "leased", "succeeded", "failed", "dead", "cancelled"} {
		var l server.JobList
		if code, body := r.post("/v1/aspen/job/list", server.JobRequest{State: state}, &l); code != http.StatusOK {
			r.t.Fatalf("list %s jobs: %d %s", state, code, body)
		}
		for _, j := range l.Jobs {
			if strings.HasPrefix(j.Key, name+":") {
				out = append(out, j)
			}
		}
	}
	return out
}

// waitHookJob waits for the one delivery job of hook name to reach state.
func (r *hookRig) waitHookJob(name, state string) server.JobInfo {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		js := r.hookJobs(name)
		if len(js) == 1 && js[0].State == state {
			return r.job(js[0].ID)
		}
		if len(js) == 1 && finished[js[0].State] {
			r.t.Fatalf("hook %s's job: %+v, want it %s", name, js[0], state)
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("hook %s's jobs: %+v after 20 s, want one %s", name, js, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finished are the states a job does not leave on its own.
var finished = map[string]bool{"succeeded": true, "failed": true, "dead": true, "cancelled": true}

// delivery is one request a receiver got.
type delivery struct {
	hook, idemKey, attempt string
	event                  hooks.Event
	sigErr                 error
	at                     time.Time
}

// receiver is an HTTP hook receiver that verifies each request as a
// receiver must, records it, and answers what answer says for the nth
// request (from 1).
type receiver struct {
	*httptest.Server
	secret []byte
	answer func(n int, w http.ResponseWriter, r *http.Request)

	mu  sync.Mutex
	got []delivery
}

func newReceiver(t *testing.T, secret []byte, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{secret: secret, answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := delivery{hook: r.Header.Get(hooksig.HeaderHook), idemKey: r.Header.Get(hooksig.HeaderIdempotencyKey),
			attempt: r.Header.Get(hooksig.HeaderAttempt), at: time.Now(),
			sigErr: hooksig.Verify(rc.secret, r.Header.Get(hooksig.HeaderTimestamp), r.Header.Get(hooksig.HeaderSignature), body, time.Now(), hooksig.ToleranceDefault)}
		if err := json.Unmarshal(body, &d.event); err != nil {
			d.sigErr = fmt.Errorf("body %q: %v", body, err)
		}
		rc.mu.Lock()
		rc.got = append(rc.got, d)
		n := len(rc.got)
		rc.mu.Unlock()
		rc.answer(n, w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// A put matching an http hook reaches the receiver once, as the event
// JSON with a signature that verifies under the hook's secret, the
// idempotency key hook:revision:key in a header and the body; a put
// outside the pattern fires nothing. The pool times the handler.
func TestHookHTTPDeliversSigned(t *testing.T) {
	r := newHookRig(t)
	secret := []byte("whsec-test")
	rc := newReceiver(t, secret, status(http.StatusNoContent))
	reg := prometheus.NewRegistry()
	r.startPool(shell.Config{}, reg)
	r.create(r.httpHook("orders", "orders/", rc.URL, secret, r.key))
	r.put("other/x", "ignored")
	r.put("orders/1", "paid")

	j := r.waitHookJob("orders", "succeeded")
	got := rc.deliveries()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests, want 1: %+v", len(got), got)
	}
	d := got[0]
	wantKey := fmt.Sprintf("orders:%d:orders/1", d.event.Revision)
	if d.sigErr != nil || d.hook != "orders" || d.idemKey != wantKey || d.event.IdempotencyKey != wantKey || j.Key != wantKey || d.attempt != "1" {
		t.Errorf("delivery: signature %v, hook %q, key header %q, event key %q, job key %q, attempt %s; want a valid signature, orders, %s everywhere, attempt 1",
			d.sigErr, d.hook, d.idemKey, d.event.IdempotencyKey, j.Key, d.attempt, wantKey)
	}
	if e := d.event; e.Kind != hooks.KindPut || e.Key != "orders/1" || string(e.Value) != "paid" || e.Hook != "orders" {
		t.Errorf("event %+v: want a put of orders/1 = paid", e)
	}
	if n := histogramCount(t, reg, "aspen_worker_job_seconds", HookHTTPType); n != 1 {
		t.Errorf("aspen_worker_job_seconds{type=%s} count %d, want 1", HookHTTPType, n)
	}
}

// histogramCount reads the sample count of histogram name{type=typ}.
func histogramCount(t *testing.T, reg *prometheus.Registry, name, typ string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == typ {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

// The receiver's answer decides each attempt: 4xx and 3xx fail the
// delivery at once, for good; 503 and 429 are retried after the backoff
// until they succeed or the attempts run out (dead); an answer that does
// not come within half the lease is retried too; a secret that does not
// open under the worker's key is refused before anything is sent.
func TestHookHTTPAnswers(t *testing.T) {
	r := newHookRig(t)
	secret := []byte("whsec-answers")
	r.startPool(shell.Config{}, nil)
	hang := func(n int, w http.ResponseWriter, req *http.Request) {
		if n == 1 {
			<-req.Context().Done() // the worker gives up on it
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	cases := []struct {
		name     string
		answer   func(int, http.ResponseWriter, *http.Request)
		sealKey  []byte
		state    string
		attempts int64
		requests int
		reason   string
	}{
		{"bad-request", status(http.StatusBadRequest), r.key, "failed", 1, 1, "400 Bad Request"},
		{"redirect", func(_ int, w http.ResponseWriter, req *http.Request) {
			http.Redirect(w, req, "/elsewhere", http.StatusFound)
		}, r.key, "failed", 1, 1, "302 Found"},
		{"unavailable-then-ok", func(n int, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(map[bool]int{true: http.StatusServiceUnavailable, false: http.StatusOK}[n < 3])
		}, r.key, "succeeded", 3, 3, ""},
		{"too-many-then-ok", func(n int, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(map[bool]int{true: http.StatusTooManyRequests, false: http.StatusOK}[n < 2])
		}, r.key, "succeeded", 2, 2, ""},
		{"always-unavailable", status(http.StatusServiceUnavailable), r.key, "dead", 3, 3, "503 Service Unavailable"},
		{"hangs-once", hang, r.key, "succeeded", 2, 2, ""},
		{"wrong-key", status(http.StatusOK), bytes.Repeat([]byte{7}, token.KeyBytes), "failed", 1, 0, "does not open under the cluster key"},
	}
	receivers := map[string]*receiver{}
	for _, tc := range cases {
		rc := newReceiver(t, secret, tc.answer)
		receivers[tc.name] = rc
		d := r.httpHook(tc.name, tc.name+"/", rc.URL, secret, tc.sealKey)
		d.TimeoutNs = int64(time.Second) // an attempt waits half of it for an answer
		r.create(d)
		r.put(tc.name+"/k", "v")
	}
	for _, tc := range cases {
		j := r.waitHookJob(tc.name, tc.state)
		got := receivers[tc.name].deliveries()
		if j.Attempts != tc.attempts || len(got) != tc.requests || !strings.Contains(j.Reason, tc.reason) {
			t.Errorf("%s: %s after %d attempts, %d requests, reason %q; want %s after %d, %d requests, reason with %q",
				tc.name, j.State, j.Attempts, len(got), j.Reason, tc.state, tc.attempts, tc.requests, tc.reason)
		}
		for i, d := range got {
			if d.sigErr != nil || d.idemKey != j.Key || d.attempt != fmt.Sprint(i+1) {
				t.Errorf("%s: request %d: signature %v, key %q, attempt %s; want valid, %q, %d", tc.name, i+1, d.sigErr, d.idemKey, d.attempt, j.Key, i+1)
			}
		}
		var gaps []string
		for i := 1; i < len(got); i++ {
			gaps = append(gaps, got[i].at.Sub(got[i-1].at).Round(time.Millisecond).String())
		}
		t.Logf("%s: %s, %d attempts, gaps between requests %v (backoff 50 ms doubling to 200 ms, jittered into the upper half, on the leader's replicated time)", tc.name, j.State, j.Attempts, gaps)
	}
}

// A failed attempt is retried only after the hook's backoff: with a base
// of an hour, the delivery waits, pending, with its next lease an hour out
// on replicated time, and the receiver hears nothing more.
func TestHookHTTPBackoffHolds(t *testing.T) {
	r := newHookRig(t)
	secret := []byte("whsec-backoff")
	rc := newReceiver(t, secret, status(http.StatusServiceUnavailable))
	r.startPool(shell.Config{}, nil)
	d := r.httpHook("slow", "slow/", rc.URL, secret, r.key)
	d.BackoffBaseNs, d.BackoffMaxNs = int64(time.Hour), int64(time.Hour)
	r.create(d)
	r.put("slow/k", "v")
	var j server.JobInfo
	for deadline := time.Now().Add(20 * time.Second); j.Attempts == 0 || j.State != "pending"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("hook slow's job: %+v after 20 s, want it pending again after one attempt", j)
		}
		if js := r.hookJobs("slow"); len(js) == 1 {
			j = r.job(js[0].ID)
		}
	}
	if j.Attempts != 1 || j.NotBeforeMs < time.Now().Add(30*time.Minute).UnixMilli() || !strings.Contains(j.Reason, "503") {
		t.Fatalf("after one 503: %d attempts, not before %v, reason %q; want 1 attempt and the next an hour out",
			j.Attempts, time.UnixMilli(j.NotBeforeMs), j.Reason)
	}
	if n := len(rc.deliveries()); n != 1 {
		t.Fatalf("receiver got %d requests, want 1", n)
	}
}

// A shell hook's command gets the event as JSON on stdin and as
// ASPEN_HOOK_* variables, which the worker's allowlist (empty here) does
// not have to name; the run is audited like any granted command.
func TestHookShellFeedsEvent(t *testing.T) {
	r := newHookRig(t)
	script := filepath.Join(r.root, "on-change.sh")
	events, envs := filepath.Join(r.root, "events.jsonl"), filepath.Join(r.root, "env.txt")
	body := fmt.Sprintf("#!/bin/sh\ncat >> %s\nenv | grep '^ASPEN_HOOK_' | sort >> %s\necho --- >> %s\n", events, envs, envs)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	r.startPool(shell.Config{Commands: []string{script}}, nil)
	now := time.Now()
	claims := token.Claims{ID: "hook-tok", Subject: "tester", Commands: []string{script}, Dirs: []string{r.root},
		IssuedNs: now.Add(-time.Minute).UnixNano(), ExpiresNs: now.Add(time.Hour).UnixNano()}
	g, err := token.NewGrant(r.key, claims, []string{script}, r.root, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.create(hooks.Def{Name: "cfg", Pattern: "config/**", Handler: hooks.Handler{Kind: hooks.HandlerShell, Grant: g.Marshal()}})
	r.put("config/db/url", "postgres://db")
	j := r.waitHookJob("cfg", "succeeded")

	raw, err := os.ReadFile(events)
	if err != nil {
		t.Fatalf("the script left no events: %v", err)
	}
	var lines []hooks.Event
	for sc := bufio.NewScanner(bytes.NewReader(raw)); sc.Scan(); {
		var e hooks.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("stdin line %q: %v", sc.Text(), err)
		}
		lines = append(lines, e)
	}
	if len(lines) != 1 || lines[0].Key != "config/db/url" || string(lines[0].Value) != "postgres://db" || lines[0].IdempotencyKey != j.Key {
		t.Fatalf("events on stdin: %+v, want the one put of config/db/url, key %s", lines, j.Key)
	}
	env, _ := os.ReadFile(envs)
	for _, want := range []string{"ASPEN_HOOK_NAME=cfg\n", "ASPEN_HOOK_KIND=put\n", "ASPEN_HOOK_KEY=config/db/url\n",
		fmt.Sprintf("ASPEN_HOOK_REVISION=%d\n", lines[0].Revision), "ASPEN_HOOK_IDEMPOTENCY_KEY=" + j.Key + "\n",
		"ASPEN_HOOK_VALUE_BASE64=cG9zdGdyZXM6Ly9kYg==\n", "ASPEN_HOOK_VALUE_SIZE=13\n"} {
		if !strings.Contains(string(env), want) {
			t.Errorf("environment:\n%s\nwant %q", env, want)
		}
	}
	if rec := r.auditOf(script); rec.Exec.TokenID != "hook-tok" || rec.Exec.Exit != 0 {
		t.Errorf("audit: %+v, want the run under hook-tok, exit 0", rec.Exec)
	}
}

// A pool with more slots than one lease may ask for (the queue refuses a
// request for more, whole) still gets work: it asks for at most
// leaseJobsMax at a time.
func TestPoolWiderThanOneLease(t *testing.T) {
	r := newHookRig(t)
	secret := []byte("whsec-wide")
	rc := newReceiver(t, secret, status(http.StatusOK))
	p, err := Start(Config{Name: "wide", Concurrency: leaseJobsMax + 1, PollMs: 50, Types: []string{HookHTTPType}}, []string{r.addr}, r.key,
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	r.create(r.httpHook("wide", "wide/", rc.URL, secret, r.key))
	r.put("wide/k", "v")
	if j := r.waitHookJob("wide", "succeeded"); j.Worker != "wide" {
		t.Fatalf("job %+v, want it run by the wide pool", j)
	}
}
