package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
)

// testHook drives the hook commands against the dev cluster: a job hook of
// a type no worker serves, with the test as its worker, an http hook whose
// secret never comes back, and a shell hook under a token.
func testHook(t *testing.T, d *devCluster) {
	addr := d.addrs[0]
	hook := func(args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"hook"}, withAddr(addr, args)...)...)
	}
	o := hook("create", "audit", "--pattern", "hookcfg/", "--job-type", "audit-event", "--max-attempts", "1", "--events", "put,delete")
	o.wantCode(t, 0)
	wantStdout(t, o, "created hook audit on hookcfg/ (job audit-event)\n")
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("s3cret-signing-key\n"), 0o600)
	wantStdout(t, hook("create", "deploy", "--pattern", "hooksvc/**", "--http", "https://example.test/hook", "--secret", "@"+secret,
		"--mode", "parallel", "--parallel", "4"), "created hook deploy on hooksvc/** (http https://example.test/hook)\n")
	tok := aspen(t, "", "token", "create", "--addr", addr, "--key", filepath.Join(d.dir, "token.key"), "--subject", "ops",
		"--command", "/usr/bin/touch", "--dir", "/tmp", "--ttl", "1h", "--id", "hook-test")
	tok.wantCode(t, 0)
	tokFile := filepath.Join(t.TempDir(), "t")
	os.WriteFile(tokFile, []byte(tok.stdout), 0o600)
	wantStdout(t, hook("create", "touch", "--pattern", "hookx/", "--token", "@"+tokFile, "--", "/usr/bin/touch", "/tmp/x"),
		"created hook touch on hookx/ (shell /usr/bin/touch /tmp/x)\n")
	o = hook("create", "touch2", "--pattern", "hookx/", "--token", "@"+tokFile, "--", "/usr/bin/rm", "/tmp/x")
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "server answered 403")
	wantStderr(t, hook("create", "audit", "--pattern", "other/", "--job-type", "t"), "server answered 409")
	wantStderr(t, hook("create", "bad", "--pattern", "a/***", "--job-type", "t"), "server answered 400: invalid hook")
	wantStderr(t, hook("create", "bad", "--pattern", "a/", "--http", "ftp://x/", "--secret", "s"), "server answered 400")

	for _, kv := range [][2]string{{"hookcfg/a", "1"}, {"hookcfg/b", "2"}} {
		aspen(t, "", "kv", "put", "--addr", addr, kv[0], kv[1]).wantCode(t, 0)
	}
	o = hook("get", "deploy")
	o.wantCode(t, 0)
	if strings.Contains(o.stdout, "s3cret") || !strings.Contains(o.stdout, "mode:          parallel 4") {
		t.Errorf("get deploy: got\n%s\nwant parallel 4 and no secret", o.stdout)
	}
	o = hook("list")
	o.wantCode(t, 0)
	if !hasRow(o.stdout, "audit", "hookcfg/", "put,delete", "job", "audit-event", "ordered", "true", "2", "0", "0", "1") ||
		!hasRow(o.stdout, "touch", "hookx/", "put,delete", "shell", "/usr/bin/touch", "/tmp/x", "ordered", "true", "0", "0", "0", "0") {
		t.Errorf("list: got\n%s\nwant audit with 2 matched, 1 waiting; touch idle", o.stdout)
	}

	// The test is the worker: the first delivery runs out of its attempt.
	l := workerLease(t, addr, "audit-event")
	if !strings.HasPrefix(l.Key, "audit:") || !strings.HasSuffix(l.Key, ":hookcfg/a") {
		t.Fatalf("delivery: got key %q, want audit:REV:hookcfg/a", l.Key)
	}
	var done server.JobInfo
	workerCall(t, addr, "fail", server.JobRequest{ID: l.ID, Token: l.Token, Reason: "boom", Retryable: true}, &done)
	// The leader sees the job finished at its next pump of the hook.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		o = hook("get", "audit")
		o.wantCode(t, 0)
		if strings.Contains(o.stdout, "dead:          1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("get audit: got\n%s\nafter 10 s, want 1 dead delivery", o.stdout)
		}
	}
	o = hook("deliveries", "audit", "--state", "dead")
	o.wantCode(t, 0)
	if !hasRow(o.stdout, fmt.Sprint(l.ID), "dead", l.Key, "1/1", "test", "boom") {
		t.Errorf("deliveries --state dead: got\n%s\nwant job %d dead", o.stdout, l.ID)
	}
	wantStdout(t, hook("deliveries", "audit", "--retry-dead"), fmt.Sprintf("retried delivery %d (%s)\n", l.ID, l.Key))
	o = hook("deliveries", "audit")
	o.wantCode(t, 0)
	if !hasRow(o.stdout, fmt.Sprint(l.ID), "pending", l.Key, "0/1", "test", "boom") {
		t.Errorf("deliveries after retry: got\n%s\nwant job %d pending again", o.stdout, l.ID)
	}
	o = hook("metrics")
	o.wantCode(t, 0)
	if !strings.Contains(o.stdout, "LAG SECONDS") || !hasRowPrefix(o.stdout, "audit", "2", "0", "0", "0", "1", "0", "1") {
		t.Errorf("metrics: got\n%s\nwant audit: 2 matched, 1 dead, none waiting, 1 in flight", o.stdout)
	}

	wantStdout(t, hook("disable", "touch"), "disabled hook touch\n")
	wantStderr(t, hook("trigger", "touch"), "server answered 409")
	wantStdout(t, hook("enable", "touch"), "enabled hook touch\n")
	wantStdout(t, hook("trigger", "audit", "--key", "k", "--value", "v"), "triggered hook audit (1 waiting, 1 in flight)\n")
	for _, name := range []string{"audit", "deploy", "touch"} {
		wantStdout(t, hook("delete", name), "deleted hook "+name+"\n")
	}
	for _, args := range [][]string{{"get", "audit"}, {"enable", "audit"}, {"trigger", "audit"}, {"deliveries", "audit"}} {
		o = hook(args...)
		o.wantCode(t, exitFailed)
		wantStderr(t, o, "server answered 404: hook not found")
	}
	wantStdout(t, hook("list"), "")
}

