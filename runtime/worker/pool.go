// Package worker runs jobs from the cluster's queue: a pool that leases
// jobs of the types it serves over the HTTP lease protocol, runs each with
// its handler while heartbeating the lease, and reports the outcome under
// the lease's fencing token. The same pool runs inside a node and as a
// standalone `aspen worker`.
//
// A job runs only while its lease holds: the pool stops a job whose lease
// was taken from it (a stale token), and one whose lease it could not
// renew before the deadline it knows of, measured on its own clock from
// when it sent the request that granted or renewed the lease (earlier than
// the leader's stamp, so the worker's view of the deadline is never later
// than the cluster's, up to the clocks' skew).
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/runtime/server"
)

// Outcome is what a handler made of one job: Complete reports it done
// (with Result), else the attempt failed for Reason.
type Outcome struct {
	Complete  bool
	Result    server.JobResult
	Reason    string
	Retryable bool
}

// Handler runs one job. ctx ends when the lease is lost or the pool stops;
// a handler must then stop what it started and return.
type Handler interface {
	Run(ctx context.Context, job server.JobInfo) Outcome
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job server.JobInfo) Outcome

// Run calls f.
func (f HandlerFunc) Run(ctx context.Context, job server.JobInfo) Outcome { return f(ctx, job) }

// Pool leases and runs jobs.
type Pool struct {
	name        string
	handlers    map[string]Handler
	types       []string
	concurrency int
	poll        time.Duration
	client      *Client
	log         *slog.Logger
	metrics     *Metrics
}

// Errors a job's context ends with, for the log and the report.
var (
	errLeaseLost    = errors.New("lease lost: the job is someone else's now")
	errLeaseExpired = errors.New("lease could not be renewed before its deadline")
	errStopping     = errors.New("worker stopping")
)

// Timing of the loop, each with its reason.
const (
	// pollErrorMax caps the wait between lease attempts while the cluster
	// cannot be reached: long enough not to hammer it, short enough to
	// pick work up soon after it is back.
	pollErrorMax = 5 * time.Second
	// heartbeatMin keeps a short lease from turning into a busy loop.
	heartbeatMin = 50 * time.Millisecond
	// reportPatience bounds how long the outcome is retried after the job
	// ran: past it, the lease has long expired and the job is another
	// worker's.
	reportPatience         = time.Minute
	reportPatienceStopping = 2 * time.Second
)

// leaseJobsMax is the most jobs one lease asks for: the queue's default
// bound (core/jobs Limits.LeaseJobsMax), which refuses a request for more
// whole. A pool with more free slots fills them over several leases.
var leaseJobsMax = jobs.DefaultLimits().LeaseJobsMax

// NewPool makes a pool serving the types handlers names.
func NewPool(name string, concurrency int, poll time.Duration, client *Client, handlers map[string]Handler, log *slog.Logger, m *Metrics) (*Pool, error) {
	switch {
	case name == "":
		return nil, errors.New("worker: a name is required (it is the lease holder)")
	case concurrency < 1:
		return nil, fmt.Errorf("worker: concurrency %d: want at least 1", concurrency)
	case len(handlers) == 0:
		return nil, errors.New("worker: no job type to serve")
	case poll <= 0:
		return nil, fmt.Errorf("worker: poll interval %v: want it positive", poll)
	}
	p := &Pool{name: name, handlers: handlers, concurrency: concurrency, poll: poll, client: client, log: log, metrics: m}
	for t := range handlers {
		p.types = append(p.types, t)
	}
	return p, nil
}

