package server

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/token"
)

// hookDo calls a hook endpoint on node i and decodes a 200 answer into v.
func (c *cluster) hookDo(i int, op, body string, v any) (int, string) {
	c.t.Helper()
	return c.aspenDo(i, "hook/"+op, body, v)
}

// hookOK calls a hook endpoint that must succeed and returns the hook it names.
func (c *cluster) hookOK(i int, op, body string) HookInfo {
	c.t.Helper()
	var h HookInfo
	if code, answer := c.hookDo(i, op, body, &h); code != http.StatusOK {
		c.t.Fatalf("hook %s %s via node %d: got %d %s, want 200", op, body, i+1, code, answer)
	}
	return h
}

// hookNames lists every hook through node i.
func (c *cluster) hookNames(i int) []string {
	c.t.Helper()
	var l HookList
	if code, answer := c.hookDo(i, "list", `{}`, &l); code != http.StatusOK {
		c.t.Fatalf("hook list: got %d %s", code, answer)
	}
	names := []string{}
	for _, h := range l.Hooks {
		names = append(names, h.Name)
	}
	return names
}

// deliveries lists hook name's delivery jobs through node i.
func (c *cluster) deliveries(i int, body string) HookDeliveries {
	c.t.Helper()
	var d HookDeliveries
	if code, answer := c.hookDo(i, "deliveries", body, &d); code != http.StatusOK {
		c.t.Fatalf("hook deliveries %s: got %d %s", body, code, answer)
	}
	return d
}

func (c *cluster) put(i int, key, value string) {
	c.t.Helper()
	if code, _, body := do(c.t, "PUT", c.url(i, "/v1/kv/"+key), value); code != http.StatusOK {
		c.t.Fatalf("put %s: got %d %s", key, code, body)
	}
}

