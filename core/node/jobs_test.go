package node_test

import (
	"math/rand/v2"
	"testing"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/sim/disk"
)

func (s *single) job(client, seq uint64, cmd module.Command) (jobs.Answer, node.Response) {
	s.t.Helper()
	r := s.call(node.Request{Client: client, Seq: seq, Call: &cmd})
	a, _ := r.Value.(jobs.Answer)
	return a, r
}

func jobSpec(attempts int64) jobs.Spec {
	return jobs.Spec{Type: "shell", Payload: []byte("echo hi"), AttemptsMax: attempts, BackoffBaseNs: second, BackoffMaxNs: 2 * second, TimeoutNs: 2 * second}
}

func TestJobSubmitLeaseComplete(t *testing.T) {
	s := startAt(t, disk.New(), node.DefaultConfig(1, []uint64{1}), 0)
	a, r := s.job(7, 1, jobs.Submit(jobSpec(3)))
	if r.Outcome != node.OK || a.Job.ID != 1 || a.Job.State != jobs.Pending {
		t.Fatalf("submit: got %+v (%v), want job 1 pending", a.Job, r.Err())
	}
	a, _ = s.job(8, 1, jobs.Lease("w1", []string{"shell"}, 4))
	if len(a.Jobs) != 1 || a.Jobs[0].Token == 0 || string(a.Jobs[0].Payload) != "echo hi" {
		t.Fatalf("lease: got %+v, want job 1 with a token and its payload", a.Jobs)
	}
	token := a.Jobs[0].Token
	if _, r = s.job(8, 2, jobs.Heartbeat(1, token)); r.Outcome != node.OK {
		t.Fatalf("heartbeat: %v", r.Err())
	}
	if _, r = s.job(8, 3, jobs.Complete(1, token, jobs.Result{ExitCode: 0, Output: []byte("hi\n")})); r.Outcome != node.OK {
		t.Fatalf("complete: %v", r.Err())
	}
	a, _ = s.job(99, 0, jobs.Get(1))
	if a.Job.State != jobs.Succeeded || string(a.Job.Result.Output) != "hi\n" {
		t.Fatalf("get: got %+v, want succeeded with its output", a.Job)
	}
}

// An expired lease puts the job back with the attempt counted; a worker
// holding the old token is refused; after the last attempt the job is dead.
func TestJobExpiryThenDead(t *testing.T) {
	s := startAt(t, disk.New(), node.DefaultConfig(1, []uint64{1}), 0)
	s.job(7, 1, jobs.Submit(jobSpec(2)))
	a, _ := s.job(8, 1, jobs.Lease("w1", []string{"shell"}, 1))
	old := a.Jobs[0].Token
	s.advance(3 * second)
	a, _ = s.job(99, 0, jobs.Get(1))
	if a.Job.State != jobs.Pending || a.Job.Attempts != 1 || a.Job.Reason != "lease expired" {
		t.Fatalf("after the timeout: got %+v, want pending after 1 attempt", a.Job)
	}
	if _, r := s.job(8, 2, jobs.Complete(1, old, jobs.Result{})); r.Outcome != node.Conflict || r.Detail == "" {
		t.Fatalf("complete under the expired token: got %v, want conflict", r.Err())
	}
	s.advance(2 * second) // past the backoff
	a, _ = s.job(9, 1, jobs.Lease("w2", []string{"shell"}, 1))
	if len(a.Jobs) != 1 || a.Jobs[0].Token <= old || a.Jobs[0].Attempts != 2 {
		t.Fatalf("second lease: got %+v, want attempt 2 under a newer token", a.Jobs)
	}
	s.advance(3 * second)
	a, _ = s.job(99, 0, jobs.ListDead(0, 0))
	if len(a.Jobs) != 1 || a.Jobs[0].ID != 1 || a.Jobs[0].Attempts != 2 {
		t.Fatalf("dead letters: got %+v, want job 1 after 2 attempts", a.Jobs)
	}
	if a, r := s.job(7, 2, jobs.RetryDead(1)); r.Outcome != node.OK || a.Job.State != jobs.Pending || a.Job.Attempts != 0 {
		t.Fatalf("retry of the dead letter: got %+v (%v)", a.Job, r.Err())
	}
}

func TestJobIdempotencyAndRefusals(t *testing.T) {
	s := startAt(t, disk.New(), node.DefaultConfig(1, []uint64{1}), 0)
	sp := jobSpec(1)
	sp.Key = "nightly@1"
	first, _ := s.job(7, 1, jobs.Submit(sp))
	again, r := s.job(8, 1, jobs.Submit(sp))
	if r.Outcome != node.OK || !again.Existing || again.Job.ID != first.Job.ID {
		t.Fatalf("second submit with the key: got %+v (%v), want job %d again", again, r.Err(), first.Job.ID)
	}
	hash := s.n.Status()
	big := jobSpec(1)
	big.Payload = make([]byte, 64<<10+1)
	cases := []struct {
		name string
		cmd  module.Command
		want node.Outcome
	}{
		{"payload too large", jobs.Submit(big), node.TooLarge},
		{"no type", jobs.Submit(jobs.Spec{AttemptsMax: 1, TimeoutNs: second}), node.Invalid},
		{"cancel of none", jobs.Cancel(9), node.NotFound},
		{"heartbeat, not leased", jobs.Heartbeat(1, 3), node.Conflict},
		{"leader's expire", module.Command{Kind: jobs.CmdExpire, Body: []byte{0}}, node.Invalid},
		{"drop of a live job", jobs.DropDead(1), node.Conflict},
	}
	for i, c := range cases {
		if _, r := s.job(9, uint64(i+1), c.cmd); r.Outcome != c.want || r.Detail == "" {
			t.Errorf("%s: got %v, want %v with a reason", c.name, r.Err(), c.want)
		}
	}
	if a, _ := s.job(99, 0, jobs.List(jobs.Pending, 0, 0)); len(a.Jobs) != 1 || s.n.Status().Revision != hash.Revision {
		t.Fatalf("refusals changed the queue: %+v", a.Jobs)
	}
}

