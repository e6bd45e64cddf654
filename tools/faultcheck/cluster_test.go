//go:build linux

package faultcheck_test

import (
	"context"
	"fmt"
	"go.etcd.io/raft/v3"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file runs real `aspen node start` processes, so that a kill is a
// kill -9: no deferred close, no flush, the disk as the process left it.

// buildAspen compiles cmd/aspen into a temporary directory.
func buildAspen(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "aspen")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/aspen-db/aspen/cmd/aspen")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/aspen: %v\n%s", err, out)
	}
	return bin
}

// artifactsDir holds the nodes' data and logs, and the checker's output. It
// is removed after a passing test and kept after a failing one.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "faultcheck-"+t.Name()+"-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the processes are killed.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("artifacts kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// freeAddrs reserves n loopback ports at once, so that they differ; another
// process could take one before a node binds it, which would fail the start.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// procNode is one node process, restartable with the same data and ports.
type procNode struct {
	id       uint64
	args     []string
	httpAddr string
	logPath  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exits
}

type procCluster struct {
	bin   string
	nodes []*procNode
}

// startProcCluster starts n nodes; every process is killed when the test ends.
func startProcCluster(t *testing.T, bin, dir string, n int, tickMs int) *procCluster {
	t.Helper()
	return startProcClusterWith(t, bin, dir, n, tickMs, nil)
}

// startProcClusterWith is startProcCluster with more flags for each node:
// extra(id), when not nil, is appended to node id's arguments (a --config
// file, say; the flags given here win over the file's keys).
func startProcClusterWith(t *testing.T, bin, dir string, n int, tickMs int, extra func(id uint64) []string) *procCluster {
	t.Helper()
	addrs := freeAddrs(t, 2*n)
	var members []string
	for i := range n {
		members = append(members, fmt.Sprintf("%d=%s", i+1, addrs[i]))
	}
	c := &procCluster{bin: bin}
	for i := range n {
		id := uint64(i + 1)
		p := &procNode{id: id, httpAddr: addrs[n+i], logPath: filepath.Join(dir, fmt.Sprintf("node%d.log", id))}
		p.args = []string{"node", "start", "--id", fmt.Sprint(id), "--data-dir", filepath.Join(dir, fmt.Sprintf("node%d", id)),
			"--initial-cluster", strings.Join(members, ","), "--http-addr", p.httpAddr, "--tick-ms", fmt.Sprint(tickMs)}
		if extra != nil {
			p.args = append(p.args, extra(id)...)
		}
		c.nodes = append(c.nodes, p)
	}
	t.Cleanup(c.killAll)
	for _, p := range c.nodes {
		if err := p.start(bin); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *procCluster) httpAddrs() []string {
	var out []string
	for _, p := range c.nodes {
		out = append(out, p.httpAddr)
	}
	return out
}

func (c *procCluster) killAll() {
	for _, p := range c.nodes {
		p.kill()
	}
}

// start runs the node, appending its output to its log.
func (p *procNode) start(bin string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("node %d is already running", p.id)
	}
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("node %d log: %w", p.id, err)
	}
	fmt.Fprintf(log, "=== faultcheck test: starting node %d at %s\n", p.id, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, p.args...)
	cmd.Stdout, cmd.Stderr = log, log
	// If the test binary dies without running its cleanups, so do the nodes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start node %d: %w", p.id, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// kill sends SIGKILL and waits for the process to be gone; a stopped node is left alone.
func (p *procNode) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd, p.done = nil, nil
}

// nodeStatus is the part of /v1/aspen/status the test reads.
type nodeStatus struct {
	ID, Term, Lead uint64
	Role           string // raft.StateType, by name
}

func status(ctx context.Context, addr string) (nodeStatus, error) {
	var st nodeStatus
	err := getJSON(ctx, "http://"+addr+"/v1/aspen/status", &st)
	return st, err
}

// leader polls the nodes until one reports itself leader and all that answer
// agree on it (with everyAnswers, every node must answer), or until timeout.
func (c *procCluster) leader(ctx context.Context, timeout time.Duration, everyAnswers bool) (*procNode, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p := c.agreedLeader(ctx, everyAnswers); p != nil {
			return p, nil
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("no leader all live nodes agree on within %v", timeout)
}

func (c *procCluster) agreedLeader(ctx context.Context, everyAnswers bool) *procNode {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	var leader *procNode
	var lead uint64
	for _, p := range c.nodes {
		st, err := status(ctx, p.httpAddr)
		switch {
		case err != nil && everyAnswers:
			return nil
		case err != nil:
			continue // down: it has no say
		case st.Lead == 0 || (lead != 0 && st.Lead != lead):
			return nil
		}
		lead = st.Lead
		if st.Role == raft.StateLeader.String() && st.ID == p.id {
			leader = p
		}
	}
	if leader == nil || leader.id != lead {
		return nil
	}
	return leader
}
