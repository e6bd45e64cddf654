package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

// `aspen group consume`: a consumer that processes each message (prints
// it, or runs a command with it) and only then acks or commits it, so a
// consumer killed in between sees the message again: at least once.
//
// Partitioned: it joins, heartbeats at a third of the session on a
// goroutine of its own, reads its assigned partitions in turn and commits
// after each batch. When a round finds nothing it waits on every assigned
// partition at once (a read with WaitMs each) until one has a message or
// the assignment changes. A partition being revoked is committed and
// released in the next heartbeat; the consumer never reads it again unless
// it comes back. A commit refused as stale (the session ended, a
// rebalance) drops what was read and follows the assignment the next
// heartbeat answers.
// Competing: it fetches a batch (waiting for one with WaitMs), processes
// each message and settles the batch in one call: acks what it processed,
// naks what its command failed on; it renews a lease while its command
// runs, and settles what it has done so far once a third of the ack wait
// has passed since its batch began.
// Ctrl-C and SIGTERM stop it after the message in hand: it commits, naks
// what it fetched and did not process, and leaves. Writes go under the
// consumer's own sessions (writer), so a retried one applies once.

const (
	consumeBatchDefault = 100
	consumePollDefault  = 200 * time.Millisecond
	// consumeWaitMs is how long one waiting fetch or read waits for a
	// message, well under the server's bound: an idle consumer asks again
	// this often.
	consumeWaitMs = 5_000
	// consumeCallTimeout bounds one call to the cluster; a consumer retries
	// a failed call after a poll rather than giving up.
	consumeCallTimeout = 10 * time.Second
	// consumeFailuresMax is how many calls in a row may fail before the
	// consumer gives up: the cluster is gone, not between leaders.
	consumeFailuresMax = 50
)

// consumer is one running `group consume`.
type consumer struct {
	cl      *client
	group   server.GroupInfo
	member  string
	argv    []string
	out     io.Writer
	errOut  io.Writer
	max     int // 0: no bound
	batch   int
	poll    time.Duration
	handled int
	fails   int
	w       *writer       // the reading goroutine's writes
	hb      *writer       // joins and heartbeats, which the heartbeat goroutine sends too
	moved   chan struct{} // a heartbeat answered another assignment (buffered, 1)

	mu       sync.Mutex // the assignment and what waits to be released
	assign   server.GroupAssignment
	released []int // revoked partitions committed and given up, for the next heartbeat
	pos      map[int]uint64
}

