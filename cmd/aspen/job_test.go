package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
)

// workerCall plays a worker (there is no `aspen worker` yet): it POSTs req
// to a job endpoint and decodes the 200 answer into v.
func workerCall(t *testing.T, addr, op string, req server.JobRequest, v any) {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := http.Post("http://"+addr+"/v1/aspen/job/"+op, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("job %s %+v: got status %d", op, req, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("job %s: %v", op, err)
	}
}

// workerLease leases the one due job of typ.
func workerLease(t *testing.T, addr, typ string) server.JobInfo {
	t.Helper()
	var l server.JobLeased
	workerCall(t, addr, "lease", server.JobRequest{Worker: "test", Types: []string{typ}}, &l)
	if len(l.Jobs) != 1 {
		t.Fatalf("lease %s: got %+v, want one job", typ, l.Jobs)
	}
	return l.Jobs[0]
}

// testJob drives the job commands against the dev cluster, with the test
// as the worker.
func testJob(t *testing.T, d *devCluster) {
	addr := d.addrs[0]
	job := func(args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"job"}, withAddr(addr, args)...)...)
	}
	deadLetters := func(args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"job", "dead"}, withAddr(addr, args)...)...)
	}
	payload := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(payload, []byte("from a file"), 0o600)
	ran := jobIn(t, job("submit", "--payload", "@"+payload, "--priority", "5", "--key", "nightly", "echo"))
	wantStdout(t, job("submit", "--key", "nightly", "echo"), fmt.Sprintf("job %s already holds key \"nightly\" (pending); nothing submitted\n", ran))
	cancelled := jobIn(t, job("submit", "echo"))
	dead := jobIn(t, job("submit", "--max-attempts", "1", "--timeout", "2s", "flaky"))

	l := workerLease(t, addr, "echo")
	if fmt.Sprint(l.ID) != ran || l.Payload != "from a file" {
		t.Fatalf("lease: got %+v, want job %s (priority 5) with the file's payload", l, ran)
	}
	var done server.JobInfo
	workerCall(t, addr, "complete", server.JobRequest{ID: l.ID, Token: l.Token, ExitCode: 3, Output: "line 1\nline 2\n"}, &done)
	wantStdout(t, job("cancel", cancelled), "cancelled job "+cancelled+"\n")
	f := workerLease(t, addr, "flaky")
	workerCall(t, addr, "fail", server.JobRequest{ID: f.ID, Token: f.Token, Reason: "exit 1", Retryable: true}, &done)

	o := job("list")
	o.wantCode(t, 0)
	if !strings.Contains(o.stdout, "JOB") || !hasRow(o.stdout, ran, "echo", "succeeded", "1/3", "5", "test", "-") ||
		!hasRow(o.stdout, cancelled, "echo", "cancelled", "0/3", "0", "-", "-") || !hasRow(o.stdout, dead, "flaky", "dead", "1/1", "0", "test", "exit", "1") {
		t.Errorf("list: got\n%s\nwant rows for jobs %s (succeeded), %s (cancelled), %s (dead)", o.stdout, ran, cancelled, dead)
	}
	o = job("list", "--state", "cancelled")
	if o.wantCode(t, 0); strings.Count(o.stdout, "\n") != 2 || !hasRow(o.stdout, cancelled, "echo", "cancelled", "0/3", "0", "-", "-") {
		t.Errorf("list --state cancelled: got\n%s\nwant job %s only", o.stdout, cancelled)
	}
	o = job("get", ran)
	o.wantCode(t, 0)
	for _, want := range []string{"job        " + ran, "state      succeeded", "attempts   1 of 3", "key        nightly",
		"worker     test", "payload    11 bytes", "exit code  3", "output     14 bytes (aspen job output " + ran + ")"} {
		if !strings.Contains(o.stdout, want+"\n") {
			t.Errorf("get: got\n%s\nwant a line %q", o.stdout, want)
		}
	}
	o = job("output", ran)
	if wantStdout(t, o, "line 1\nline 2\n"); o.stderr != "exit code 3\n" {
		t.Errorf("output: got stderr %q, want the exit code", o.stderr)
	}
	o = job("output", cancelled)
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "job "+cancelled+" is cancelled: it has no output")

	o = deadLetters("list")
	if o.wantCode(t, 0); !hasRow(o.stdout, dead, "flaky", "dead", "1/1", "0", "test", "exit", "1") || strings.Count(o.stdout, "\n") != 2 {
		t.Errorf("dead list: got\n%s\nwant job %s only", o.stdout, dead)
	}
	wantStdout(t, deadLetters("retry", dead), "job "+dead+" is pending again, its attempts reset\n")
	f = workerLease(t, addr, "flaky")
	workerCall(t, addr, "fail", server.JobRequest{ID: f.ID, Token: f.Token, Retryable: true}, &done)
	wantStdout(t, deadLetters("drop", dead), "dropped job "+dead+"\n")
	wantStdout(t, deadLetters("list"), "")
	o = job("get", dead)
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "server answered 404: job not found: "+dead)
	tok := aspen(t, "", "token", "create", "--addr", addr, "--key", filepath.Join(d.dir, "token.key"), "--subject", "ops",
		"--command", "/bin/echo", "--dir", "/tmp", "--ttl", "1h", "--id", "job-test")
	tok.wantCode(t, 0)
	o = job("submit", "shell", "--token", "aspen1.forged.x", "--", "/bin/echo", "hi")
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "server answered 400: malformed token")
	o = job("submit", "shell", "--token", strings.TrimSpace(tok.stdout), "--", "/bin/rm", "-rf", "/tmp")
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "server answered 403: token does not allow this")
	sh := jobIn(t, job("submit", "shell", "--token", strings.TrimSpace(tok.stdout), "--env", "GREETING=hi", "--", "/bin/echo", "hi"))
	o = job("get", sh)
	o.wantCode(t, 0)
	for _, want := range []string{"type        shell", "command     /bin/echo hi", "dir         /tmp", "capability  job-test (ops)"} {
		if !strings.Contains(o.stdout, want+"\n") {
			t.Errorf("get shell job: got\n%s\nwant a line %q", o.stdout, want)
		}
	}
	// aspen dev runs a worker pool in each node: the command runs.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(o.stdout, "state       succeeded\n"); o = job("get", sh) {
		if time.Now().After(deadline) {
			t.Fatalf("shell job under aspen dev: got\n%s\nafter 10 s, want it succeeded", o.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantStdout(t, job("output", sh), "hi\n")
	o = job("cancel", ran)
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "server answered 409")
}

