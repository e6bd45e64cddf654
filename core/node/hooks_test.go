package node_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/topics"
	"github.com/aspen-db/aspen/sim/disk"
)

func hookConfig(backlogMax int) node.Config {
	cfg := node.DefaultConfig(1, []uint64{1})
	cfg.Hooks.BacklogMax = backlogMax
	return cfg
}

func httpHook(name, pattern string) hooks.Def {
	return hooks.Def{Name: name, Pattern: pattern, Mode: hooks.Ordered, AttemptsMax: 3, TimeoutNs: 5 * second,
		BackoffBaseNs: second, BackoffMaxNs: 4 * second,
		Handler: hooks.Handler{Kind: hooks.HandlerHTTP, URL: "https://example.test/hook", Secret: []byte("sealed")}}
}

// hook sends a hook command or query and returns its answer.
func (s *single) hook(cmd module.Command) (hooks.Answer, node.Response) {
	s.t.Helper()
	s.seq++
	r := s.call(node.Request{Client: 11, Seq: s.seq, Call: &cmd})
	a, _ := r.Value.(hooks.Answer)
	return a, r
}

func (s *single) mustHook(cmd module.Command) hooks.Hook {
	s.t.Helper()
	a, r := s.hook(cmd)
	if r.Outcome != node.OK || len(a.Hooks) != 1 {
		s.t.Fatalf("hook command %d: got %v, want ok", cmd.Kind, r.Err())
	}
	return a.Hooks[0]
}

func (s *single) getHook(name string) hooks.Hook {
	s.t.Helper()
	a, r := s.hook(hooks.Get(name))
	if r.Outcome != node.OK {
		s.t.Fatalf("get hook %s: %v", name, r.Err())
	}
	return a.Hooks[0]
}

// putRev writes key and returns the revision of the write.
func (s *single) putRev(key, value string) int64 {
	s.t.Helper()
	s.seq++
	r := s.call(put(12, s.seq, key, value))
	if r.Outcome != node.OK {
		s.t.Fatalf("put %s: %v", key, r.Err())
	}
	return r.Result.Revision
}

func (s *single) delRev(key string) int64 {
	s.t.Helper()
	s.seq++
	r := s.call(node.Request{Client: 12, Seq: s.seq, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpDelete, Key: []byte(key)}}}})
	if r.Outcome != node.OK {
		s.t.Fatalf("delete %s: %v", key, r.Err())
	}
	return r.Result.Revision
}

// hookJobs returns every job of type typ, by id, with its event decoded.
func (s *single) hookJobs(typ string) ([]jobs.Job, []hooks.Event) {
	s.t.Helper()
	var js []jobs.Job
	for st := jobs.Pending; st <= jobs.Cancelled; st++ {
		a, _ := s.job(99, 0, jobs.List(st, 0, 0))
		for _, j := range a.Jobs {
			if j.Type == typ {
				full, _ := s.job(99, 0, jobs.Get(j.ID)) // a list leaves payloads out
				js = append(js, full.Job)
			}
		}
	}
	slicesSortJobs(js)
	evs := make([]hooks.Event, len(js))
	for i, j := range js {
		if typ == hooks.JobHTTP || typ == hooks.JobShell {
			var p hooks.Payload
			if err := json.Unmarshal(j.Payload, &p); err != nil {
				s.t.Fatalf("job %d payload: %v", j.ID, err)
			}
			evs[i] = p.Event
		} else if err := json.Unmarshal(j.Payload, &evs[i]); err != nil {
			s.t.Fatalf("job %d payload: %v", j.ID, err)
		}
	}
	return js, evs
}

func slicesSortJobs(js []jobs.Job) {
	for i := 1; i < len(js); i++ {
		for k := i; k > 0 && js[k].ID < js[k-1].ID; k-- {
			js[k], js[k-1] = js[k-1], js[k]
		}
	}
}