// Run leases and runs jobs until ctx ends, then stops the jobs it runs and
// waits for them.
func (p *Pool) Run(ctx context.Context) {
	slots := make(chan struct{}, p.concurrency)
	var running sync.WaitGroup
	defer running.Wait()
	wait := p.poll
	for {
		free := p.concurrency - len(slots)
		if free == 0 {
			select { // every slot busy: wait for one
			case slots <- struct{}{}:
				<-slots
				continue
			case <-ctx.Done():
				return
			}
		}
		want := min(free, leaseJobsMax)
		sent := time.Now()
		leased, err := p.client.Lease(ctx, p.name, p.types, want)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			p.log.Warn("lease failed; retrying", "err", err, "in", wait)
			wait = min(2*wait, pollErrorMax)
		default:
			wait = p.poll
		}
		for _, job := range leased {
			slots <- struct{}{}
			running.Add(1)
			go func() {
				defer func() { <-slots; running.Done() }()
				p.runJob(ctx, job, sent)
			}()
		}
		if len(leased) == want && err == nil {
			continue // more may be waiting
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

// runJob runs one leased job under its heartbeat and reports the outcome.
func (p *Pool) runJob(ctx context.Context, job server.JobInfo, sent time.Time) {
	h := p.handlers[job.Type]
	jctx, stop := context.WithCancelCause(ctx)
	timeout := time.Duration(job.TimeoutMs) * time.Millisecond
	beats := make(chan struct{})
	go func() {
		defer close(beats)
		p.heartbeat(jctx, stop, job, sent, timeout)
	}()
	var out Outcome
	if h == nil { // the cluster gave a type not asked for: never run it
		out = Outcome{Reason: fmt.Sprintf("worker %s has no handler for type %q", p.name, job.Type)}
	} else {
		start := time.Now()
		out = h.Run(jctx, job)
		p.metrics.ran(job.Type, time.Since(start))
	}
	cause := context.Cause(jctx)
	stop(nil)
	<-beats
	switch {
	case errors.Is(cause, errLeaseLost):
		p.log.Warn("job stopped: lease lost", "job", job.ID, "token", job.Token)
		p.metrics.observe(job.Type, "lease_lost")
		return // nothing to report: the job is another worker's
	case out.Complete:
		// It finished before it was stopped: say so, and let the cluster
		// judge the token (a lease expired meanwhile refuses it).
	case errors.Is(cause, errLeaseExpired):
		p.log.Warn("job stopped: lease not renewed in time", "job", job.ID, "token", job.Token)
		out = Outcome{Reason: errLeaseExpired.Error(), Retryable: true}
	case ctx.Err() != nil:
		out = Outcome{Reason: errStopping.Error(), Retryable: true}
	}
	p.report(ctx, job, out)
}

// heartbeat renews the lease every third of its timeout and ends jctx
// when the lease is lost or cannot be renewed before the deadline this
// worker knows of (less a quarter of the timeout, so that the job has
// stopped before the cluster can give it to another worker).
func (p *Pool) heartbeat(jctx context.Context, stop context.CancelCauseFunc, job server.JobInfo, sent time.Time, timeout time.Duration) {
	every := max(timeout/3, heartbeatMin)
	stopAt := plantStopAt(sent.Add(timeout - timeout/4))
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-jctx.Done():
			return
		case <-time.After(time.Until(stopAt)):
			stop(errLeaseExpired)
			return
		case <-tick.C:
		}
		at := time.Now()
		hctx, cancel := context.WithDeadline(jctx, stopAt)
		err := p.client.Heartbeat(hctx, job.ID, job.Token)
		cancel()
		switch {
		case err == nil:
			stopAt = plantStopAt(at.Add(timeout - timeout/4))
		case errors.Is(err, ErrLost):
			stop(errLeaseLost)
			return
		case jctx.Err() == nil:
			p.log.Warn("heartbeat failed; retrying", "job", job.ID, "err", err)
		}
	}
}

// report sends the outcome until the cluster takes it, refuses it as no
// longer this worker's, or reportPatience passes (reportPatienceStopping
// once the pool is stopping, so that a stop is not held up by a cluster
// that is gone).
func (p *Pool) report(pool context.Context, job server.JobInfo, out Outcome) {
	status := "succeeded"
	if !out.Complete {
		status = "failed"
	}
	p.metrics.observe(job.Type, status)
	patience := reportPatience
	if pool.Err() != nil {
		patience = reportPatienceStopping
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for wait := p.poll; ; wait = min(2*wait, pollErrorMax) {
		var err error
		if out.Complete {
			err = p.client.Complete(ctx, job.ID, job.Token, out.Result)
		} else {
			err = p.client.Fail(ctx, job.ID, job.Token, clip(out.Reason, reasonBytesMax), out.Retryable)
		}
		var se *StatusError
		switch {
		case err == nil:
			return
		case errors.As(err, &se) && se.Code < 500:
			p.log.Warn("outcome refused", "job", job.ID, "err", err)
			return
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			p.log.Error("outcome not reported; the lease will expire and the job run again", "job", job.ID, "err", err)
			return
		}
	}
}

// reasonBytesMax keeps a failure's reason within the queue's default text
// limit (core/jobs DefaultLimits().TextBytesMax).
const reasonBytesMax = 1024

// clip cuts s to at most n bytes at a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
