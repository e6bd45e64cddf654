package server

import (
	"fmt"
	"time"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/topics"
)

// loop is the only goroutine that touches the replica.
func (s *Server) loop() {
	defer close(s.done)
	defer func() { s.closeErr = s.shutdown() }()
	clock := newClock()
	ticker := time.NewTicker(s.cfg.Tick)
	defer ticker.Stop()
	// The replica reads the time only from ticks: one now, so that requests
	// taken before the first tick get deadlines from the clock, not from 0.
	s.node.Tick(clock.nowNs())
	s.node.AdvanceElection()
	for {
		select {
		case <-s.stop:
			return
		case <-ticker.C:
			s.node.Tick(clock.nowNs())
		case f := <-s.inbox:
			s.tickIfDue(ticker, clock)
			f()
			s.drainInbox()
		}
		if err := s.handleReady(); err != nil {
			s.fail(err)
			return
		}
	}
}

// clock is the wall clock read once, at start, and moved on by the
// monotonic clock. A leader's readings become replicated time (lease
// deadlines ride on it), so every process must read about the same time,
// across restarts too, as wall clocks do; a clock that started at zero with
// the process would stand replicated time still after a restart until it
// had caught up. The monotonic part keeps an NTP step from moving it.
type clock struct {
	start   time.Time
	startNs int64
}

func newClock() clock {
	now := time.Now()
	return clock{start: now, startNs: now.UnixNano()}
}

func (c clock) nowNs() int64 { return c.startNs + int64(time.Since(c.start)) }

// tickIfDue takes a tick that came due while the loop was busy before the
// inputs waiting with it: the replica stamps writes with its clock as of
// its last tick, and after a stall (a slow fsync on a loaded machine) a
// keep-alive taken first was stamped with time from before the stall, so
// its lease ran out that much early (seen once: 0.43 s of a 3 s TTL). The
// tick count is what it would have been: the tick is only taken sooner.
func (s *Server) tickIfDue(ticker *time.Ticker, clock clock) {
	select {
	case <-ticker.C:
		s.node.Tick(clock.nowNs())
	default:
	}
}

func (s *Server) drainInbox() {
	for i := 0; i < inputsPerRoundMax; i++ {
		select {
		case f := <-s.inbox:
			f()
		default:
			return
		}
	}
}

// handleReady carries out the replica's intents in the order durability
// demands: write, sync, and only then send what acknowledges the write.
// Answers go before the sync: each answers a committed entry (already
// durable on a quorum, whatever becomes of this replica's copy), a read or
// a refusal, so none rests on this batch. Sent after it, the answers to the
// entries the leader just committed waited out the sync of the entries
// proposed since, a whole fsync on every put under load.
func (s *Server) handleReady() error {
	fresh := false // the status was refreshed since the last Ready
	for s.node.HasReady() {
		t0 := time.Now()
		rd := s.node.Ready()
		s.metrics.ready.Observe(time.Since(t0).Seconds())
		// Early messages and answers rest on nothing this batch writes (see
		// node.Ready), so they leave before the write: a leader's appends
		// reach its followers while it writes its own copy, and an answer
		// does not wait for the batch after its commit.
		s.tr.Send(rd.EarlyMessages)
		// Everything a caller may read after its answer (watch history,
		// membership, status) is published before the answer is sent.
		s.publish(rd)
		if rd.MembersChanged {
			s.refreshPeers()
			s.progressReadAt = time.Time{} // the status must name the new members' progress
		}
		fresh = len(rd.Responses) > 0
		if fresh {
			s.refreshStatus()
		}
		for _, r := range rd.Responses {
			s.deliver(r)
		}
		t0 = time.Now()
		if err := s.store.Apply(rd.Batch); err != nil {
			return fmt.Errorf("write batch: %w", err)
		}
		s.metrics.write.Observe(time.Since(t0).Seconds())
		if rd.Sync {
			t0 = time.Now()
			if err := s.store.SyncLog(); err != nil {
				return fmt.Errorf("sync: %w", err)
			}
			s.metrics.fsync.Observe(time.Since(t0).Seconds())
		}
		s.tr.Send(rd.Messages)
		s.node.Advance()
	}
	if s.node.Removed() {
		return ErrRemoved
	}
	if !fresh {
		s.refreshStatus()
	}
	return nil
}

func (s *Server) refreshStatus() {
	st := s.node.StatusWithoutProgress()
	// Members' replication progress is read, like the modules' numbers
	// below, at most every moduleReadEvery: copying raft's progress map
	// after every round was 6% of a leader's CPU under 64 readers.
	now := time.Now()
	if st.Role != s.progressRole || now.Sub(s.progressReadAt) >= moduleReadEvery {
		s.progress, s.progressRole, s.progressReadAt = s.node.Progress(), st.Role, now
	}
	st.Progress = s.progress
	s.status.Store(&st)
	s.leadership.observe(st.Term, st.Lead)
	s.applied.observe(st.Applied)
	s.metrics.observeStatus(st)
	if st.Applied != s.topicsWokenAt {
		s.topicsWokenAt = st.Applied
		s.topicReaders.wake(s.node.Hosted("topics").(*topics.Module))
	}
	// The modules' numbers cost a walk of every hook; a scrape does not need
	// them fresher than this, and a busy loop runs thousands of rounds a second
	// (100 hooks read every round took 15% of put throughput).
	if now.Sub(s.modulesReadAt) >= moduleReadEvery {
		s.modulesReadAt = now
		s.metrics.modules.observe(readModules(s.node, st.Revision))
	}
}

// moduleReadEvery is how often the loop reads the modules' metrics and the
// members' replication progress.
const moduleReadEvery = 100 * time.Millisecond

func (s *Server) deliver(r node.Response) {
	k := waitKey{r.Client, r.Seq}
	if ch, ok := s.waiters[k]; ok {
		delete(s.waiters, k)
		ch <- r // buffered: never blocks
	}
}

func (s *Server) publish(rd node.Ready) {
	if rd.Reset {
		s.hub.reset(s.node.Status().Revision)
		return
	}
	if len(rd.Events) > 0 {
		s.hub.publish(rd.Events)
	}
}