func runGroupConsume(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 || args[0] == "--" {
		return usageError("group consume wants GROUP, got %q", args)
	}
	c, argv, err := flagsAfterArg(c, args[1:])
	if err != nil {
		return err
	}
	k := &consumer{cl: kvClient(c), member: c.String("member"), argv: argv, out: c.App.Writer, errOut: c.App.ErrWriter,
		max: c.Int("max"), batch: c.Int("batch"), poll: c.Duration("poll"), pos: map[int]uint64{}, moved: make(chan struct{}, 1)}
	k.w, k.hb = newWriter(k.cl), newWriter(k.cl)
	switch {
	case k.member == "":
		return usageError("group consume wants --member ID")
	case k.max < 0 || k.batch < 1 || k.poll <= 0:
		return usageError("group consume: --max must not be negative, --batch and --poll must be positive")
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := k.call(c.Context, "describe", server.GroupRequest{Name: args[0]}, &k.group); err != nil {
		return failure("group consume: %v", err)
	}
	if k.group.Mode == "competing" {
		err = k.runCompeting(ctx)
	} else {
		err = k.runPartitioned(ctx)
	}
	if err != nil {
		return failure("group consume %s: %v", args[0], err)
	}
	return nil
}

// call runs one group call: a read as is, a write under the consumer's
// session (joins and heartbeats under their own), each bounded by
// consumeCallTimeout past what it waits.
func (k *consumer) call(ctx context.Context, op string, req any, v any) error {
	timeout := consumeCallTimeout
	if r, ok := req.(server.GroupRequest); ok {
		timeout += time.Duration(r.WaitMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case groupReads[op]:
		return groupCall(ctx, k.cl, op, req.(server.GroupRequest), v)
	case op == "join" || op == "heartbeat":
		return k.hb.post(ctx, "group/"+op, req, v)
	}
	return k.w.post(ctx, "group/"+op, req, v)
}

// refused reports whether err is the cluster's refusal with status code.
func refused(err error, code int) bool {
	var se *statusError
	return errors.As(err, &se) && se.Code == code
}

// transient counts a failed call that may pass (no leader, a timeout), and
// reports whether to go on; a refusal is never transient.
func (k *consumer) transient(ctx context.Context, err error) bool {
	var se *statusError
	if errors.As(err, &se) && se.Code/100 == 4 {
		return false
	}
	if k.fails++; k.fails > consumeFailuresMax {
		return false
	}
	fmt.Fprintf(k.errOut, "aspen: %v; retrying\n", err)
	k.sleep(ctx)
	return true
}

func (k *consumer) sleep(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(k.poll):
	}
}

func (k *consumer) done() bool { return k.max > 0 && k.handled >= k.max }

// process handles one message: prints it, or runs the command with it,
// renewing while it runs (renew nil: nothing to renew). It reports whether
// the message was processed.
func (k *consumer) process(m *server.GroupMessage, renew func()) bool {
	key, value := messageBytes(m)
	if len(k.argv) == 0 {
		shown := "-"
		if key != nil {
			shown = displayValue(key)
		}
		fmt.Fprintf(k.out, "%d %d %s %s\n", m.Partition, m.Offset, shown, displayValue(value))
		return true
	}
	cmd := exec.Command(k.argv[0], k.argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(value), k.out, k.errOut
	cmd.Env = append(os.Environ(), "ASPEN_GROUP="+k.group.Name, "ASPEN_TOPIC="+k.group.Topic,
		"ASPEN_PARTITION="+strconv.Itoa(m.Partition), "ASPEN_OFFSET="+strconv.FormatUint(m.Offset, 10), "ASPEN_KEY="+string(key))
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(k.errOut, "aspen: run %s: %v\n", k.argv[0], err)
		return false
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	every := time.Duration(max(k.group.AckWaitMs/3, 100)) * time.Millisecond
	for {
		select {
		case err := <-exited:
			if err != nil {
				fmt.Fprintf(k.errOut, "aspen: %s for %d/%d: %v\n", k.argv[0], m.Partition, m.Offset, err)
			}
			return err == nil
		case <-time.After(every):
			if renew != nil {
				renew()
			}
		}
	}
}

func messageBytes(m *server.GroupMessage) (key, value []byte) {
	switch {
	case m.Key != nil:
		key = []byte(*m.Key)
	case m.KeyBase64 != "":
		key, _ = base64.StdEncoding.DecodeString(m.KeyBase64)
	}
	value = []byte(m.Value)
	if m.ValueBase64 != "" {
		value, _ = base64.StdEncoding.DecodeString(m.ValueBase64)
	}
	return key, value
}

// runCompeting fetches, processes and settles until done or stopped.
func (k *consumer) runCompeting(ctx context.Context) error {
	for !k.done() && ctx.Err() == nil {
		n := k.batch
		if k.max > 0 {
			n = min(n, k.max-k.handled)
		}
		var f server.GroupDeliveries
		req := server.GroupRequest{Name: k.group.Name, Member: k.member, Max: n, WaitMs: consumeWaitMs}
		if err := k.call(ctx, "fetch", req, &f); err != nil {
			if ctx.Err() != nil || !k.transient(ctx, err) {
				return ignoreStop(ctx, err)
			}
			continue
		}
		k.fails = 0
		k.handleBatch(ctx, f.Messages)
	}
	return nil
}

// handleBatch processes each fetched message and settles them in one
// call: ack what was processed, nak what the command failed on and, when
// stopping, what was not processed (it goes out again at once). What is
// done is settled early once a third of the ack wait has passed since the
// batch began, so a slow batch does not outlive its leases.
func (k *consumer) handleBatch(ctx context.Context, msgs []server.GroupDelivery) {
	var items []server.GroupSettleItem // the settles of msgs[from:i]
	from := 0
	early := time.Now().Add(time.Duration(k.group.AckWaitMs/3) * time.Millisecond)
	for i := range msgs {
		d := &msgs[i]
		if ctx.Err() != nil {
			items = append(items, server.GroupSettleItem{Op: "nak", Handle: d.Handle})
			continue
		}
		req := server.GroupRequest{Name: k.group.Name, Member: k.member, Handle: d.Handle}
		renew := func() { k.call(ctx, "progress", req, &server.GroupDeliveries{}) }
		op := "nak"
		if k.process(&d.GroupMessage, renew) {
			op = "ack"
			k.handled++
		}
		items = append(items, server.GroupSettleItem{Op: op, Handle: d.Handle})
		if time.Now().After(early) {
			k.settle(msgs[from:i+1], items)
			from, items = i+1, nil
			early = time.Now().Add(time.Duration(k.group.AckWaitMs/3) * time.Millisecond)
		}
	}
	k.settle(msgs[from:], items)
}

// settle sends items, the settles of msgs[:len(items)], in one call. A
// refused ack (the ack wait ended first: the message goes out again, at
// least once) is reported and the consumer goes on.
func (k *consumer) settle(msgs []server.GroupDelivery, items []server.GroupSettleItem) {
	if len(items) == 0 {
		return
	}
	var a server.GroupBatchAnswer
	req := server.GroupSettleBatch{Name: k.group.Name, Member: k.member, Items: items}
	if err := k.call(context.Background(), "settle/batch", req, &a); err != nil {
		fmt.Fprintf(k.errOut, "aspen: settle %d messages: %v\n", len(items), err)
		return
	}
	for i, it := range a.Items {
		if it.Status != http.StatusOK && i < len(items) {
			fmt.Fprintf(k.errOut, "aspen: %s %d/%d: %s\n", items[i].Op, msgs[i].Partition, msgs[i].Offset, it.Error)
		}
	}
}

// commit commits partition p up to off under generation gen.
func (k *consumer) commit(p int, gen uint64, off int64) error {
	req := server.GroupRequest{Name: k.group.Name, Member: k.member, Generation: gen, Partition: &p, Offset: &off}
	return k.call(context.Background(), "commit", req, &server.GroupDone{})
}

func ignoreStop(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// runPartitioned joins, heartbeats on a goroutine, and reads, processes
// and commits its partitions until done or stopped; then it leaves.
func (k *consumer) runPartitioned(ctx context.Context) error {
	var a server.GroupAssignment
	if err := k.call(ctx, "join", server.GroupRequest{Name: k.group.Name, Member: k.member}, &a); err != nil {
		return ignoreStop(ctx, err)
	}
	k.assign = a
	hbCtx, stopHB := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); k.heartbeats(hbCtx) }()
	err := k.readLoop(ctx)
	stopHB()
	wg.Wait()
	k.call(context.Background(), "leave", server.GroupRequest{Name: k.group.Name, Member: k.member}, &server.GroupDone{})
	return err
}

// heartbeats beats at a third of the session until ctx ends.
func (k *consumer) heartbeats(ctx context.Context) {
	every := time.Duration(max(k.group.SessionMs/3, 100)) * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
			k.heartbeat(ctx)
		}
	}
}