// A job hook through its life: each matching put is one delivery job with
// the idempotency key hook:revision:key, handed over one at a time
// (ordered); a delivery that runs out of attempts is dead and listed so,
// and the counts follow on every node, in the API and on /metrics.
func TestHookJobLifecycle(t *testing.T) {
	c := startCluster(t, 3)
	h := c.hookOK(0, "create", `{"Name": "audit", "Pattern": "cfg/", "Handler": "job", "JobType": "audit-event", "MaxAttempts": 1}`)
	if h.Mode != "ordered" || h.TimeoutMs != hookTimeoutMsDefault || h.BackoffMs != hookBackoffMsDefault ||
		strings.Join(h.Events, ",") != "put,delete" || h.Filter != "any" || h.Disabled {
		t.Fatalf("create: got %+v, want an enabled ordered hook with the defaults, on put and delete", h)
	}
	c.put(1, "cfg/a", "1")
	c.put(1, "other/b", "x")
	c.put(2, "cfg/b", "2")
	c.put(2, "cfg/a", "3")

	got := c.hookOK(2, "get", `{"Name": "audit"}`)
	if got.Stats.Matched != 3 || got.Stats.Submitted != 1 || got.InFlight != 1 || got.Backlog != 2 || got.LagRevisions < 2 {
		t.Fatalf("after 3 matching puts: got %+v, want 3 matched, 1 in flight (ordered), 2 waiting, lag of at least 2 revisions", got)
	}
	d := c.deliveries(1, `{"Name": "audit"}`)
	if len(d.Jobs) != 1 || d.Jobs[0].Type != "audit-event" || d.Jobs[0].State != "pending" ||
		!strings.HasPrefix(d.Jobs[0].Key, "audit:") || !strings.HasSuffix(d.Jobs[0].Key, ":cfg/a") {
		t.Fatalf("deliveries: got %+v, want one pending audit-event job keyed audit:REV:cfg/a", d.Jobs)
	}
	job := c.jobOK(0, "get", fmt.Sprintf(`{"ID": %d}`, d.Jobs[0].ID))
	var ev hooks.Event
	if err := json.Unmarshal([]byte(job.Payload), &ev); err != nil || ev.Kind != "put" || ev.Key != "cfg/a" ||
		string(ev.Value) != "1" || ev.IdempotencyKey != job.Key {
		t.Fatalf("delivery payload %s: %+v, %v; want the put of cfg/a=1 under the job's key", job.Payload, ev, err)
	}

	// The first delivery runs out of its one attempt; the next is handed over.
	leased := c.jobLease(0, "w", "audit-event", 1)
	c.jobOK(0, "fail", fmt.Sprintf(`{"ID": %d, "Token": %d, "Reason": "boom", "Retryable": true}`, leased[0].ID, leased[0].Token))
	eventually(t, "the second delivery handed over", func() bool {
		h := c.hookOK(1, "get", `{"Name": "audit"}`)
		return h.Stats.Submitted == 2 && h.Stats.Dead == 1
	})
	dead := c.deliveries(2, `{"Name": "audit", "State": "dead"}`)
	if len(dead.Jobs) != 1 || dead.Jobs[0].ID != leased[0].ID || dead.Next != 0 {
		t.Fatalf("dead deliveries: got %+v, want job %d", dead, leased[0].ID)
	}
	eventually(t, "node 1's metrics to show 3 matches", func() bool {
		v, ok := c.metric(0, `aspen_hook_matched_total{hook="audit"}`)
		return ok && v == 3
	})
	eventually(t, "node 3's metrics to show the dead delivery", func() bool {
		v, _ := c.metric(2, `aspen_hook_dead_total{hook="audit"}`)
		b, _ := c.metric(2, `aspen_hook_backlog{hook="audit"}`)
		return v == 1 && b == 1
	})
	c.jobOK(1, "dead/retry", fmt.Sprintf(`{"ID": %d}`, leased[0].ID))

	// Disabled, it matches nothing; a trigger of a disabled hook is refused.
	c.hookOK(0, "disable", `{"Name": "audit"}`)
	c.put(0, "cfg/c", "4")
	if code, body := c.hookDo(0, "trigger", `{"Name": "audit", "Key": "t"}`, nil); code != http.StatusConflict {
		t.Errorf("trigger of a disabled hook: got %d %s, want 409", code, body)
	}
	if h := c.hookOK(1, "get", `{"Name": "audit"}`); h.Stats.Matched != 3 || !h.Disabled {
		t.Errorf("disabled: got %+v, want 3 matched still", h)
	}
	c.hookOK(0, "enable", `{"Name": "audit"}`)
	h = c.hookOK(0, "trigger", `{"Name": "audit", "Key": "synthetic", "Value": "v"}`)
	if h.Stats.Matched != 3 || h.Backlog != 2 {
		t.Errorf("trigger: got %+v, want a delivery waiting and no match counted", h)
	}
	c.hookOK(2, "delete", `{"Name": "audit"}`)
	if code, body := c.hookDo(0, "get", `{"Name": "audit"}`, nil); code != http.StatusNotFound {
		t.Errorf("get after delete: got %d %s, want 404", code, body)
	}
	if code, body := c.hookDo(0, "deliveries", `{"Name": "audit"}`, nil); code != http.StatusNotFound {
		t.Errorf("deliveries after delete: got %d %s, want 404", code, body)
	}
	eventually(t, "a deleted hook to leave /metrics", func() bool {
		_, ok := c.metric(0, `aspen_hook_matched_total{hook="audit"}`)
		return !ok
	})
}

