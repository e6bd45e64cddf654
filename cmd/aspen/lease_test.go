package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// testLease drives the lease commands against the dev cluster. Two leases
// of the shortest TTL (2 s): one kept alive by `lease keepalive` for longer
// than its TTL, then revoked; one left alone, whose expiry a `kv watch`
// prints while the first is being kept alive.
func testLease(t *testing.T, d *devCluster) {
	addr := d.addrs[0]
	lease := func(args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"lease"}, withAddr(addr, args)...)...)
	}
	kept := leaseIn(t, lease("grant", "2"))
	left := leaseIn(t, lease("grant", "--id", "900", "2s"))
	if left != "900" {
		t.Fatalf("grant --id 900: got lease %s", left)
	}
	for _, k := range []string{"leased/b", "leased/a"} {
		aspen(t, "", "kv", "put", "--addr", addr, "--lease", kept, k, "v").wantCode(t, 0)
	}
	first := revisionIn(t, aspen(t, "", "kv", "put", "--addr", addr, "--lease", left, "leased/c", "v").stdout)
	watch := startBackground(t, "kv", "watch", "--addr", addr, "--from", fmt.Sprint(first+1), "leased/c")

	o := lease("ttl", "--keys", kept)
	o.wantCode(t, 0)
	if lines := strings.Split(o.stdout, "\n"); len(lines) != 4 || !strings.HasPrefix(lines[0], "lease "+kept+": granted TTL 2s, ") ||
		!strings.HasSuffix(lines[0], "s left, 2 keys") || lines[1] != "leased/a" || lines[2] != "leased/b" {
		t.Errorf("ttl --keys: got %q, want the TTLs, the key count and both keys in order", o.stdout)
	}
	o = lease("list")
	o.wantCode(t, 0)
	if !strings.Contains(o.stdout, "LEASE") || !hasRow(o.stdout, kept, "2s", "2") || !hasRow(o.stdout, "900", "2s", "1") {
		t.Errorf("list: got\n%s\nwant rows for leases %s (2 keys) and 900 (1 key)", o.stdout, kept)
	}
	wantStdout(t, lease("keepalive", "--once", kept), "lease "+kept+" kept alive; TTL 2s\n")
	testKeepAlive(t, addr, kept)

	o = lease("revoke", kept)
	o.wantCode(t, 0)
	if !strings.HasPrefix(o.stdout, "revoked lease "+kept+"; its keys were deleted at revision ") {
		t.Errorf("revoke: got %q", o.stdout)
	}
	aspen(t, "", "kv", "get", "--addr", addr, "leased/a").wantCode(t, exitFailed)
	for _, args := range [][]string{{"ttl", kept}, {"keepalive", kept}, {"revoke", kept}} {
		o = lease(args...)
		o.wantCode(t, exitFailed)
		wantStderr(t, o, "server answered 404: lease not found: "+kept)
	}
	got := watch.waitLines(t, 1, 10*time.Second)
	if want := "delete leased/c (lease expired)"; !strings.HasSuffix(got[0], want) {
		t.Errorf("kv watch of a key whose lease expired: got %q, want it to end with %q", got[0], want)
	}
}

// testKeepAlive keeps lease id (TTL 2 s) alive for longer than its TTL;
// its keys are still there after, and Ctrl-C ends the command cleanly.
func testKeepAlive(t *testing.T, addr, id string) {
	t.Helper()
	ka := startBackground(t, "lease", "keepalive", "--addr", addr, id)
	// Every TTL/3: six renewals take 3.3 s, past the 2 s a lease left
	// alone would live.
	ka.waitLines(t, 6, 10*time.Second)
	ka.cmd.Process.Signal(os.Interrupt)
	ka.waitExit(t, 5*time.Second)
	if code := ka.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("lease keepalive after Ctrl-C: got exit status %d, want 0; output:\n%s", code, ka.out.String())
	}
	wantStdout(t, aspen(t, "", "kv", "get", "--addr", addr, "leased/a"), "v\n")
}

// leaseIn reads the id from "granted lease N with TTL Ts".
func leaseIn(t *testing.T, o outcome) string {
	t.Helper()
	o.wantCode(t, 0)
	var id, ttl string
	if _, err := fmt.Sscanf(o.stdout, "granted lease %s with TTL %s\n", &id, &ttl); err != nil {
		t.Fatalf("got stdout %q, want granted lease N with TTL Ts", o.stdout)
	}
	return id
}

func hasRow(table string, fields ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		if strings.Join(strings.Fields(line), " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}

// waitLines polls the process's output until it holds n lines.
func (b *background) waitLines(t *testing.T, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := b.out.String()
		if lines := strings.Split(out, "\n"); len(lines) > n {
			return lines[:n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("aspen %v: got output %q in %v, want %d lines", b.cmd.Args[1:], out, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLeaseUsage(t *testing.T) {
	closed := closedAddr(t)
	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"lease", "grant"}, exitUsage, "lease grant wants TTL"},
		{[]string{"lease", "grant", "0"}, exitUsage, "TTL must be a positive whole number of seconds"},
		{[]string{"lease", "grant", "1500ms"}, exitUsage, "TTL must be"},
		{[]string{"lease", "grant", "10", "--id", "3"}, exitUsage, "flags go before arguments"},
		{[]string{"lease", "keepalive", "abc"}, exitUsage, "ID must be a positive lease id"},
		{[]string{"lease", "revoke", "0"}, exitUsage, "ID must be"},
		{[]string{"lease", "ttl", "1", "2"}, exitUsage, "lease ttl wants ID"},
		{[]string{"lease", "list", "extra"}, exitUsage, "takes no arguments"},
		{[]string{"lease", "nope"}, exitUsage, "unknown command"},
		{[]string{"kv", "put", "--lease", "0", "k", "v"}, exitUsage, "--lease must be a positive lease id"},
		{[]string{"lease", "list", "--addr", closed}, exitFailed, "cannot reach Aspen at " + closed},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o := aspen(t, "", tc.args...)
			o.wantCode(t, tc.code)
			wantStderr(t, o, tc.inStderr)
		})
	}
}