// heartbeat sends one heartbeat with the partitions waiting to be
// released, and takes the assignment it answers; a member whose session
// ended joins again.
func (k *consumer) heartbeat(ctx context.Context) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var a server.GroupAssignment
	err := k.call(ctx, "heartbeat", server.GroupRequest{Name: k.group.Name, Member: k.member, Released: k.released}, &a)
	if refused(err, http.StatusConflict) {
		k.released = nil // a session that ended released everything
		clear(k.pos)     // and others may have committed since
		err = k.call(ctx, "join", server.GroupRequest{Name: k.group.Name, Member: k.member}, &a)
	}
	if err != nil {
		fmt.Fprintf(k.errOut, "aspen: heartbeat: %v\n", err)
		return
	}
	k.released = nil
	if !slices.Equal(a.Assigned, k.assign.Assigned) || !slices.Equal(a.Revoking, k.assign.Revoking) {
		select { // wake a waiting read loop
		case k.moved <- struct{}{}:
		default:
		}
	}
	k.assign = a
}

// readLoop reads each assigned partition in turn; a partition being
// revoked is released (its reads were committed batch by batch).
func (k *consumer) readLoop(ctx context.Context) error {
	for !k.done() && ctx.Err() == nil {
		k.mu.Lock()
		a := k.assign
		for _, p := range a.Revoking {
			if !slices.Contains(k.released, p) {
				k.released = append(k.released, p)
				delete(k.pos, p)
			}
		}
		release := len(k.released) > 0
		k.mu.Unlock()
		if release {
			k.heartbeat(ctx) // give it up now, not a third of a session later
			continue
		}
		got := 0
		for _, p := range a.Assigned {
			if k.done() || ctx.Err() != nil {
				break
			}
			n, err := k.readPartition(ctx, p)
			if err != nil {
				if ctx.Err() != nil || !k.transient(ctx, err) {
					return ignoreStop(ctx, err)
				}
				continue
			}
			k.fails, got = 0, got+n
		}
		if got == 0 {
			k.await(ctx, a.Assigned)
		}
	}
	return nil
}