// finish leases job id as a hook worker would and completes it.
func (s *single) finish(typ string, id jobs.ID) {
	s.t.Helper()
	s.seq++
	a, _ := s.job(13, s.seq, jobs.Lease("hw", []string{typ}, 1))
	if len(a.Jobs) != 1 || a.Jobs[0].ID != id {
		s.t.Fatalf("lease of %s: got %+v, want job %d", typ, a.Jobs, id)
	}
	s.seq++
	if _, r := s.job(13, s.seq, jobs.Complete(id, a.Jobs[0].Token, jobs.Result{})); r.Outcome != node.OK {
		s.t.Fatalf("complete %d: %v", id, r.Err())
	}
}

// restart crashes the node, keeping what was synced, restarts it from its
// disk, and checks the replicated state came back whole.
func (s *single) restart(cfg node.Config) *single {
	s.t.Helper()
	hash := s.n.StateHash()
	s.d.Crash(rand.New(rand.NewPCG(5, 6)), disk.Faults{})
	r := startAt(s.t, s.d, cfg, s.now)
	r.seq = s.seq
	if got := r.n.StateHash(); got != hash {
		s.t.Fatalf("state hash after restart %x, want %x", got, hash)
	}
	return r
}

// restartSame restarts and checks the hooks' state is what it was.
func (s *single) restartSame(cfg node.Config) *single {
	s.t.Helper()
	want := s.n.Hosted("hooks").Hash()
	views := s.n.Hosted("hooks").(*hooks.Module).Hooks()
	r := s.restart(cfg)
	if got := r.n.Hosted("hooks").Hash(); got != want {
		s.t.Fatalf("hooks hash after restart %x, want %x", got, want)
	}
	if got := fmt.Sprint(r.n.Hosted("hooks").(*hooks.Module).Hooks()); got != fmt.Sprint(views) {
		s.t.Fatalf("hooks after restart:\n%s\nwant\n%v", got, views)
	}
	m := r.n.Hosted("hooks").(*hooks.Module)
	fresh := hooks.NewModule(cfg.Hooks, nil)
	if err := fresh.Restore(m.Encode()); err != nil || fresh.Hash() != m.Hash() {
		s.t.Fatalf("snapshot round trip: hash %x, want %x (err %v)", fresh.Hash(), m.Hash(), err)
	}
	return r
}

func TestHookPutDeleteMakeOneJobEach(t *testing.T) {
	cfg := hookConfig(1000)
	s := startAt(t, disk.New(), cfg, 0)
	before := s.n.Hosted("hooks").Hash()
	s.mustHook(hooks.Create(httpHook("web", "svc/")))
	if s.n.Hosted("hooks").Hash() == before {
		t.Fatal("creating a hook did not change the hooks' hash")
	}
	rev := s.putRev("svc/a", "hello")
	s.putRev("other/a", "x")
	js, evs := s.hookJobs(hooks.JobHTTP)
	if len(js) != 1 {
		t.Fatalf("after a put to svc/a and one to other/a: got %d hook jobs, want 1", len(js))
	}
	e := evs[0]
	if e.Kind != hooks.KindPut || e.Key != "svc/a" || string(e.Value) != "hello" || e.Revision != rev || e.Hook != "web" ||
		e.IdempotencyKey != fmt.Sprintf("web:%d:svc/a", rev) || js[0].Key != e.IdempotencyKey || e.Version != 1 {
		t.Fatalf("event: got %+v, want a put of svc/a=hello at %d keyed web:%d:svc/a", e, rev, rev)
	}
	s.finish(hooks.JobHTTP, js[0].ID)
	drev := s.delRev("svc/a")
	s.advance(second) // the leader pumps
	js, evs = s.hookJobs(hooks.JobHTTP)
	if len(js) != 2 || evs[1].Kind != hooks.KindDelete || evs[1].Revision != drev || evs[1].Key != "svc/a" {
		t.Fatalf("after the delete: got %+v, want a second job, a delete at %d", evs, drev)
	}
	s = s.restartSame(cfg)
	if js, _ := s.hookJobs(hooks.JobHTTP); len(js) != 2 {
		t.Fatalf("after restart: %d hook jobs, want 2", len(js))
	}
	if h := s.getHook("web"); h.Stats.Matched != 2 || h.Stats.Submitted != 2 || h.Stats.Delivered != 1 {
		t.Fatalf("stats: got %+v, want 2 matched, 2 submitted, 1 delivered", h.Stats)
	}
}

