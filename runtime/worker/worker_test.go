package worker

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/core/tokens"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/aspen-db/aspen/runtime/server/servertest"
	"github.com/aspen-db/aspen/runtime/worker/shell"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) {
	shell.MaybeRunHelper()
	os.Exit(m.Run())
}

// rig is a one-node cluster, its key, and a directory commands run in.
type rig struct {
	t    *testing.T
	addr string
	key  []byte
	root string
}

func newRig(t *testing.T, s *server.Server) *rig {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, addr: s.HTTPAddr(), key: s.ClusterKey(), root: root}
}

// token signs a token for commands in the rig's root, valid for ttl.
func (r *rig) token(id string, ttl time.Duration, commands ...string) string {
	r.t.Helper()
	now := time.Now()
	tok, err := token.Sign(r.key, token.Claims{ID: id, Subject: "tester", Commands: commands, Dirs: []string{r.root},
		IssuedNs: now.Add(-time.Minute).UnixNano(), ExpiresNs: now.Add(ttl).UnixNano()})
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

func (r *rig) post(path string, req, v any) (int, string) {
	r.t.Helper()
	body, _ := json.Marshal(req)
	resp, err := http.Post("http://"+r.addr+path, "application/json", bytes.NewReader(body))
	if err != nil {
		r.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			r.t.Fatalf("POST %s: answer %s: %v", path, raw, err)
		}
	}
	return resp.StatusCode, string(raw)
}

// submit submits a shell job under tok and returns its id.
func (r *rig) submit(tok string, leaseMs int64, env map[string]string, argv ...string) uint64 {
	r.t.Helper()
	var j server.JobInfo
	req := server.JobRequest{Type: ShellType, MaxAttempts: 3, TimeoutMs: leaseMs,
		ShellCommand: server.ShellCommand{Argv: argv, Env: env, Capability: tok}}
	if code, body := r.post("/v1/aspen/job/submit", req, &j); code != http.StatusOK {
		r.t.Fatalf("submit %q: %d %s", argv, code, body)
	}
	return j.ID
}

func (r *rig) job(id uint64) server.JobInfo {
	r.t.Helper()
	var j server.JobInfo
	if code, body := r.post("/v1/aspen/job/get", server.JobRequest{ID: id}, &j); code != http.StatusOK {
		r.t.Fatalf("get job %d: %d %s", id, code, body)
	}
	return j
}

