package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

const (
	nodesPerCluster = 3
	// startTimeout bounds a cluster's start, from its processes' start to
	// its first acknowledged write.
	startTimeout = 60 * time.Second
	// attemptTimeout bounds one write while waiting for a cluster to take
	// writes; a fresh client is made for each attempt.
	attemptTimeout = 2 * time.Second
	// pollInterval is how often a port or a first write is tried again.
	pollInterval = 10 * time.Millisecond
	// stopGrace is how long a server gets to exit on SIGTERM.
	stopGrace = 5 * time.Second
)

// kvClient is one system's official client bound to one node, as the load
// generator and the harness use it. It is safe for concurrent use.
type kvClient interface {
	put(ctx context.Context, key string, value []byte) error
	// get is a linearizable read; a missing key is an error.
	get(ctx context.Context, key string) error
	// count is how many keys start with prefix, read linearizably.
	count(ctx context.Context, prefix string) (int64, error)
	// isLeader says whether the node this client is bound to leads.
	isLeader(ctx context.Context) (bool, error)
	close() error
}

// cluster is one system's 3 nodes on loopback.
type cluster struct {
	system   string // "aspen" or "etcd"
	procs    []*proc
	dataDirs []string
	addrs    []string // client addresses, in node order
	// dial makes a client bound to one node, for up to conns concurrent callers.
	dial    func(node, conns int) (kvClient, error)
	clients []kvClient // one per node, shared by the load's goroutines on that node
}

// start starts every node and returns once a write through node 1 was
// acknowledged, with how long that took.
func (c *cluster) start(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	for _, p := range c.procs {
		if err := p.start(); err != nil {
			return 0, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := c.waitWritable(ctx); err != nil {
		return 0, c.failure(fmt.Errorf("%s did not take a write within %s: %w", c.system, startTimeout, err))
	}
	return time.Since(t0), nil
}

// waitWritable waits for node 1's client port, then tries a write through
// a new client until one is acknowledged. A new client per attempt keeps
// gRPC's reconnect backoff out of the measured time.
func (c *cluster) waitWritable(ctx context.Context) error {
	for _, addr := range c.addrs {
		if err := waitListening(ctx, addr); err != nil {
			return err
		}
	}
	var last error
	for ctx.Err() == nil {
		if err := c.exited(); err != nil {
			return err
		}
		if last = c.tryWrite(ctx); last == nil {
			return nil
		}
		sleep(ctx, pollInterval)
	}
	return errors.Join(ctx.Err(), last)
}

func (c *cluster) tryWrite(ctx context.Context) error {
	kv, err := c.dial(0, 1)
	if err != nil {
		return err
	}
	defer kv.close()
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	return kv.put(ctx, "etcdcmp/ready", []byte("1"))
}

func waitListening(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn.Close()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("nothing listens on %s: %w", addr, err)
		}
		sleep(ctx, pollInterval)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// exited names a node that is no longer running.
func (c *cluster) exited() error {
	for _, p := range c.procs {
		if !p.running() {
			return fmt.Errorf("%s exited", p.name)
		}
	}
	return nil
}

// failure adds the end of every node's log to err.
func (c *cluster) failure(err error) error {
	for _, p := range c.procs {
		err = fmt.Errorf("%w\n--- %s log (%s):\n%s", err, p.name, p.logPath, p.logTail())
	}
	return err
}

// connect makes the clients the loads share, one per node.
func (c *cluster) connect(conns int) error {
	c.closeClients()
	for i := range c.procs {
		kv, err := c.dial(i, conns)
		if err != nil {
			return fmt.Errorf("%s client for node %d: %w", c.system, i+1, err)
		}
		c.clients = append(c.clients, kv)
	}
	return nil
}

func (c *cluster) closeClients() {
	for _, kv := range c.clients {
		kv.close()
	}
	c.clients = nil
}

// leader is the index of the node that leads now.
func (c *cluster) leader(ctx context.Context) (int, error) {
	for i, kv := range c.clients {
		ok, err := kv.isLeader(ctx)
		if err != nil {
			return 0, fmt.Errorf("%s node %d: %w", c.system, i+1, err)
		}
		if ok {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%s: no node says it leads", c.system)
}

// memory reads every node's resident set.
func (c *cluster) memory() ([]memory, error) {
	var ms []memory
	for _, p := range c.procs {
		if !p.running() {
			return nil, c.failure(fmt.Errorf("%s exited", p.name))
		}
		m, err := readMemory(p.pid())
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// cpu is the CPU time the cluster's nodes have used so far, together.
func (c *cluster) cpu() (cpuTime, error) {
	var total cpuTime
	for _, p := range c.procs {
		d, err := readCPU(p.pid())
		if err != nil {
			return cpuTime{}, c.failure(fmt.Errorf("%s: %w", p.name, err))
		}
		total = total.plus(d)
	}
	return total, nil
}

func (c *cluster) disk() ([]int64, error) {
	var sizes []int64
	for _, dir := range c.dataDirs {
		n, err := diskBytes(dir)
		if err != nil {
			return nil, err
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// crashRestart kills every node at once (SIGKILL, as a power cut would
// leave them), starts them again on the same data and returns the time
// from the start of the processes to the first acknowledged write.
func (c *cluster) crashRestart(ctx context.Context) (time.Duration, error) {
	c.closeClients()
	stopAll(c.procs, syscall.SIGKILL, stopGrace)
	took, err := c.start(ctx)
	if err != nil {
		return 0, err
	}
	return took, c.connect(1)
}

// close stops the clients and every node.
func (c *cluster) close() {
	c.closeClients()
	stopAll(c.procs, syscall.SIGTERM, stopGrace)
}
