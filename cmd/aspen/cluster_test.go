package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
)

// TestDevCluster drives the client commands against one real `aspen dev`
// cluster: starting one costs an election, so the commands share it.
func TestDevCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	d := startDev(t)
	t.Run("kv", func(t *testing.T) { testKV(t, d) })
	t.Run("kv watch", func(t *testing.T) { testKVWatch(t, d) })
	t.Run("lease", func(t *testing.T) { testLease(t, d) })
	t.Run("session", func(t *testing.T) { testSession(t, d) })
	t.Run("job", func(t *testing.T) { testJob(t, d) })
	t.Run("job stats", func(t *testing.T) { testJobStats(t, d) })
	t.Run("schedule", func(t *testing.T) { testSchedule(t, d) })
	t.Run("hook", func(t *testing.T) { testHook(t, d) })
	t.Run("topic", func(t *testing.T) { testTopic(t, d) })
	t.Run("topic publish retried", func(t *testing.T) { testTopicPublishRetried(t, d) })
	t.Run("token and audit", func(t *testing.T) { testTokenAudit(t, d) })
	t.Run("cluster status", func(t *testing.T) { testClusterStatus(t, d) })
	t.Run("bench", func(t *testing.T) { testBench(t, d) })
	t.Run("snapshot", func(t *testing.T) { testSnapshot(t, d) })
	t.Run("members", func(t *testing.T) { testMembers(t, d) })
	d.stop(t)
}

func testClusterStatus(t *testing.T, d *devCluster) {
	o := aspen(t, "", "cluster", "status", "--json", "--addr", d.addrs[0])
	o.wantCode(t, 0)
	var rep server.StatusReport
	if err := json.Unmarshal([]byte(o.stdout), &rep); err != nil {
		t.Fatalf("status --json is not a StatusReport: %v\n%s", err, o.stdout)
	}
	if rep.ID != 1 || rep.Lead == 0 || len(rep.Members) != 3 || len(rep.Peers) != 2 {
		t.Fatalf("got id %d, lead %d, %d members, %d peers; want id 1, a leader, 3 members, 2 peers", rep.ID, rep.Lead, len(rep.Members), len(rep.Peers))
	}
	// dev gives node i the i-th HTTP port, so the leader's own view is reachable.
	o = aspen(t, "", "cluster", "status", "--addr", d.addrs[rep.Lead-1])
	o.wantCode(t, 0)
	for _, want := range []string{
		fmt.Sprintf("node      %d (%s)", rep.Lead, memberOf(rep, rep.Lead).PeerAddr),
		"role      leader",
		fmt.Sprintf("leader    %d (%s)", rep.Lead, rep.LeaderAddr),
		"MEMBER  PEER ADDR",
	} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("status table lacks %q; got:\n%s", want, o.stdout)
		}
	}
}

func TestClusterStatusUnreachable(t *testing.T) {
	addr := closedAddr(t)
	o := aspen(t, "", "cluster", "status", "--addr", addr)
	o.wantCode(t, exitFailed)
	if !strings.Contains(o.stderr, addr) || !strings.Contains(o.stderr, "aspen dev") {
		t.Errorf("got stderr %q, want the address %s and a hint to run aspen dev", o.stderr, addr)
	}
}

// devCluster is a running `aspen dev` process.
type devCluster struct {
	cmd    *exec.Cmd
	dir    string   // its data dir (the cluster key is token.key there)
	addrs  []string // HTTP addresses of nodes 1, 2, 3
	out    syncBuffer
	exited chan struct{} // closed when the process has exited; then err is set
	err    error
}

// devStartsMax bounds retries: a free port block can be taken by another
// process between finding it and the cluster binding it.
const devStartsMax = 3

func startDev(t *testing.T) *devCluster {
	t.Helper()
	for range devStartsMax {
		d := launchDev(t, freePortBlock(t, 6))
		if d.waitLeader(t, 20*time.Second) {
			return d
		}
		t.Logf("aspen dev exited early (%v), retrying on other ports:\n%s", d.err, d.out.String())
	}
	t.Fatalf("aspen dev did not start in %d attempts", devStartsMax)
	return nil
}

func launchDev(t *testing.T, port int) *devCluster {
	t.Helper()
	d := &devCluster{exited: make(chan struct{}), dir: t.TempDir()}
	d.cmd = exec.Command(aspenBin, "dev", "--http-port", fmt.Sprint(port), "--peer-port", fmt.Sprint(port+3), "--data-dir", d.dir)
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start aspen dev: %v", err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.exited
	})
	for i := range 3 {
		d.addrs = append(d.addrs, fmt.Sprintf("127.0.0.1:%d", port+i))
	}
	return d
}

// waitLeader polls until every node names a leader; false if the process
// exited first.
func (d *devCluster) waitLeader(t *testing.T, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	for _, addr := range d.addrs {
		for leaderOf(hc, addr) == "" {
			select {
			case <-d.exited:
				return false
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no leader known at %s after %s; output:\n%s", addr, timeout, d.out.String())
			}
		}
	}
	return true
}

func leaderOf(hc *http.Client, addr string) string {
	resp, err := hc.Get("http://" + addr + "/v1/status/leader")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var leader string
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&leader) != nil {
		return ""
	}
	return leader
}

// stop interrupts the cluster as Ctrl-C would and wants a clean exit.
func (d *devCluster) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("interrupt aspen dev: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("aspen dev still running 15s after SIGINT")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("got aspen dev exit status %d after SIGINT, want 0; output:\n%s", code, d.out.String())
	}
}

// freePortBlock finds n consecutive free loopback ports.
func freePortBlock(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		held := []io.Closer{ln}
		ok := base+n-1 <= 65535
		for p := base + 1; ok && p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			ok = err == nil
			if ok {
				held = append(held, l)
			}
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no block of %d free ports found", n)
	return 0
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// syncBuffer collects a process's output while tests may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