func TestHookExpireFilterAndEvents(t *testing.T) {
	cfg := hookConfig(1000)
	s := startAt(t, disk.New(), cfg, 0)
	created := httpHook("created", "svc/*")
	created.Mode, created.Parallel, created.Filter = hooks.Parallel, 8, hooks.FilterCreated
	s.mustHook(hooks.Create(created))
	expiry := httpHook("expiry", "svc/**")
	expiry.Mode, expiry.Parallel, expiry.Events = hooks.Parallel, 8, hooks.OnExpire
	s.mustHook(hooks.Create(expiry))
	first := s.putRev("svc/a", "1")
	s.putRev("svc/a", "2") // an update: not for "created"
	s.putRev("svc/b/c", "1")
	if _, r := s.lease(7, 1, lease.Grant(4, 2*second)); r.Outcome != node.OK {
		t.Fatalf("grant: %v", r.Err())
	}
	s.call(putLeased(7, 2, "svc/l", 4))
	s.advance(3 * second)
	_, evs := s.hookJobs(hooks.JobHTTP)
	var got []string
	for _, e := range evs {
		got = append(got, e.Hook+" "+e.Kind+" "+e.Key)
	}
	want := []string{"created put svc/a", "created put svc/l", "expiry expire svc/l"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") || evs[0].Revision != first {
		t.Fatalf("deliveries: got %q, want %q", got, want)
	}
	s.restartSame(cfg)
}

// An ordered hook hands over one delivery at a time: the second starts
// only when the first job has finished and the leader has pumped.
func TestHookOrderedWaitsForTheJob(t *testing.T) {
	cfg := hookConfig(1000)
	s := startAt(t, disk.New(), cfg, 0)
	s.mustHook(hooks.Create(httpHook("o", "svc/")))
	r1 := s.putRev("svc/a", "1")
	r2 := s.putRev("svc/b", "2")
	s.advance(2 * second)
	js, evs := s.hookJobs(hooks.JobHTTP)
	if len(js) != 1 || evs[0].Revision != r1 {
		t.Fatalf("two puts to an ordered hook: got %d jobs, want 1 (revision %d)", len(js), r1)
	}
	if h := s.getHook("o"); h.Backlog != 1 || h.InFlight != 1 {
		t.Fatalf("hook: backlog %d, in flight %d, want 1 and 1", h.Backlog, h.InFlight)
	}
	s = s.restartSame(cfg) // the waiting delivery is on disk
	s.finish(hooks.JobHTTP, js[0].ID)
	s.advance(second)
	js, evs = s.hookJobs(hooks.JobHTTP)
	if len(js) != 2 || evs[1].Revision != r2 {
		t.Fatalf("after the first finished: got %d jobs, want 2, the second at %d", len(js), r2)
	}
	if h := s.getHook("o"); h.Backlog != 0 || h.InFlight != 1 || h.Stats.Delivered != 1 {
		t.Fatalf("hook: got %+v, want nothing waiting, one in flight, one delivered", h)
	}
	s.restartSame(cfg)
}

