package faultcheck

import (
	"context"
	"math/rand/v2"
	"time"
)

// Operation mix, in percent: the rest are cas (each preceded by its get).
const (
	getPercent = 40
	putPercent = 35
)

// client is one sequential caller. It sends each call to one node and moves
// to the next node after a failure, so a dead node costs one error, not many.
type client struct {
	r       *recorder
	id      int // -1 for the final reader
	process int
	final   bool
	rng     *rand.Rand
	addr    int // index into r.cfg.Addrs
}

// newClient makes load client i; i < 0 makes the reader of final values.
func (r *recorder) newClient(i int) *client {
	c := &client{r: r, id: i, process: i, rng: rand.New(rand.NewPCG(r.cfg.Seed, uint64(i+1))),
		addr: max(i, 0) % len(r.cfg.Addrs)}
	if i < 0 {
		c.final = true
		c.process = r.takeProcess()
	}
	return c
}

// newChecker makes a client that reads without recording.
func (r *recorder) newChecker() *client {
	return &client{r: r, id: -1, process: -1}
}

func (r *recorder) takeProcess() int { return int(r.nextProcess.Add(1) - 1) }

// run issues operations until load ends. Calls use ctx, not load: stopping
// the load lets the calls in flight finish instead of turning them unknown.
func (c *client) run(load, ctx context.Context) {
	for load.Err() == nil && !c.r.full() {
		key := c.r.keys[c.rng.IntN(len(c.r.keys))]
		var ok bool
		switch p := c.rng.IntN(100); {
		case p < getPercent:
			_, ok = c.doGet(ctx, key)
		case p < getPercent+putPercent:
			ok = c.doWrite(ctx, key, nil)
		default:
			ok = c.doCAS(ctx, key)
		}
		if !ok {
			c.addr = (c.addr + 1) % len(c.r.cfg.Addrs)
			pause(load, errorPause)
		}
	}
}

// doGet reads key. A failed read changed nothing, so it is not recorded.
func (c *client) doGet(ctx context.Context, key string) (Op, bool) {
	addr := c.r.cfg.Addrs[c.addr]
	opCtx, cancel := context.WithTimeout(ctx, c.r.cfg.OpTimeout)
	defer cancel()
	call := c.r.now()
	value, index, err := c.r.kv.get(opCtx, addr, key)
	ret := c.r.now()
	if err != nil {
		if c.final {
			c.r.cfg.Logf("final read: %v", err)
		}
		return Op{}, false
	}
	op := Op{Process: c.process, Kind: Get, Key: key, Value: value, Index: index, Final: c.final,
		Call: call, Return: ret, Addr: addr}
	c.r.record(op)
	return op, true
}

// doCAS reads key, then writes a new value on condition that the version it
// read is still current.
func (c *client) doCAS(ctx context.Context, key string) bool {
	read, ok := c.doGet(ctx, key)
	if !ok {
		return false
	}
	return c.doWrite(ctx, key, &read)
}

// doWrite puts a fresh value, as a cas against read when read is set.
func (c *client) doWrite(ctx context.Context, key string, read *Op) bool {
	addr := c.r.cfg.Addrs[c.addr]
	op := Op{Process: c.process, Kind: Put, Key: key, Value: c.r.uniqueValue(c.id), Addr: addr}
	var cas *uint64
	if read != nil {
		op.Kind, op.Expect, op.ExpectIndex = CAS, read.Value, read.Index
		cas = &op.ExpectIndex
	}
	opCtx, cancel := context.WithTimeout(ctx, c.r.cfg.OpTimeout)
	defer cancel()
	op.Call = c.r.now()
	ok, index, out, err := c.r.kv.put(opCtx, addr, key, op.Value, cas)
	op.Return = c.r.now()
	switch out {
	case applied:
		op.OK = ok
		if ok {
			op.Index = index
		}
		c.r.record(op)
		return true
	case notApplied:
		if !isDial(err) {
			c.r.cfg.Logf("write refused (a faultcheck bug?): %v", err)
		}
		return false
	}
	op.Unknown, op.Return, op.Err = true, unknownReturn, err.Error()
	c.r.record(op)
	c.r.cfg.Logf("unknown outcome: %s", op)
	// The abandoned op never returns; later ops belong to a new process so
	// that each process stays sequential.
	c.process = c.r.takeProcess()
	return false
}

func isDial(err error) bool { return sentOutcome(err) == notApplied }

// pause waits d or until ctx ends; it paces retries, it orders nothing.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// finalRead reads key, recording the read as final, until one read succeeds
// or the final-read budget runs out.
func (c *client) finalRead(ctx context.Context, key string) bool {
	ok := c.retry(ctx, func() bool {
		_, ok := c.doGet(ctx, key)
		return ok
	})
	if !ok {
		c.r.cfg.Logf("final read of %s: no answer within %v", key, c.r.cfg.FinalReadTimeout)
	}
	return ok
}

// readOnce reads key without recording it, retrying like finalRead.
func (c *client) readOnce(ctx context.Context, key string) (value string, ok bool) {
	ok = c.retry(ctx, func() bool {
		opCtx, cancel := context.WithTimeout(ctx, c.r.cfg.OpTimeout)
		defer cancel()
		v, _, err := c.r.kv.get(opCtx, c.r.cfg.Addrs[c.addr], key)
		value = v
		return err == nil
	})
	return value, ok
}

// retry calls try, moving to the next node after each failure, until it
// succeeds or the final-read budget runs out.
func (c *client) retry(ctx context.Context, try func() bool) bool {
	deadline := time.Now().Add(c.r.cfg.FinalReadTimeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if try() {
			return true
		}
		c.addr = (c.addr + 1) % len(c.r.cfg.Addrs)
		pause(ctx, errorPause)
	}
	return false
}