// await waits until one of parts has a message past what was processed
// (a read with WaitMs of each at once, whose answer the next round reads
// again, in order), the assignment changes, or the waits end; it pauses
// for --poll when every wait failed, as after any failed call.
func (k *consumer) await(ctx context.Context, parts []int) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: each read answers at once
	defer cancel()
	found := make(chan int, len(parts)) // 1 a message, 0 none, -1 failed; buffered: no read waits to report
	for _, p := range parts {
		req := server.GroupRequest{Name: k.group.Name, Member: k.member, Partition: &p, Max: 1, WaitMs: consumeWaitMs}
		k.mu.Lock()
		if off, ok := k.pos[p]; ok {
			from := int64(off)
			req.From = &from
		}
		k.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r server.GroupMessages
			switch err := k.call(ctx, "read", req, &r); {
			case err != nil:
				found <- -1
			case len(r.Messages) > 0:
				found <- 1
			default:
				found <- 0
			}
		}()
	}
	if len(parts) == 0 { // nothing to wait on: until the assignment changes
		select {
		case <-k.moved:
		case <-ctx.Done():
		case <-time.After(consumeWaitMs * time.Millisecond):
		}
		return
	}
	failed := 0
	for range parts {
		select {
		case got := <-found:
			if got == 1 {
				return
			}
			failed -= got
		case <-k.moved:
			return
		case <-ctx.Done():
			return
		}
	}
	if failed == len(parts) {
		k.sleep(ctx)
	}
}

// readPartition reads a batch of partition p, processes it in order and
// commits up to the last message processed. A read or commit refused for
// the assignment (409) asks for the assignment again.
func (k *consumer) readPartition(ctx context.Context, p int) (int, error) {
	req := server.GroupRequest{Name: k.group.Name, Member: k.member, Partition: &p, Max: k.batch}
	if k.max > 0 {
		req.Max = min(req.Max, k.max-k.handled)
	}
	k.mu.Lock()
	if off, ok := k.pos[p]; ok {
		from := int64(off)
		req.From = &from
	}
	k.mu.Unlock()
	var r server.GroupMessages
	err := k.call(ctx, "read", req, &r)
	if refused(err, http.StatusConflict) {
		k.heartbeat(ctx)
		return 0, nil
	}
	if err != nil || len(r.Messages) == 0 {
		return 0, err
	}
	next, n := r.Messages[0].Offset, 0
	for i := range r.Messages {
		if ctx.Err() != nil || !k.process(&r.Messages[i], nil) {
			break // not processed: read again from here
		}
		next, n = r.Messages[i].Offset+1, n+1
	}
	if n == 0 {
		return 0, nil
	}
	off := int64(next)
	k.mu.Lock()
	gen := k.assign.Generation // a heartbeat since may have moved it; the commit checks p is still ours
	k.mu.Unlock()
	err = k.commit(p, gen, off)
	if refused(err, http.StatusConflict) {
		// The member's generation moved under it (a rebalance gave it a
		// partition: the cluster bumps its generation without telling
		// it), or p is no longer its. Ask now rather than at the next
		// heartbeat: reading p again from the committed offset would
		// process this batch again, and again, until then. If p is still
		// its, the batch it processed is its to commit.
		k.heartbeat(ctx)
		k.mu.Lock()
		a := k.assign
		k.mu.Unlock()
		if a.Generation != gen && (slices.Contains(a.Assigned, p) || slices.Contains(a.Revoking, p)) {
			err = k.commit(p, a.Generation, off)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if refused(err, http.StatusConflict) {
		// Fenced: the partition may be someone else's now; what was
		// processed here will be processed again there (at least once).
		delete(k.pos, p)
		return n, nil
	}
	if err != nil {
		delete(k.pos, p)
		return n, err
	}
	k.pos[p] = next
	k.handled += n
	return n, nil
}
