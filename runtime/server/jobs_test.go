package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// jobDo calls a job endpoint on node i and decodes a 200 answer into v.
func (c *cluster) jobDo(i int, op, body string, v any) (int, string) {
	c.t.Helper()
	return c.aspenDo(i, "job/"+op, body, v)
}

// jobOK calls a job endpoint that must succeed and returns the job it names.
func (c *cluster) jobOK(i int, op, body string) JobInfo {
	c.t.Helper()
	var j JobInfo
	if code, answer := c.jobDo(i, op, body, &j); code != http.StatusOK {
		c.t.Fatalf("job %s %s via node %d: got %d %s, want 200", op, body, i+1, code, answer)
	}
	return j
}

// jobLease leases at most max jobs of typ for worker through node i.
func (c *cluster) jobLease(i int, worker, typ string, max int) []JobInfo {
	c.t.Helper()
	var l JobLeased
	body := fmt.Sprintf(`{"Worker": %q, "Types": [%q], "Max": %d}`, worker, typ, max)
	if code, answer := c.jobDo(i, "lease", body, &l); code != http.StatusOK {
		c.t.Fatalf("lease %s: got %d %s, want 200", body, code, answer)
	}
	return l.Jobs
}

// jobStatesOf lists every job by state through node i: state -> ids.
func (c *cluster) jobStatesOf(i int) map[string][]uint64 {
	c.t.Helper()
	out := map[string][]uint64{}
	for name := range jobStates {
		var l JobList
		if code, answer := c.jobDo(i, "list", fmt.Sprintf(`{"State": %q}`, name), &l); code != http.StatusOK {
			c.t.Fatalf("list %s: got %d %s", name, code, answer)
		}
		for _, j := range l.Jobs {
			out[name] = append(out[name], j.ID)
		}
	}
	return out
}