func TestHookParallelAndRate(t *testing.T) {
	cfg := hookConfig(1000)
	s := startAt(t, disk.New(), cfg, 0)
	p := httpHook("p", "par/")
	p.Mode, p.Parallel = hooks.Parallel, 3
	s.mustHook(hooks.Create(p))
	r := httpHook("r", "rate/")
	r.Mode, r.Parallel, r.RatePerSec, r.Burst = hooks.Parallel, 10, 1, 1
	s.mustHook(hooks.Create(r))
	for i := 0; i < 5; i++ {
		s.putRev(fmt.Sprintf("par/%d", i), "v")
	}
	if js, _ := s.hookJobs(hooks.JobHTTP); len(js) != 3 {
		t.Fatalf("5 puts to a hook of parallel 3: got %d jobs, want 3", len(js))
	}
	s.putRev("rate/a", "v")
	s.putRev("rate/b", "v")
	_, evs := s.hookJobs(hooks.JobHTTP)
	if len(evs) != 4 || evs[3].Key != "rate/a" {
		t.Fatalf("two puts to a hook at 1/s, burst 1: got %d jobs, want 4 (rate/a only)", len(evs))
	}
	s.advance(second / 2) // the leader's clock; replicated time moves with entries only
	if js, _ := s.hookJobs(hooks.JobHTTP); len(js) != 4 {
		t.Fatalf("half a second later: got %d jobs, want still 4", len(js))
	}
	s = s.restartSame(cfg)
	s.advance(2 * second)
	js, evs := s.hookJobs(hooks.JobHTTP)
	if len(evs) != 5 || evs[4].Key != "rate/b" || js[4].SubmittedNs-js[3].SubmittedNs < second {
		t.Fatalf("after the bucket refilled: got %d jobs, want 5 (rate/b last, a second after rate/a)", len(evs))
	}
}

// A hook whose backlog is full lags; once it drains it makes one resync
// delivery naming exactly the revisions it let pass. Nothing is lost.
func TestHookBacklogLagsThenResyncs(t *testing.T) {
	cfg := hookConfig(2)
	s := startAt(t, disk.New(), cfg, 0)
	s.mustHook(hooks.Create(httpHook("lag", "svc/")))
	var revs []int64
	for i := 0; i < 6; i++ {
		revs = append(revs, s.putRev(fmt.Sprintf("svc/%d", i), "v"))
	}
	h := s.getHook("lag")
	if !h.Lagging || h.LagFrom != revs[3] || h.LagTo != revs[5] || h.Stats.Lagged != 3 || h.Backlog != 2 || h.InFlight != 1 {
		t.Fatalf("hook: got %+v, want lagging over revisions %d..%d, 3 lagged, 2 waiting, 1 in flight", h, revs[3], revs[5])
	}
	s = s.restartSame(cfg)
	for i := 0; i < 4; i++ {
		js, _ := s.hookJobs(hooks.JobHTTP)
		s.finish(hooks.JobHTTP, js[len(js)-1].ID)
		s.advance(second)
	}
	_, evs := s.hookJobs(hooks.JobHTTP)
	if len(evs) != 4 {
		t.Fatalf("got %d deliveries, want 4 (3 puts and a resync)", len(evs))
	}
	for i := 0; i < 3; i++ {
		if evs[i].Kind != hooks.KindPut || evs[i].Revision != revs[i] {
			t.Fatalf("delivery %d: got %+v, want the put at %d", i, evs[i], revs[i])
		}
	}
	if e := evs[3]; e.Kind != hooks.KindResync || e.FromRevision != revs[3] || e.ToRevision != revs[5] ||
		e.IdempotencyKey != fmt.Sprintf("lag:resync:%d-%d", revs[3], revs[5]) {
		t.Fatalf("last delivery: got %+v, want a resync of %d..%d", e, revs[3], revs[5])
	}
	if h := s.getHook("lag"); h.Lagging || h.Stats.Resyncs != 1 || h.Stats.Matched != 6 {
		t.Fatalf("hook after the resync: got %+v", h)
	}
	s.restartSame(cfg)
}