// hasRowPrefix is hasRow for a row's first fields (the lag columns move).
func hasRowPrefix(table string, fields ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) >= len(fields) && strings.Join(f[:len(fields)], " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}

func TestHookUsage(t *testing.T) {
	closed := closedAddr(t)
	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"hook", "create"}, exitUsage, "hook create wants NAME"},
		{[]string{"hook", "create", "x", "--job-type", "t"}, exitUsage, "wants --pattern"},
		{[]string{"hook", "create", "x", "--pattern", "a/"}, exitUsage, "wants one handler"},
		{[]string{"hook", "create", "x", "--pattern", "a/", "--job-type", "t", "--http", "https://x/"}, exitUsage, "wants one handler"},
		{[]string{"hook", "create", "x", "--pattern", "a/", "--job-type", "t", "--", "/bin/true"}, exitUsage, "wants one handler"},
		{[]string{"hook", "create", "x", "--pattern", "a/", "--http", "https://x/"}, exitUsage, "needs --secret"},
		{[]string{"hook", "create", "x", "--pattern", "a/", "--job-type", "t", "--secret", "s"}, exitUsage, "--secret is for an --http hook"},
		{[]string{"hook", "create", "x", "--pattern", "a/", "--http", "https://x/", "--secret", "@/nonexistent/s"}, exitUsage, "read value"},
		{[]string{"hook", "create", "x", "--pattern", "a/", "--", "/bin/true"}, exitUsage, "needs --token"},
		{[]string{"hook", "create", "x", "--pattern", "a/", "--job-type", "t", "--dir", "/tmp"}, exitUsage, "--dir is for shell commands"},
		{[]string{"hook", "create", "x", "--pattern", "a/", "--job-type", "t", "--timeout", "1500us"}, exitUsage, "--timeout"},
		{[]string{"hook", "create", "x", "--pattern", "a/", "--job-type", "t", "--colour", "red"}, exitUsage, "not defined: -colour"},
		{[]string{"hook", "create", "x", "--pattern", "a/", "--job-type", "t", "stray"}, exitUsage, "stray"},
		{[]string{"hook", "get"}, exitUsage, "hook get wants NAME"},
		{[]string{"hook", "enable", "a", "b"}, exitUsage, "hook enable wants NAME"},
		{[]string{"hook", "deliveries", "a", "--retry-dead", "--drop-dead"}, exitUsage, "not both"},
		{[]string{"hook", "deliveries", "--state", "pending", "--drop-dead", "a"}, exitUsage, "act on dead deliveries"},
		{[]string{"hook", "list", "extra"}, exitUsage, "takes no arguments"},
		{[]string{"hook", "metrics", "extra"}, exitUsage, "takes no arguments"},
		{[]string{"hook", "nope"}, exitUsage, "unknown command"},
		{[]string{"hook", "list", "--addr", closed}, exitFailed, "cannot reach Aspen at " + closed},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o := aspen(t, "", tc.args...)
			o.wantCode(t, tc.code)
			wantStderr(t, o, tc.inStderr)
		})
	}
}

// [[hooks]] tables become the requests a bootstrapping node makes, with
// the secret and the token read from their files; a file that is missing
// stops the node before it starts.
func TestHooksFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	secret := writeFile(t, dir, "secret", "s3cret\n")
	got, err := hookRequests([]hookFile{
		{Name: "deploy", Pattern: "svc/**", Handler: "http", URL: "https://x/", SecretFile: secret, Mode: "parallel", Parallel: 2},
		{Name: "audit", Pattern: "cfg/", Handler: "job", JobType: "audit-event", Events: []string{"put"}},
	})
	if err != nil || len(got) != 2 || got[0].Secret != "s3cret" || got[0].Parallel != 2 || got[1].JobType != "audit-event" {
		t.Fatalf("hookRequests: got %+v, %v", got, err)
	}
	if _, err := hookRequests([]hookFile{{Name: "a"}, {Name: "a"}}); err == nil {
		t.Error("two hooks named a: accepted")
	}
	config := writeFile(t, dir, "node.toml", "[[hooks]]\nname = \"deploy\"\npattern = \"svc/\"\nhandler = \"http\"\n"+
		"url = \"https://x/\"\nsecret_file = \""+filepath.Join(dir, "nope")+"\"\n")
	o := aspen(t, "", "node", "start", "--config", config, "--id", "1", "--data-dir", filepath.Join(dir, "data"),
		"--initial-cluster", "1="+closedAddr(t), "--http-addr", closedAddr(t))
	o.wantCode(t, exitUsage)
	wantStderr(t, o, "secret_file")
	config = writeFile(t, dir, "typo.toml", "[[hooks]]\nname = \"deploy\"\npatern = \"svc/\"\n")
	o = aspen(t, "", "node", "start", "--config", config, "--id", "1", "--data-dir", filepath.Join(dir, "data"),
		"--initial-cluster", "1="+closedAddr(t), "--http-addr", closedAddr(t))
	o.wantCode(t, exitUsage)
	wantStderr(t, o, "unknown key")
}