func TestJobLifecycle(t *testing.T) {
	c := startCluster(t, 3)
	sub := c.jobOK(0, "submit", `{"Type": "echo", "Payload": "hello", "Key": "k1", "TimeoutMs": 5000, "Priority": 3}`)
	if sub.ID == 0 || sub.State != "pending" || sub.Attempts != 0 || sub.Payload != "hello" || sub.TimeoutMs != 5000 ||
		sub.MaxAttempts != jobAttemptsDefault || sub.Existing || sub.SubmittedMs == 0 {
		t.Fatalf("submit: got %+v, want a new pending job with the spec, %d attempts by default", sub, jobAttemptsDefault)
	}
	again := c.jobOK(1, "submit", `{"Type": "echo", "Payload": "other", "Key": "k1"}`)
	if again.ID != sub.ID || !again.Existing || again.Payload != "hello" {
		t.Fatalf("submit with a held key: got %+v, want job %d, marked existing, as first submitted", again, sub.ID)
	}
	if got := c.jobLease(2, "w1", "other-type", 4); len(got) != 0 {
		t.Fatalf("lease of a type nobody submitted: got %+v, want none", got)
	}
	leased := c.jobLease(2, "w1", "echo", 4)
	if len(leased) != 1 || leased[0].ID != sub.ID || leased[0].Token == 0 || leased[0].State != "leased" ||
		leased[0].Payload != "hello" || leased[0].Worker != "w1" || leased[0].Attempts != 1 || leased[0].DeadlineMs <= leased[0].SubmittedMs {
		t.Fatalf("lease: got %+v, want job %d leased to w1 with a token, its payload and a deadline", leased, sub.ID)
	}
	l := leased[0]
	hb := c.jobOK(0, "heartbeat", fmt.Sprintf(`{"ID": %d, "Token": %d}`, l.ID, l.Token))
	if hb.State != "leased" || hb.DeadlineMs < l.DeadlineMs {
		t.Fatalf("heartbeat: got %+v, want still leased with a deadline no earlier than %d", hb, l.DeadlineMs)
	}
	stale := l.Token + 1
	for _, op := range []string{"heartbeat", "complete"} {
		if code, body := c.jobDo(1, op, fmt.Sprintf(`{"ID": %d, "Token": %d}`, l.ID, stale), nil); code != http.StatusConflict || !strings.Contains(body, "stale token") {
			t.Fatalf("%s under a stale token: got %d %s, want 409 stale token", op, code, body)
		}
	}
	done := c.jobOK(1, "complete", fmt.Sprintf(`{"ID": %d, "Token": %d, "ExitCode": 0, "Output": "hi\n", "Detail": "ok"}`, l.ID, l.Token))
	if done.State != "succeeded" || done.Result == nil || done.Result.Output != "hi\n" || done.FinishedMs == 0 {
		t.Fatalf("complete: got %+v, want succeeded with the output", done)
	}
	got := c.jobOK(2, "get", fmt.Sprintf(`{"ID": %d}`, l.ID))
	if got.State != "succeeded" || got.Result == nil || *got.Result != (JobResult{ExitCode: 0, Output: "hi\n", Detail: "ok"}) || got.Payload != "hello" {
		t.Fatalf("get: got %+v, want succeeded with payload, output and detail", got)
	}
	if code, body := c.jobDo(0, "heartbeat", fmt.Sprintf(`{"ID": %d, "Token": %d}`, l.ID, l.Token), nil); code != http.StatusConflict {
		t.Fatalf("heartbeat of a completed job: got %d %s, want 409", code, body)
	}
	if code, body := c.jobDo(0, "cancel", fmt.Sprintf(`{"ID": %d}`, l.ID), nil); code != http.StatusConflict {
		t.Fatalf("cancel of a completed job: got %d %s, want 409", code, body)
	}
	var page JobList
	c.jobDo(0, "list", `{"State": "succeeded"}`, &page)
	if len(page.Jobs) != 1 || page.Jobs[0].ID != l.ID || page.Jobs[0].Payload != "" || page.Jobs[0].Result.Output != "" || page.Next != 0 {
		t.Fatalf("list succeeded: got %+v, want job %d without payload or output, and no next page", page, l.ID)
	}
	for _, op := range []string{"get", "cancel", "dead/retry", "dead/drop"} {
		if code, body := c.jobDo(1, op, `{"ID": 999}`, nil); code != http.StatusNotFound || !strings.Contains(body, "job not found") {
			t.Fatalf("%s of an unknown job: got %d %s, want 404", op, code, body)
		}
	}
	if code, body := c.jobDo(1, "complete", `{"ID": 999, "Token": 5}`, nil); code != http.StatusNotFound {
		t.Fatalf("complete of an unknown job: got %d %s, want 404", code, body)
	}
	cancelled := c.jobOK(0, "cancel", fmt.Sprintf(`{"ID": %d}`, c.jobOK(0, "submit", `{"Type": "echo"}`).ID))
	if cancelled.State != "cancelled" {
		t.Fatalf("cancel of a pending job: got %+v, want cancelled", cancelled)
	}
}