// An http hook's secret is sealed under the cluster key before it reaches
// the log and is never shown; a shell hook stores a grant, never its token.
func TestHookSecretAndGrant(t *testing.T) {
	c, key := startKeyedCluster(t, 3)
	const secret = "s3cret-signing-key"
	h := c.hookOK(0, "create", jsonBody(t, HookRequest{Name: "deploy", Pattern: "svc/**", Handler: "http",
		URL: "https://example.test/hook", Secret: secret, Mode: "parallel", Parallel: 4, RatePerSec: 10}))
	if !h.SecretSet || h.URL != "https://example.test/hook" || h.Parallel != 4 || h.Burst != 1 {
		t.Fatalf("create http: got %+v, want the URL, a secret set, parallel 4, burst 1", h)
	}
	tok := signClaims(t, key, "t-hook", time.Hour)
	h = c.hookOK(1, "create", jsonBody(t, HookRequest{Name: "touch", Pattern: "x/", Handler: "shell", Events: []string{"put", "expire"},
		Filter: "created", ShellCommand: ShellCommand{Argv: []string{"/usr/bin/touch", "/tmp/x"}, Capability: tok}}))
	if h.Command == nil || h.Command.TokenID != "t-hook" || h.Command.Dir != "/tmp" || strings.Join(h.Events, ",") != "put,expire" {
		t.Fatalf("create shell: got %+v, want the command under t-hook in /tmp", h)
	}
	code, _, body := do(t, "GET", c.url(2, "/v1/aspen/hook/list"), "")
	if code != 200 || strings.Contains(body, secret) || strings.Contains(body, strings.Split(tok, ".")[2]) {
		t.Fatalf("list: got %d %s; want 200 without the secret or the token's signature", code, body)
	}

	c.put(0, "svc/api/v1", "up")
	d := c.deliveries(2, `{"Name": "deploy"}`)
	if len(d.Jobs) != 1 || d.Jobs[0].Type != hooks.JobHTTP {
		t.Fatalf("deliveries: got %+v, want one %s job", d.Jobs, hooks.JobHTTP)
	}
	job := c.jobOK(1, "get", fmt.Sprintf(`{"ID": %d}`, d.Jobs[0].ID))
	var p hooks.Payload
	if err := json.Unmarshal([]byte(job.Payload), &p); err != nil || strings.Contains(job.Payload, secret) {
		t.Fatalf("payload %s: %v; want JSON without the secret in clear", job.Payload, err)
	}
	if open, err := token.Open(key, p.Secret); err != nil || string(open) != secret {
		t.Fatalf("sealed secret opens to %q, %v; want %q", open, err, secret)
	}
	c.put(0, "x/new", "1")
	c.put(0, "x/new", "2") // an update: the hook fires on created only
	if h := c.hookOK(0, "get", `{"Name": "touch"}`); h.Stats.Matched != 1 {
		t.Errorf("shell hook on created: got %d matched, want 1", h.Stats.Matched)
	}
}