func TestHookDisableEnableTriggerDelete(t *testing.T) {
	cfg := hookConfig(1000)
	s := startAt(t, disk.New(), cfg, 0)
	s.mustHook(hooks.Create(httpHook("h", "svc/")))
	s.putRev("svc/a", "1")
	s.putRev("svc/b", "2") // waits behind svc/a
	if h := s.mustHook(hooks.Disable("h")); !h.Disabled {
		t.Fatal("disable: the hook is still enabled")
	}
	s.putRev("svc/c", "3") // not matched: disabled
	if _, r := s.hook(hooks.Trigger("h", []byte("k"), nil)); r.Outcome != node.Conflict {
		t.Fatalf("trigger of a disabled hook: got %v, want conflict", r.Err())
	}
	js, _ := s.hookJobs(hooks.JobHTTP)
	s.finish(hooks.JobHTTP, js[0].ID)
	s.advance(2 * second)
	if js, _ := s.hookJobs(hooks.JobHTTP); len(js) != 1 {
		t.Fatalf("disabled: got %d jobs, want 1 (nothing pumped)", len(js))
	}
	s = s.restartSame(cfg)
	s.mustHook(hooks.Enable("h"))
	s.advance(second)
	js, evs := s.hookJobs(hooks.JobHTTP)
	if len(js) != 2 || evs[1].Key != "svc/b" {
		t.Fatalf("enabled: got %d jobs, want 2 (svc/b second)", len(js))
	}
	s.mustHook(hooks.Trigger("h", []byte("test/key"), []byte("tv")))
	s.finish(hooks.JobHTTP, js[1].ID)
	s.advance(second)
	js, evs = s.hookJobs(hooks.JobHTTP)
	if len(js) != 3 || evs[2].Kind != hooks.KindTrigger || evs[2].Key != "test/key" || string(evs[2].Value) != "tv" {
		t.Fatalf("trigger: got %+v, want a trigger delivery of test/key", evs)
	}
	s.putRev("svc/d", "4")
	s.putRev("svc/e", "5")
	if h := s.getHook("h"); h.Backlog != 2 {
		t.Fatalf("backlog: got %d, want 2", h.Backlog)
	}
	s.mustHook(hooks.Delete("h"))
	if _, r := s.hook(hooks.Get("h")); r.Outcome != node.NotFound {
		t.Fatalf("get after delete: got %v, want not found", r.Err())
	}
	var left []string
	s.d.Scan([]byte("h/"), func(k, _ []byte) error { left = append(left, string(k)); return nil })
	if len(left) != 0 {
		t.Fatalf("records left after the delete: %q", left)
	}
	s.restartSame(cfg)
}

// stepUnsynced is step with every batch written and none synced, so that
// a crash may keep any prefix of them (a driver that syncs late, seen from
// the disk).
func (s *single) stepUnsynced() {
	s.t.Helper()
	s.now += 10_000_000
	s.n.Tick(s.now)
	for s.n.HasReady() {
		rd := s.n.Ready()
		if err := s.d.Apply(rd.Batch); err != nil {
			s.t.Fatal(err)
		}
		s.resp = append(s.resp, rd.Responses...)
		s.n.Advance()
	}
}