// waitState waits for job id to reach state.
func (r *rig) waitState(id uint64, state string, within time.Duration) server.JobInfo {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		j := r.job(id)
		if j.State == state {
			return j
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("job %d: %s after %v (reason %q), want %s", id, j.State, within, j.Reason, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// audit returns the audit records of executions, oldest first.
func (r *rig) audit() []server.AuditRecord {
	r.t.Helper()
	resp, err := http.Get("http://" + r.addr + "/v1/aspen/audit/list")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var l server.AuditList
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		r.t.Fatal(err)
	}
	return l.Records
}

// auditOf finds the record of the command argv0.
func (r *rig) auditOf(argv0 string) server.AuditRecord {
	r.t.Helper()
	for _, rec := range r.audit() {
		if rec.Exec != nil && rec.Exec.Argv[0] == argv0 {
			return rec
		}
	}
	r.t.Fatalf("no audit record of %s in %+v", argv0, r.audit())
	return server.AuditRecord{}
}

// startPool starts a shell pool on the rig with policy cfg; the test's end
// stops it.
func (r *rig) startPool(cfg shell.Config, reg prometheus.Registerer) {
	r.t.Helper()
	cfg.DirRoots, cfg.GraceMs, cfg.WaitDelayMs = []string{r.root}, 300, 300
	p, err := Start(Config{Name: "w1", Concurrency: 2, PollMs: 50, Shell: cfg}, []string{r.addr}, r.key,
		slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(p.Stop)
}

// A shell job runs under the worker's policy: only the variables it allows,
// none of the worker's own environment, output capped with head and tail
// kept; each run leaves an audit record whose digest matches the output.
func TestShellJobRunsUnderPolicy(t *testing.T) {
	r := newRig(t, servertest.StartOne(t))
	t.Setenv("ASPEN_WORKER_SECRET", "s3cret")
	reg := prometheus.NewRegistry()
	r.startPool(shell.Config{Commands: []string{"/usr/bin/env", "/usr/bin/seq"}, EnvAllow: []string{"VISIBLE"}}, reg)
	tok := r.token("t1", time.Hour, "/usr/bin/*")

	env := r.waitState(r.submit(tok, 5000, map[string]string{"VISIBLE": "yes"}, "/usr/bin/env"), "succeeded", 10*time.Second)
	if out := env.Result.Output; !strings.Contains(out, "VISIBLE=yes\n") || strings.Contains(out, "s3cret") || strings.Contains(out, "ASPEN_WORKER_SECRET") {
		t.Errorf("env output:\n%s\nwant VISIBLE=yes and nothing of the worker's environment", out)
	}
	seq := r.waitState(r.submit(tok, 5000, nil, "/usr/bin/seq", "2000000"), "succeeded", 20*time.Second)
	out := seq.Result.Output
	if len(out) > jobs.DefaultLimits().OutputBytesMax || !strings.HasPrefix(out, "1\n2\n3\n") || !strings.HasSuffix(out, "1999999\n2000000\n") {
		t.Errorf("seq output: %d bytes, head %q, tail %q; want at most %d bytes with head and tail kept",
			len(out), out[:min(len(out), 12)], out[max(0, len(out)-16):], jobs.DefaultLimits().OutputBytesMax)
	}
	if !strings.Contains(seq.Result.Detail, `"StdoutTruncated":true`) || !strings.Contains(seq.Result.Detail, `"StdoutBytes":14888896`) {
		t.Errorf("seq detail %s: want the truncation and the bytes written", seq.Result.Detail)
	}
	rec := r.auditOf("/usr/bin/seq")
	sum := sha256.Sum256([]byte(out))
	if e := rec.Exec; e.TokenID != "t1" || e.Subject != "tester" || e.Worker != "w1" || e.Exit != 0 || e.Dir != r.root || !bytes.Equal(e.OutputSHA, sum[:]) {
		t.Errorf("audit record %+v: want token t1, worker w1, exit 0, dir %s, the output's digest", e, r.root)
	}
	if n := counterOf(t, reg, "aspen_worker_shell_executions_total", "exit_0"); n != 2 {
		t.Errorf("executions with exit 0: %v, want 2", n)
	}
}

// counterOf reads the counter name whose one label has value label.
func counterOf(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s} in the registry", name, label)
	return 0
}

// Each check before exec refuses on its own, for good (one attempt, no
// retry), with a clear reason in the job and an audit record: the
// worker's command allowlist and environment allowlist (which the token
// cannot widen), a token revoked or expired after the job was submitted.
func TestShellJobRefusals(t *testing.T) {
	r := newRig(t, servertest.StartOne(t))
	tok := r.token("wide", time.Hour, "/bin/*", "/usr/bin/*")
	short := r.token("short", 2*time.Second, "/bin/*")
	revoked := r.token("gone", time.Hour, "/bin/*")
	cases := []struct {
		id     uint64
		argv0  string
		reason string
	}{
		{r.submit(tok, 5000, nil, "/bin/ls", "/"), "/bin/ls", `command not allowed: "/bin/ls"`},
		{r.submit(tok, 5000, map[string]string{"HIDDEN": "1"}, "/bin/echo", "x"), "/bin/echo", `variable not allowed: "HIDDEN"`},
		{r.submit(short, 5000, nil, "/bin/true"), "/bin/true", "token expired"},
		{r.submit(revoked, 5000, nil, "/bin/false"), "/bin/false", "token revoked: token gone"},
	}
	until := time.Now().Add(time.Hour).UnixNano()
	sig := hex.EncodeToString(token.RequestMAC(r.key, "/v1/aspen/token/revoke", tokens.Revoke("gone", until).Body))
	if code, body := r.post("/v1/aspen/token/revoke", server.TokenRequest{ID: "gone", ExpiresNs: until, Signature: sig}, nil); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	time.Sleep(2 * time.Second) // the short token expires
	r.startPool(shell.Config{Commands: []string{"/bin/echo", "/bin/true", "/bin/false"}, EnvAllow: []string{"VISIBLE"}}, nil)
	for _, tc := range cases {
		j := r.waitState(tc.id, "failed", 10*time.Second)
		if !strings.Contains(j.Reason, tc.reason) || j.Attempts != 1 {
			t.Errorf("job %d (%s): reason %q after %d attempts, want %q after one", tc.id, tc.argv0, j.Reason, j.Attempts, tc.reason)
		}
		if rec := r.auditOf(tc.argv0); rec.Exec.Refused == "" || rec.Exec.Exit != -1 {
			t.Errorf("audit of %s: %+v, want a refusal", tc.argv0, rec.Exec)
		}
	}
}

// A job whose lease is taken from it (here: cancelled) is stopped: the
// heartbeat is refused and the command's process group gets SIGTERM.
func TestJobStoppedWhenLeaseLost(t *testing.T) {
	r := newRig(t, servertest.StartOne(t))
	r.startPool(shell.Config{Commands: []string{"/bin/sleep"}}, nil)
	id := r.submit(r.token("t", time.Hour, "/bin/*"), 1500, nil, "/bin/sleep", "30")
	r.waitState(id, "leased", 10*time.Second)
	r.post("/v1/aspen/job/cancel", server.JobRequest{ID: id}, nil)
	cancelled := time.Now()
	for {
		var rec *server.AuditRecord
		for _, x := range r.audit() {
			if x.Exec != nil && x.Exec.Argv[0] == "/bin/sleep" {
				rec = &x
			}
		}
		if rec != nil {
			if rec.Exec.Signal != "terminated" {
				t.Errorf("audit: %+v, want the sleep ended by SIGTERM", rec.Exec)
			}
			t.Logf("stopped %v after the cancel", time.Since(cancelled).Round(time.Millisecond))
			break
		}
		if time.Since(cancelled) > 10*time.Second {
			t.Fatal("the command of a cancelled job still ran 10 s later")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if j := r.job(id); j.State != "cancelled" {
		t.Errorf("job after the stop: %s, want it left cancelled (the worker reports nothing for a lease it lost)", j.State)
	}
}

// When the cluster goes away, a running job is stopped before its lease
// could pass to another worker, and the pool keeps trying: once the node
// is back, the job runs again and succeeds.
func TestWorkerSurvivesClusterGoingAway(t *testing.T) {
	if err := clusterGoesAway(t); err != "" {
		t.Fatal(err)
	}
}

func clusterGoesAway(t *testing.T) string {
	peer, httpAddr := servertest.FreeAddr(t), servertest.FreeAddr(t)
	cfg := server.Config{ID: 1, DataDir: t.TempDir(), PeerAddr: peer, HTTPAddr: httpAddr, Cluster: map[uint64]string{1: peer},
		Tick: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s, err := server.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, s)
	// The script records its pid, then sleeps unless told to finish.
	script := filepath.Join(r.root, "job.sh")
	pidFile, doneFile := filepath.Join(r.root, "pid"), filepath.Join(r.root, "finish")
	body := fmt.Sprintf("#!/bin/sh\necho $$ > %s\n[ -e %s ] && exit 0\nexec /bin/sleep 30\n", pidFile, doneFile)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	r.startPool(shell.Config{Commands: []string{script}}, nil)
	id := r.submit(r.token("t", time.Hour, script), 2000, nil, script)
	pid := waitPid(t, pidFile)

	stopped := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for processAlive(pid) {
		if time.Since(stopped) > 5*time.Second {
			syscall.Kill(pid, syscall.SIGKILL)
			return fmt.Sprintf("the job's command (pid %d) still ran 5 s after the cluster went away (lease 2 s)", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("command stopped %v after the cluster went away (lease 2 s)", time.Since(stopped).Round(time.Millisecond))

	os.WriteFile(doneFile, nil, 0o644)
	s2, err := server.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if j := r.waitState(id, "succeeded", 30*time.Second); j.Attempts != 2 {
		return fmt.Sprintf("job after the cluster came back: %d attempts, want 2 (the stopped one counted)", j.Attempts)
	}
	return ""
}

func waitPid(t *testing.T, path string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		raw, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && perr == nil {
			return pid
		}
	}
	t.Fatalf("no pid in %s: the job did not start", path)
	return 0
}

// processAlive reports whether pid runs (a zombie is gone for this purpose).
func processAlive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// A standalone worker names several nodes: one that cannot be reached is
// passed over, and a refusal (4xx) is final rather than tried elsewhere.
func TestClientPassesOverDeadNodes(t *testing.T) {
	r := newRig(t, servertest.StartOne(t))
	dead := servertest.FreeAddr(t) // nothing listens there
	c, err := NewClient([]string{dead, "http://" + r.addr + "/"}, r.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lease(t.Context(), "w", []string{"echo"}, 1); err != nil {
		t.Fatalf("lease with the first node dead: %v", err)
	}
	err = c.Heartbeat(t.Context(), 12345, 1)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound || !errors.Is(err, ErrLost) {
		t.Fatalf("heartbeat of an unknown job: %v, want a 404 that reads as lost", err)
	}
	if _, err := NewClient([]string{"http://"}, nil); err == nil {
		t.Fatal("an address without a host was taken")
	}
}
