package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKV runs the kv commands through the binary, each step checking what
// the last one wrote.
func testKV(t *testing.T, d *devCluster) {
	addr := d.addrs[0]
	kv := func(args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"kv"}, withAddr(addr, args)...)...)
	}

	o := kv("put", "greeting", "hello")
	o.wantCode(t, 0)
	rev := revisionIn(t, o.stdout)
	wantStdout(t, kv("get", "greeting"), "hello\n")
	if e := getEntry(t, addr, "greeting"); e.ModifyIndex != rev || string(e.Value) != "hello" {
		t.Errorf("got entry %+v, want value hello at modify index %d", e, rev)
	}

	// A value from stdin is written byte for byte, newlines included.
	aspenWith(t, "two\nlines", nil, "kv", "put", "--addr", addr, "stdin-key", "-").wantCode(t, 0)
	if e := getEntry(t, addr, "stdin-key"); string(e.Value) != "two\nlines" {
		t.Errorf("got value %q, want %q", e.Value, "two\nlines")
	}
	// @FILE reads the value from a file, as Consul's CLI does.
	file := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(file, []byte("from\x00a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	kv("put", "file-key", "@"+file).wantCode(t, 0)
	if e := getEntry(t, addr, "file-key"); string(e.Value) != "from\x00a file" {
		t.Errorf("got value %q, want the file's bytes", e.Value)
	}
	o = kv("put", "file-key", "@"+file+".missing")
	o.wantCode(t, exitUsage)
	wantStderr(t, o, "no such file")
	// The address also comes from the environment.
	wantStdout(t, aspenWith(t, "", []string{addrEnv + "=" + addr}, "kv", "get", "greeting"), "hello\n")

	o = kv("get", "no-such-key")
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "key not found: no-such-key")

	// Values over the server's limit are refused with the server's message.
	o = aspenWith(t, strings.Repeat("x", 600<<10), nil, "kv", "put", "--addr", addr, "big", "-")
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "server answered 413: value exceeds")

	testKVList(t, kv)
	testKVCAS(t, addr, kv)

	kv("delete", "greeting").wantCode(t, 0)
	kv("get", "greeting").wantCode(t, exitFailed)
	kv("delete", "--recurse", "dir/").wantCode(t, 0)
	wantStdout(t, kv("list", "dir/"), "")
}

func testKVList(t *testing.T, kv func(...string) outcome) {
	t.Helper()
	for _, k := range []string{"dir/a", "dir/b", "dir/sub/c"} {
		kv("put", k, "v-"+k).wantCode(t, 0)
	}
	wantStdout(t, kv("list", "dir/"), "dir/a\tv-dir/a\ndir/b\tv-dir/b\ndir/sub/c\tv-dir/sub/c\n")
	wantStdout(t, kv("list", "--keys-only", "--separator", "/", "dir/"), "dir/a\ndir/b\ndir/sub/\n")
	// An empty prefix is not an error: there is nothing to list.
	wantStdout(t, kv("list", "nothing-here/"), "")
}

func testKVCAS(t *testing.T, addr string, kv func(...string) outcome) {
	t.Helper()
	kv("cas", "--index", "0", "lock", "mine").wantCode(t, 0)
	o := kv("cas", "--index", "0", "lock", "yours")
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "cas failed")
	index := getEntry(t, addr, "lock").ModifyIndex
	o = kv("cas", "--index", fmt.Sprint(index+1), "lock", "stale")
	o.wantCode(t, exitFailed)
	o = kv("cas", "--index", fmt.Sprint(index), "lock", "again")
	o.wantCode(t, 0)
	if !strings.HasPrefix(o.stdout, "cas succeeded") {
		t.Errorf("got stdout %q, want it to say the cas succeeded", o.stdout)
	}
	wantStdout(t, kv("get", "lock"), "again\n")
}