// Every refusal answers a clear 4xx and leaves the hooks, the jobs and the
// store as they were, as TestJobRefusalsChangeNothing does for jobs.
func TestHookRefusalsChangeNothing(t *testing.T) {
	c := startCluster(t, 3) // no cluster key: http hooks are refused
	c.hookOK(0, "create", `{"Name": "audit", "Pattern": "cfg/", "Handler": "job", "JobType": "audit-event"}`)
	job := `"Handler": "job", "JobType": "t"`
	for _, tc := range []struct {
		method, op, body string
		code             int
		inBody           string
	}{
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/"`, 400, "malformed body"},
		{"POST", "create", `{"Name": "a", "Colour": "red"}`, 400, "unknown field"},
		{"POST", "create", `{"Pattern": "cfg/", ` + job + `}`, 400, "Name is required"},
		{"POST", "create", `{"Name": "a/b", "Pattern": "cfg/", ` + job + `}`, 400, "name must be"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/***", ` + job + `}`, 400, "invalid hook"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/"}`, 400, "Handler is required"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "queue"}`, 400, `Handler \"queue\": want http, shell, job or topic`},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "topic", "Topic": "nope"}`, 404, `topic \"nope\" does not exist`},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "job", "JobType": "x", "Topic": "t"}`, 400, `Topic is for topic hooks`},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "job"}`, 400, "job type"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "job", "JobType": "shell"}`, 400, "not shell"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "job", "JobType": "hook.http"}`, 400, "not hook.*"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "URL": "https://x"}`, 400, "URL and Secret are for http hooks"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "http", "URL": "ftp://x/", "Secret": "s"}`, 400, "want an absolute http"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "http", "URL": "/relative", "Secret": "s"}`, 400, "want an absolute http"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "http", "URL": "https://x/"}`, 400, "needs Secret"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "http", "URL": "https://x/", "Secret": "s"}`, 401, "no cluster key"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "shell", "Argv": ["/bin/true"]}`, 403, "capability token"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", "Handler": "shell", "Argv": ["/bin/true"], "Capability": "aspen1.x.y"}`, 401, "no cluster key"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "Argv": ["/bin/true"]}`, 400, "are for shell hooks"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "Events": ["put", "touch"]}`, 400, `event \"touch\"`},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "Filter": "new"}`, 400, `Filter \"new\"`},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "Mode": "fast"}`, 400, "mode"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "Mode": "parallel"}`, 400, "parallel 0"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "Parallel": 3}`, 400, "ordered"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "RatePerSec": -1}`, 400, "rate"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "MaxAttempts": 1000}`, 400, "attempts"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "TimeoutMs": -1}`, 400, "must not be negative"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "Key": "k"}`, 400, "not fields of a hook"},
		{"POST", "create", `{"Name": "audit", "Pattern": "other/", ` + job + `}`, 409, "already exists"},
		{"POST", "create", `{"Name": "a", "Pattern": "cfg/", ` + job + `, "JobType": "` + strings.Repeat("y", hookBodyBytesMax) + `"}`, 413, "body over"},
		{"GET", "create", ``, 405, "not allowed"},
		{"POST", "get", `{}`, 400, "Name is required"},
		{"POST", "get", `{"Name": "nope"}`, 404, "hook not found"},
		{"POST", "delete", `{"Name": "nope"}`, 404, "hook not found"},
		{"POST", "enable", `{"Name": "nope"}`, 404, "hook not found"},
		{"POST", "trigger", `{"Name": "nope"}`, 404, "hook not found"},
		{"POST", "trigger", `{"Name": "audit", "Value": "` + strings.Repeat("v", 5000) + `"}`, 400, "value over"},
		{"POST", "list", `{"Limit": -1}`, 400, "Limit must not be negative"},
		{"POST", "deliveries", `{}`, 400, "Name is required"},
		{"POST", "deliveries", `{"Name": "audit", "State": "running"}`, 400, "State must be one of"},
		{"POST", "deliveries", `{"Name": "audit", "After": "5"}`, 400, "name it"},
		{"POST", "deliveries", `{"Name": "audit", "State": "dead", "After": "x"}`, 400, "After"},
		{"POST", "deliveries", `{"Name": "nope"}`, 404, "hook not found"},
		{"GET", "list?limit=x", ``, 400, "limit"},
	} {
		code, _, body := do(t, tc.method, c.url(1, "/v1/aspen/hook/"+tc.op), tc.body)
		if code != tc.code || !strings.Contains(body, tc.inBody) {
			t.Errorf("%s %s %.100s: got %d %.200s, want %d with %q", tc.method, tc.op, tc.body, code, body, tc.code, tc.inBody)
		}
	}
	if names := c.hookNames(2); strings.Join(names, ",") != "audit" {
		t.Errorf("hooks after the refusals: got %v, want only audit", names)
	}
	if h := c.hookOK(2, "get", `{"Name": "audit"}`); h.Pattern != "cfg/" || h.Disabled || h.Stats != (HookStats{}) || h.Backlog != 0 {
		t.Errorf("audit after the refusals: got %+v, want it as created", h)
	}
	if states := c.jobStatesOf(0); len(states) != 0 {
		t.Errorf("jobs after the refusals: got %v, want none", states)
	}
}

// Hooks in a node's config are created when it bootstraps the cluster, and
// only then: a hook deleted later stays deleted across a restart.
func TestHooksFromConfigOnlyAtBootstrap(t *testing.T) {
	decl := []HookRequest{
		{Name: "audit", Pattern: "cfg/", Handler: "job", JobType: "audit-event"},
		{Name: "bad", Pattern: "cfg/***", Handler: "job", JobType: "x"}, // refused, logged, skipped
		{Name: "deploy", Pattern: "svc/**", Handler: "http", URL: "http://127.0.0.1:1/hook", Secret: "s"},
	}
	cfg := Config{ID: 1, DataDir: t.TempDir(), PeerAddr: freeAddr(t), HTTPAddr: "127.0.0.1:0", Tick: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Hooks: decl}
	cfg.Cluster = map[uint64]string{1: cfg.PeerAddr}
	c := &cluster{t: t, cfgs: []Config{cfg}}
	c.servers = []*Server{c.start(0)}
	t.Cleanup(func() { c.servers[0].Close() })
	eventually(t, "the declared hooks", func() bool { return strings.Join(c.hookNames(0), ",") == "audit,deploy" })
	if h := c.hookOK(0, "get", `{"Name": "deploy"}`); !h.SecretSet {
		t.Fatalf("declared http hook: got %+v, want its secret sealed and set", h)
	}
	c.hookOK(0, "delete", `{"Name": "audit"}`)
	if err := c.servers[0].Close(); err != nil {
		t.Fatal(err)
	}
	c.servers[0] = c.start(0)
	if c.servers[0].node.Bootstrapped() {
		t.Fatal("a restart reads as a bootstrap: the config's hooks would be created again")
	}
	c.put(0, "cfg/x", "1")
	if names := c.hookNames(0); strings.Join(names, ",") != "deploy" {
		t.Fatalf("after a restart: got %v, want deploy only (audit was deleted)", names)
	}
}
