package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
)

// jobStatsOf runs `aspen job stats` against addr and reads its rows.
func jobStatsOf(t *testing.T, addr string) map[string]int {
	t.Helper()
	o := aspen(t, "", "job", "stats", "--addr", addr)
	o.wantCode(t, 0)
	rows := map[string]int{}
	lines := strings.Split(strings.TrimSuffix(o.stdout, "\n"), "\n")
	for _, line := range lines[:len(lines)-1] {
		f := strings.Fields(line)
		n, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			t.Fatalf("job stats: row %q has no number; got\n%s", line, o.stdout)
		}
		rows[strings.Join(f[:len(f)-1], " ")] = n
	}
	if want := "(lease expiries, retries and dead letters: what node 1 applied since it started)"; lines[len(lines)-1] != want {
		t.Errorf("job stats: last line %q, want %q", lines[len(lines)-1], want)
	}
	return rows
}

// testJobStats drives `aspen job stats` against the dev cluster: each
// transition the test makes moves its own row by one, whatever the jobs the
// other subtests left.
func testJobStats(t *testing.T, d *devCluster) {
	addr := d.addrs[0]
	before := jobStatsOf(t, addr)
	job := func(args ...string) string {
		t.Helper()
		return jobIn(t, aspen(t, "", append([]string{"job"}, withAddr(addr, args)...)...))
	}
	job("submit", "stats-waiting")
	job("submit", "--max-attempts", "1", "stats-dead")
	slow := job("submit", "--max-attempts", "2", "--timeout", "1s", "--backoff", "0", "stats-slow")
	var got server.JobInfo
	l := workerLease(t, addr, "stats-dead")
	workerCall(t, addr, "fail", server.JobRequest{ID: l.ID, Token: l.Token, Retryable: true}, &got)
	workerLease(t, addr, "stats-slow") // never heartbeaten: expires after 1 s
	id, _ := strconv.ParseUint(slow, 10, 64)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if workerCall(t, addr, "get", server.JobRequest{ID: id}, &got); got.State == "pending" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: still %s, want its lease expired", slow, got.State)
		}
	}
	l = workerLease(t, addr, "stats-slow")
	workerCall(t, addr, "complete", server.JobRequest{ID: l.ID, Token: l.Token}, &got)

	after := jobStatsOf(t, addr)
	want := map[string]int{"pending": 1, "leased": 0, "succeeded": 1, "failed": 0, "dead": 1, "cancelled": 0,
		"lease expiries": 1, "retries": 1, "dead letters": 1}
	if len(after) != len(want) {
		t.Errorf("job stats: got rows %v, want %d rows", after, len(want))
	}
	for name, delta := range want {
		if after[name]-before[name] != delta {
			t.Errorf("job stats %s: went from %d to %d, want up by %d", name, before[name], after[name], delta)
		}
	}
}

func TestJobStatsUsage(t *testing.T) {
	closed := closedAddr(t)
	o := aspen(t, "", "job", "stats", "extra")
	o.wantCode(t, exitUsage)
	wantStderr(t, o, "takes no arguments")
	o = aspen(t, "", "job", "stats", "--addr", closed)
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "cannot reach Aspen at "+closed)
}