// testKVWatch watches from a known revision, so the events are in the
// stream whether they happen before or after the watch connects.
func testKVWatch(t *testing.T, d *devCluster) {
	addr := d.addrs[0]
	first := revisionIn(t, aspen(t, "", "kv", "put", "--addr", addr, "watched", "one").stdout)
	cmd := exec.Command(aspenBin, "kv", "watch", "--addr", addr, "--from", fmt.Sprint(first), "watched")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kv watch: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		for sc := bufio.NewScanner(stdout); sc.Scan(); {
			lines <- sc.Text()
		}
	}()
	aspen(t, "", "kv", "put", "--addr", addr, "watched", "two").wantCode(t, 0)
	aspen(t, "", "kv", "put", "--addr", addr, "other", "ignored").wantCode(t, 0)
	aspen(t, "", "kv", "delete", "--addr", addr, "watched").wantCode(t, 0)
	got := readLines(t, lines, 3, 10*time.Second)
	want := []string{fmt.Sprintf("%d put watched one", first), "put watched two", "delete watched"}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("got event %d %q, want it to contain %q", i, got[i], want[i])
		}
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Errorf("got kv watch ending with %v after SIGINT, want exit status 0; stderr: %s", err, stderr.String())
	}
}

func readLines(t *testing.T, lines <-chan string, n int, timeout time.Duration) []string {
	t.Helper()
	var got []string
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended after %d lines, want %d: %q", len(got), n, got)
			}
			got = append(got, l)
		case <-deadline:
			t.Fatalf("got %d lines in %s, want %d: %q", len(got), timeout, n, got)
		}
	}
	return got
}

func TestKVUsage(t *testing.T) {
	closed := closedAddr(t)
	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"kv", "get"}, exitUsage, "kv get wants KEY"},
		{[]string{"kv", "get", "k", "--json"}, exitUsage, "flags go before arguments"},
		{[]string{"kv", "put", "k"}, exitUsage, "kv put wants KEY VALUE"},
		{[]string{"kv", "put", "a//b", "v"}, exitUsage, "path segment"},
		{[]string{"kv", "cas", "k", "v"}, exitUsage, "index"},
		{[]string{"kv", "watch"}, exitUsage, "KEY or --prefix"},
		{[]string{"kv", "watch", "--prefix", "p", "k"}, exitUsage, "not both"},
		{[]string{"kv", "list", "--separator", "/"}, exitUsage, "--keys-only"},
		{[]string{"kv", "nope"}, exitUsage, "unknown command"},
		{[]string{"kv", "get", "--addr", closed, "k"}, exitFailed, "cannot reach Aspen at " + closed},
		{[]string{"kv", "put", "--addr", closed, "k", "v"}, exitFailed, "aspen dev"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o := aspen(t, "", tc.args...)
			o.wantCode(t, tc.code)
			wantStderr(t, o, tc.inStderr)
		})
	}
}

// aspenWith runs the binary with stdin and extra environment, which the
// shared helper does not give.
func aspenWith(t *testing.T, stdin string, env []string, args ...string) outcome {
	t.Helper()
	cmd := exec.Command(aspenBin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run aspen %v: %v", args, err)
	}
	return outcome{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// withAddr puts --addr before the arguments, where the flag parser sees it.
func withAddr(addr string, args []string) []string {
	return append([]string{args[0], "--addr", addr}, args[1:]...)
}

func getEntry(t *testing.T, addr, key string) kvEntry {
	t.Helper()
	o := aspen(t, "", "kv", "get", "--json", "--addr", addr, key)
	o.wantCode(t, 0)
	var e kvEntry
	if err := json.Unmarshal([]byte(o.stdout), &e); err != nil {
		t.Fatalf("kv get --json printed %q: %v", o.stdout, err)
	}
	return e
}

// revisionIn reads the revision from "put KEY at revision N".
func revisionIn(t *testing.T, stdout string) uint64 {
	t.Helper()
	_, after, ok := strings.Cut(stdout, " at revision ")
	var rev uint64
	if _, err := fmt.Sscan(after, &rev); !ok || err != nil {
		t.Fatalf("got stdout %q, want it to end with a revision", stdout)
	}
	return rev
}

func wantStdout(t *testing.T, o outcome, want string) {
	t.Helper()
	o.wantCode(t, 0)
	if o.stdout != want {
		t.Errorf("got stdout %q, want %q", o.stdout, want)
	}
}

func wantStderr(t *testing.T, o outcome, contains string) {
	t.Helper()
	if !strings.Contains(o.stderr, contains) {
		t.Errorf("got stderr %q, want it to contain %q", o.stderr, contains)
	}
}