// jobIn reads the id from "submitted job N (TYPE)".
func jobIn(t *testing.T, o outcome) string {
	t.Helper()
	o.wantCode(t, 0)
	var id, typ string
	if _, err := fmt.Sscanf(o.stdout, "submitted job %s %s\n", &id, &typ); err != nil {
		t.Fatalf("got stdout %q, want submitted job N (TYPE)", o.stdout)
	}
	return id
}

func TestJobUsage(t *testing.T) {
	closed := closedAddr(t)
	binary := filepath.Join(t.TempDir(), "binary")
	os.WriteFile(binary, []byte{0xff, 0xfe}, 0o600)
	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"job", "submit"}, exitUsage, "job submit wants TYPE"},
		{[]string{"job", "submit", "echo", "stray"}, exitUsage, "got stray"},
		{[]string{"job", "submit", "echo", "--", "/bin/true"}, exitUsage, "is for TYPE shell"},
		{[]string{"job", "submit", "shell"}, exitUsage, "wants the command after --"},
		{[]string{"job", "submit", "shell", "--", "/bin/true"}, exitUsage, "needs --token"},
		{[]string{"job", "submit", "--dir", "/tmp", "echo"}, exitUsage, "--dir is for shell commands"},
		{[]string{"job", "submit", "shell", "--token", "t", "--env", "NOEQUALS", "--", "/bin/true"}, exitUsage, "--env wants NAME=VALUE"},
		{[]string{"job", "submit", "--timeout", "-1s", "echo"}, exitUsage, "--timeout must be"},
		{[]string{"job", "submit", "--timeout", "1500us", "echo"}, exitUsage, "--timeout must be"},
		{[]string{"job", "submit", "--backoff", "-1s", "echo"}, exitUsage, "--backoff must be"},
		{[]string{"job", "submit", "--payload", "@" + binary, "echo"}, exitUsage, "--payload is not UTF-8 text"},
		{[]string{"job", "submit", "--payload", "@/nonexistent/file", "echo"}, exitUsage, "read value"},
		{[]string{"job", "get", "abc"}, exitUsage, "ID must be a positive job id"},
		{[]string{"job", "cancel", "0"}, exitUsage, "ID must be"},
		{[]string{"job", "output"}, exitUsage, "job output wants ID"},
		{[]string{"job", "list", "--state", "running"}, exitUsage, "--state must be one of"},
		{[]string{"job", "list", "--limit", "0"}, exitUsage, "--limit must be at least 1"},
		{[]string{"job", "list", "extra"}, exitUsage, "takes no arguments"},
		{[]string{"job", "dead", "retry"}, exitUsage, "wants ID"},
		{[]string{"job", "dead", "nope"}, exitUsage, "unknown command"},
		{[]string{"job", "nope"}, exitUsage, "unknown command"},
		{[]string{"job", "list", "--addr", closed}, exitFailed, "cannot reach Aspen at " + closed},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o := aspen(t, "", tc.args...)
			o.wantCode(t, tc.code)
			wantStderr(t, o, tc.inStderr)
		})
	}
}