// A crash that loses unsynced batches loses a change and its delivery
// together: the queue never holds a hook job the hook does not count, nor
// the reverse.
func TestHookCrashKeepsChangeAndDeliveryTogether(t *testing.T) {
	cfg := hookConfig(3)
	lost := 0
	for seed := uint64(0); seed < 20; seed++ {
		d := disk.New()
		s := startAt(t, d, cfg, 0)
		h := httpHook("c", "svc/")
		h.Mode, h.Parallel = hooks.Parallel, 2
		s.mustHook(hooks.Create(h))
		rng := rand.New(rand.NewPCG(seed, 9))
		for i := 0; i < 10; i++ {
			s.seq++
			s.n.Submit(put(12, s.seq, fmt.Sprintf("svc/%d", i), "v"))
			for k := rng.IntN(3); k > 0; k-- {
				s.stepUnsynced()
			}
		}
		rep := d.Crash(rng, disk.Faults{KeepUnsyncedProb: 0.7, TornProb: 0.5})
		lost += rep.UnsyncedBatches - rep.KeptBatches
		s2 := startAt(t, d, cfg, s.now)
		s2.seq = s.seq
		js, _ := s2.hookJobs(hooks.JobHTTP)
		hk := s2.getHook("c")
		if hk.Stats.Submitted != uint64(len(js)) || hk.InFlight != len(js) {
			t.Fatalf("seed %d: hook counts %d submitted, %d in flight; the queue holds %d hook jobs", seed, hk.Stats.Submitted, hk.InFlight, len(js))
		}
		var records int
		d.Scan([]byte("h/q/"), func(k, _ []byte) error { records++; return nil })
		if records != hk.Backlog {
			t.Fatalf("seed %d: %d delivery records, backlog %d", seed, records, hk.Backlog)
		}
		if hk.Stats.Matched != uint64(hk.Backlog+len(js))+hk.Stats.Lagged {
			t.Fatalf("seed %d: %d matched, %d waiting, %d submitted, %d lagged", seed, hk.Stats.Matched, hk.Backlog, len(js), hk.Stats.Lagged)
		}
		if got := int(s2.n.Status().Revision); got != int(hk.Stats.Matched) {
			t.Fatalf("seed %d: %d puts survived, the hook matched %d", seed, got, hk.Stats.Matched)
		}
	}
	if lost == 0 {
		t.Fatal("no crash lost a batch: the test proves nothing")
	}
}

// A topic hook publishes the event in the change's own apply: the message
// is committed with the put, at its index, keyed by the KV key; a change
// that does not match publishes nothing; a topic that is gone counts the
// delivery failed and never refuses the write.
func TestTopicHookPublishesInTheChangesApply(t *testing.T) {
	d := disk.New()
	s := startAt(t, d, hookConfig(100), 0)
	s.seq++
	create := topics.Create(topics.Def{Name: "events", Partitions: 2, RetainMessages: 100, RetainBytes: 1 << 20})
	if r := s.call(node.Request{Client: 11, Seq: s.seq, Call: &create}); r.Outcome != node.OK {
		t.Fatalf("create topic: %v", r.Err())
	}
	s.mustHook(hooks.Create(hooks.Def{Name: "cdc", Pattern: "svc/", Mode: hooks.Ordered,
		Handler: hooks.Handler{Kind: hooks.HandlerTopic, Topic: "events"}}))
	if _, r := s.hook(hooks.Create(hooks.Def{Name: "nowhere", Pattern: "svc/", Mode: hooks.Ordered,
		Handler: hooks.Handler{Kind: hooks.HandlerTopic, Topic: "missing"}})); r.Outcome != node.NotFound {
		t.Fatalf("a topic hook on a missing topic: %v, want not found", r.Outcome)
	}
	rev := s.putRev("svc/a", "up")
	s.putRev("other/b", "x")
	tm := s.n.Hosted("topics").(*topics.Module)
	p := topics.KeyPartition([]byte("svc/a"), 2)
	msgs := tm.Read("events", p, 0, 10, 1<<20)
	var e hooks.Event
	if len(msgs) != 1 || string(msgs[0].Key) != "svc/a" || json.Unmarshal(msgs[0].Value, &e) != nil || e.Revision != rev || e.Kind != hooks.KindPut || string(e.Value) != "up" {
		t.Fatalf("partition %d: %+v, want one message for the put at revision %d", p, msgs, rev)
	}
	if first, end := tm.Bounds("events", 1-p); end != first {
		t.Fatalf("the other partition holds %d messages, want none", end-first)
	}
	s.seq++
	del := topics.Delete("events")
	if r := s.call(node.Request{Client: 11, Seq: s.seq, Call: &del}); r.Outcome != node.OK {
		t.Fatalf("delete topic: %v", r.Err())
	}
	s.putRev("svc/c", "still written")
	if h := s.getHook("cdc"); h.Stats.Matched != 2 || h.Stats.Delivered != 1 || h.Stats.Failed != 1 {
		t.Fatalf("stats %+v: want 2 matched, 1 delivered, 1 failed (the topic was gone)", h.Stats)
	}
}
