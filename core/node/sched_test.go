package node_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/sched"
	"github.com/aspen-db/aspen/sim/disk"
)

func (s *single) schedule(client, seq uint64, cmd module.Command) (sched.Answer, node.Response) {
	s.t.Helper()
	r := s.call(node.Request{Client: client, Seq: seq, Call: &cmd})
	a, _ := r.Value.(sched.Answer)
	return a, r
}

func everySecond(name string, catchUp sched.CatchUp, runAll int) sched.Def {
	return sched.Def{Name: name, Spec: "*/1 * * * * *", Job: jobSpec(1), Overlap: sched.OverlapAllow, CatchUp: catchUp, RunAllMax: runAll}
}

// pause pauses schedule name, so that ticks stop while a test looks (every
// call moves the clock), and returns it.
func (s *single) pause(name string) sched.Answer {
	s.t.Helper()
	a, r := s.schedule(7, 1000+uint64(s.now/1e6), sched.Pause(name))
	if r.Outcome != node.OK {
		s.t.Fatalf("pause: %v", r.Err())
	}
	return a
}

// tickJobs returns the idempotency keys of every job, checking each is held once.
func (s *single) tickJobs() map[string]bool {
	s.t.Helper()
	keys := map[string]bool{}
	for st := jobs.Pending; st <= jobs.Cancelled; st++ {
		a, _ := s.job(99, 0, jobs.List(st, 0, 0))
		for _, j := range a.Jobs {
			if keys[j.Key] {
				s.t.Fatalf("two jobs hold key %q", j.Key)
			}
			keys[j.Key] = true
		}
	}
	return keys
}

// wantTicks checks that the jobs are exactly name@T for every whole second
// T in [from, to].
func wantTicks(t *testing.T, keys map[string]bool, name string, from, to int64) {
	t.Helper()
	for at := from; at <= to; at += second {
		if !keys[sched.JobKey(name, at)] {
			t.Errorf("no job for tick %s", time.Unix(0, at).UTC().Format(time.TimeOnly))
		}
	}
	if want := int((to-from)/second) + 1; len(keys) != want {
		t.Errorf("got %d jobs, want %d (one per tick)", len(keys), want)
	}
}

func TestScheduleFiresEachTickOnce(t *testing.T) {
	s := startAt(t, disk.New(), node.DefaultConfig(1, []uint64{1}), 0)
	start := s.now
	a, r := s.schedule(7, 1, sched.Add(everySecond("beat", sched.CatchUpSkip, 0)))
	if r.Outcome != node.OK || a.Schedule.CreatedNs < start || a.Schedule.NextTickNs%second != 0 {
		t.Fatalf("add: got %+v (%v)", a.Schedule, r.Err())
	}
	first := a.Schedule.NextTickNs
	s.advance(5 * second)
	a = s.pause("beat")
	last := a.Schedule.LastTickNs
	wantTicks(t, s.tickJobs(), "beat", first, last)
	if last < first+4*second || a.Schedule.Fired != uint64((last-first)/second+1) || a.Schedule.Missed != 0 {
		t.Fatalf("get: got %+v", a.Schedule)
	}
	h, _ := s.schedule(99, 0, sched.History("beat"))
	if len(h.History) == 0 || h.History[len(h.History)-1].TickNs != last || h.History[0].Outcome != sched.FireCreated {
		t.Fatalf("history: got %+v", h.History)
	}
}

// A restart keeps the schedule and its last fired tick: nothing fires twice,
// and under run-all the ticks that fell while the node was down fire once.
func TestScheduleSurvivesRestart(t *testing.T) {
	d := disk.New()
	cfg := node.DefaultConfig(1, []uint64{1})
	s := startAt(t, d, cfg, 0)
	a, _ := s.schedule(7, 1, sched.Add(everySecond("beat", sched.CatchUpRunAll, 100)))
	first := a.Schedule.NextTickNs
	s.advance(3 * second)
	d.Crash(rand.New(rand.NewPCG(3, 4)), disk.Faults{})

	s = startAt(t, d, cfg, s.now+4*second)
	s.advance(2 * second)
	a = s.pause("beat")
	last := a.Schedule.LastTickNs
	wantTicks(t, s.tickJobs(), "beat", first, last)
	if a.Schedule.Missed != 0 || last < first+8*second {
		t.Fatalf("after restart: got %+v, want none missed, last tick %d", a.Schedule, last)
	}
}

// After downtime under skip, the missed ticks are counted and visible.
func TestScheduleCountsMissedTicks(t *testing.T) {
	d := disk.New()
	cfg := node.DefaultConfig(1, []uint64{1})
	s := startAt(t, d, cfg, 0)
	a, _ := s.schedule(7, 1, sched.Add(everySecond("beat", sched.CatchUpSkip, 0)))
	first := a.Schedule.NextTickNs
	s.advance(second)
	d.Crash(rand.New(rand.NewPCG(3, 4)), disk.Faults{})
	s = startAt(t, d, cfg, s.now+10*second)
	s.advance(second / 2)
	a = s.pause("beat")
	fired := a.Schedule.Fired
	ticks := uint64((a.Schedule.LastTickNs-first)/second) + 1
	if a.Schedule.Missed == 0 || fired+a.Schedule.Missed != ticks || uint64(len(s.tickJobs())) != fired {
		t.Fatalf("after downtime: got %+v, want fired + missed = %d ticks", a.Schedule, ticks)
	}
}

func TestScheduleRefusals(t *testing.T) {
	s := startAt(t, disk.New(), node.DefaultConfig(1, []uint64{1}), 0)
	s.schedule(7, 1, sched.Add(everySecond("beat", sched.CatchUpSkip, 0)))
	before := s.n.Status().Revision
	badZone := everySecond("x", sched.CatchUpSkip, 0)
	badZone.Zone = "Nowhere/Town"
	noType := everySecond("x", sched.CatchUpSkip, 0)
	noType.Job.Type = ""
	cases := []struct {
		name string
		cmd  module.Command
		want node.Outcome
	}{
		{"bad spec", sched.Add(sched.Def{Name: "x", Spec: "* * *", Job: jobSpec(1), Overlap: sched.OverlapAllow, CatchUp: sched.CatchUpSkip}), node.Invalid},
		{"bad zone", sched.Add(badZone), node.Invalid},
		{"no job type", sched.Add(noType), node.Invalid},
		{"duplicate", sched.Add(everySecond("beat", sched.CatchUpSkip, 0)), node.Conflict},
		{"unknown", sched.Pause("nope"), node.NotFound},
		{"the leader's fire", module.Command{Kind: sched.CmdFire, Body: []byte{0}}, node.Invalid},
	}
	for i, c := range cases {
		if _, r := s.schedule(9, uint64(i+1), c.cmd); r.Outcome != c.want || r.Detail == "" {
			t.Errorf("%s: got %v, want %v with a reason", c.name, r.Err(), c.want)
		}
	}
	if a, _ := s.schedule(99, 0, sched.List("", 0)); len(a.Schedules) != 1 || s.n.Status().Revision != before {
		t.Fatalf("refusals changed the schedules: %+v", a.Schedules)
	}
}