// Jobs, their tokens and the idempotency keys survive a restart.
func TestJobsSurviveRestart(t *testing.T) {
	d := disk.New()
	s := startAt(t, d, node.DefaultConfig(1, []uint64{1}), 0)
	sp := jobSpec(3)
	sp.Key = "k"
	s.job(7, 1, jobs.Submit(sp))
	s.job(7, 2, jobs.Submit(jobSpec(3)))
	a, _ := s.job(8, 1, jobs.Lease("w1", []string{"shell"}, 1))
	token := a.Jobs[0].Token
	d.Crash(rand.New(rand.NewPCG(3, 4)), disk.Faults{})

	s = startAt(t, d, node.DefaultConfig(1, []uint64{1}), s.now)
	if _, r := s.job(8, 2, jobs.Complete(1, token, jobs.Result{})); r.Outcome != node.OK {
		t.Fatalf("complete after restart: %v", r.Err())
	}
	if a, _ := s.job(9, 1, jobs.Submit(sp)); !a.Existing || a.Job.ID != 1 {
		t.Fatalf("key after restart: got %+v, want job 1", a)
	}
	if a, _ := s.job(99, 0, jobs.List(jobs.Pending, 0, 0)); len(a.Jobs) != 1 || a.Jobs[0].ID != 2 {
		t.Fatalf("pending after restart: got %+v, want job 2", a.Jobs)
	}
}

// A job lease whose deadline passed while the cluster was down gets the new
// leader's grace (one election timeout) before it expires: its worker's next
// heartbeat keeps the job, as a lease's keep-alive keeps its keys.
func TestJobLeaseGetsGraceAfterRestart(t *testing.T) {
	d := disk.New()
	cfg := node.DefaultConfig(1, []uint64{1})
	s := startAt(t, d, cfg, 0)
	s.job(7, 1, jobs.Submit(jobSpec(3)))
	a, _ := s.job(8, 1, jobs.Lease("w1", []string{"shell"}, 1))
	token := a.Jobs[0].Token
	d.Crash(rand.New(rand.NewPCG(3, 4)), disk.Faults{})

	s = startAt(t, d, cfg, s.now+10*second) // the job's deadline is long past
	grace := int64(cfg.ElectionTicks) * cfg.TickNs
	s.advance(grace / 2)
	if _, r := s.job(8, 2, jobs.Heartbeat(1, token)); r.Outcome != node.OK {
		t.Fatalf("heartbeat within the new leader's grace: got %v, want ok", r.Err())
	}
	s.advance(3 * second) // no heartbeat for longer than the timeout
	if a, _ := s.job(99, 0, jobs.Get(1)); a.Job.State != jobs.Pending || a.Job.Attempts != 1 {
		t.Fatalf("after the timeout: got %+v, want pending after 1 attempt", a.Job)
	}
}

// A batch complete is answered item by item, and a retry of it (the same
// session and sequence) replays those answers instead of judging again.
func TestJobCompleteBatchAnswersEachItemAndReplays(t *testing.T) {
	s := startAt(t, disk.New(), node.DefaultConfig(1, []uint64{1}), 0)
	s.job(7, 1, jobs.Submit(jobSpec(3)))
	s.job(7, 2, jobs.Submit(jobSpec(3)))
	a, _ := s.job(8, 1, jobs.Lease("w1", []string{"shell"}, 2))
	if len(a.Jobs) != 2 {
		t.Fatalf("lease: got %d jobs, want 2", len(a.Jobs))
	}
	batch := jobs.CompleteBatch([]jobs.CompleteItem{
		{ID: a.Jobs[0].ID, Token: a.Jobs[0].Token + 1}, // stale
		{ID: a.Jobs[1].ID, Token: a.Jobs[1].Token},
	})
	first, r := s.job(8, 2, batch)
	if r.Outcome != node.OK || len(first.Items) != 2 || first.Items[0].Outcome != node.Conflict || first.Items[1].Outcome != node.OK {
		t.Fatalf("batch: got %v %+v, want ok with items conflict, ok", r.Err(), first.Items)
	}
	again, r := s.job(8, 2, batch)
	if r.Outcome != node.OK || len(again.Items) != 2 || again.Items[0].Outcome != node.Conflict || again.Items[1].Job.State != jobs.Succeeded {
		t.Fatalf("retry: got %v %+v, want the first answer replayed", r.Err(), again.Items)
	}
	if got, _ := s.job(99, 0, jobs.Get(a.Jobs[0].ID)); got.Job.State != jobs.Leased {
		t.Fatalf("job of the stale item: got %v, want still leased", got.Job.State)
	}
}