// Bad input gets a 4xx and changes nothing: no job, no id used, the leased
// job still leased under its token.
func TestJobRefusalsChangeNothing(t *testing.T) {
	c := startCluster(t, 3)
	first := c.jobOK(0, "submit", `{"Type": "echo"}`)
	held := c.jobLease(0, "w", "echo", 1)[0]
	big := strings.Repeat("x", 64<<10+1)
	for _, tc := range []struct {
		method, op, body string
		code             int
		inBody           string
	}{
		{"POST", "submit", `{"Type": "echo"`, 400, "malformed body"},
		{"POST", "submit", `{"Type": "echo"} {"Type": "echo"}`, 400, "more than one"},
		{"POST", "submit", `{"Type": "echo", "Colour": "red"}`, 400, "unknown field"},
		{"POST", "submit", `{"Type": "echo", "Payload": 5}`, 400, "malformed body"},
		{"POST", "submit", `{}`, 400, "empty job type"},
		{"POST", "submit", `{"Type": ""}`, 400, "empty job type"},
		{"POST", "submit", `{"Type": "echo", "Payload": "` + big + `"}`, 413, "payload of 65537 bytes"},
		{"POST", "submit", `{"Type": "` + strings.Repeat("t", 200) + `"}`, 413, "job type of 200 bytes"},
		{"POST", "submit", `{"Type": "echo", "TimeoutMs": -5}`, 400, "TimeoutMs must be a non-negative"},
		{"POST", "submit", `{"Type": "echo", "TimeoutMs": 500}`, 400, "timeout"},
		{"POST", "submit", `{"Type": "echo", "TimeoutMs": 9223372036855}`, 400, "TimeoutMs must be"},
		{"POST", "submit", `{"Type": "echo", "BackoffBaseMs": -1}`, 400, "BackoffBaseMs must be"},
		{"POST", "submit", `{"Type": "echo", "BackoffBaseMs": 2000, "BackoffMaxMs": 1000}`, 400, "backoff"},
		{"POST", "submit", `{"Type": "echo", "MaxAttempts": 1000}`, 400, "max attempts"},
		{"POST", "submit", `{"Type": "echo", "MaxAttempts": -1}`, 400, "max attempts"},
		{"POST", "submit", `{"Type": "shell", "Payload": "rm -rf /"}`, 400, "leave Payload empty"},
		{"POST", "submit", `{"Type": " Shell", "Argv": ["/bin/true"]}`, 400, "spell it shell"},
		{"POST", "submit", `{"Type": "shell", "Argv": ["/bin/true"]}`, 403, "shell jobs need a capability token"},
		{"POST", "submit", `{"Type": "shell", "Argv": ["/bin/true"], "Capability": "aspen1.x.y"}`, 401, "no cluster key"},
		{"POST", "submit", `{"Type": "echo", "Argv": ["/bin/true"]}`, 400, "are for jobs of type shell"},
		{"POST", "submit", `{"Type": "hook.http", "Payload": "{}"}`, 403, "made by hooks only"},
		{"POST", "submit", `{"Type": " Hook.Shell"}`, 403, "made by hooks only"},
		{"POST", "submit", `{"Type": "echo", "Payload": "` + strings.Repeat("y", jobBodyBytesMax) + `"}`, 413, "body over"},
		{"GET", "submit", ``, 405, "not allowed"},
		{"POST", "lease", `{"Worker": "w"}`, 400, "0 job types"},
		{"POST", "lease", `{"Types": ["echo"]}`, 400, "worker name"},
		{"POST", "lease", `{"Worker": "w", "Types": ["echo"], "Max": -1}`, 400, "Max must be"},
		{"POST", "lease", `{"Worker": "w", "Types": ["echo"], "Max": 1000}`, 400, "1000 jobs asked"},
		{"POST", "heartbeat", fmt.Sprintf(`{"ID": %d}`, held.ID), 400, "Token must be"},
		{"POST", "complete", fmt.Sprintf(`{"ID": %d, "Token": %d, "Output": "%s"}`, held.ID, held.Token, big), 413, "output of 65537 bytes"},
		{"POST", "fail", fmt.Sprintf(`{"ID": %d, "Token": %d, "Reason": "%s"}`, held.ID, held.Token, big), 413, "reason"},
		{"POST", "get", `{}`, 400, "ID must be a positive job id"},
		{"POST", "cancel", `{"ID": -1}`, 400, "malformed body"},
		{"POST", "list", `{}`, 400, "State must be one of"},
		{"POST", "list", `{"State": "running"}`, 400, "State must be one of"},
		{"POST", "list", `{"State": "pending", "Limit": -1}`, 400, "Limit must not be negative"},
		{"POST", "dead/list", `{"Limit": -1}`, 400, "Limit must not be negative"},
		{"POST", "dead/retry", fmt.Sprintf(`{"ID": %d}`, held.ID), 409, "not dead"},
		{"POST", "dead/drop", fmt.Sprintf(`{"ID": %d}`, held.ID), 409, "not dead"},
	} {
		code, _, body := do(t, tc.method, c.url(1, "/v1/aspen/job/"+tc.op), tc.body)
		if code != tc.code || !strings.Contains(body, tc.inBody) {
			t.Errorf("%s %s %.80s: got %d %.200s, want %d with %q", tc.method, tc.op, tc.body, code, body, tc.code, tc.inBody)
		}
	}
	states := c.jobStatesOf(2)
	if len(states) != 1 || len(states["leased"]) != 1 || states["leased"][0] != first.ID {
		t.Errorf("jobs after the refusals: got %v, want only job %d, leased", states, first.ID)
	}
	if j := c.jobOK(2, "get", fmt.Sprintf(`{"ID": %d}`, first.ID)); j.Token != held.Token || j.Attempts != 1 || j.Reason != "" {
		t.Errorf("job %d after the refusals: got %+v, want it leased under token %d, one attempt", first.ID, j, held.Token)
	}
	if next := c.jobOK(0, "submit", `{"Type": "echo"}`); next.ID != first.ID+1 {
		t.Errorf("next submit: got id %d, want %d (no id used by a refusal)", next.ID, first.ID+1)
	}
}

// A job that runs out of attempts is a dead letter: listed, retried with
// its attempts reset, or dropped. A failure that cannot be retried is not
// a dead letter.
func TestJobDeadLetters(t *testing.T) {
	c := startCluster(t, 3)
	j := c.jobOK(0, "submit", `{"Type": "flaky", "MaxAttempts": 2, "TimeoutMs": 1000}`)
	failOnce := func(retryable bool) JobInfo {
		t.Helper()
		l := c.jobLease(1, "w", "flaky", 1)
		if len(l) != 1 || l[0].ID != j.ID {
			t.Fatalf("lease: got %+v, want job %d", l, j.ID)
		}
		return c.jobOK(2, "fail", fmt.Sprintf(`{"ID": %d, "Token": %d, "Reason": "exit 1", "Retryable": %v}`, j.ID, l[0].Token, retryable))
	}
	if got := failOnce(true); got.State != "pending" || got.Attempts != 1 || got.Reason != "exit 1" {
		t.Fatalf("first retryable failure of 2 attempts: got %+v, want pending after 1 attempt", got)
	}
	if got := failOnce(true); got.State != "dead" || got.Attempts != 2 {
		t.Fatalf("second retryable failure of 2 attempts: got %+v, want dead", got)
	}
	var dead JobList
	if code, _, body := do(t, "GET", c.url(0, "/v1/aspen/job/dead/list"), ""); code != http.StatusOK || json.Unmarshal([]byte(body), &dead) != nil ||
		len(dead.Jobs) != 1 || dead.Jobs[0].ID != j.ID {
		t.Fatalf("GET dead/list: got %d %s, want job %d", code, body, j.ID)
	}
	if got := c.jobOK(1, "dead/retry", fmt.Sprintf(`{"ID": %d}`, j.ID)); got.State != "pending" || got.Attempts != 0 {
		t.Fatalf("dead/retry: got %+v, want pending with attempts reset", got)
	}
	if got := failOnce(false); got.State != "failed" {
		t.Fatalf("a failure that cannot be retried: got %+v, want failed", got)
	}
	c.jobDo(2, "dead/list", "", &dead)
	if len(dead.Jobs) != 0 {
		t.Fatalf("dead/list after a non-retryable failure: got %+v, want none", dead.Jobs)
	}
	once := c.jobOK(0, "submit", `{"Type": "once", "MaxAttempts": 1}`)
	l := c.jobLease(0, "w", "once", 1)
	c.jobOK(0, "fail", fmt.Sprintf(`{"ID": %d, "Token": %d, "Retryable": true}`, once.ID, l[0].Token))
	if got := c.jobOK(1, "dead/drop", fmt.Sprintf(`{"ID": %d}`, once.ID)); got.ID != once.ID || got.State != "dead" {
		t.Fatalf("dead/drop: got %+v, want the dropped job %d", got, once.ID)
	}
	if code, body := c.jobDo(2, "get", fmt.Sprintf(`{"ID": %d}`, once.ID), nil); code != http.StatusNotFound {
		t.Fatalf("get of a dropped job: got %d %s, want 404", code, body)
	}
}
