package jobs

import (
	"bytes"
	"errors"
	"testing"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
	"pgregory.net/rapid"
)

func testLimits() Limits {
	l := DefaultLimits()
	l.JobsMax, l.FinishedMax, l.FinishedAgeMaxNs, l.TimeoutMinNs = 8, 3, 1000, 10
	return l
}

func spec(typ string, prio int64) Spec {
	return Spec{Type: typ, Priority: prio, AttemptsMax: 2, BackoffBaseNs: 10, BackoffMaxNs: 40, TimeoutNs: 100}
}

func TestLeaseOrderTokenAndTransitions(t *testing.T) {
	tb := New(testLimits())
	a, _, _ := tb.Submit(spec("x", 0), 0)
	b, _, _ := tb.Submit(spec("x", 5), 1)
	c, _, _ := tb.Submit(spec("y", 0), 2)
	got, _ := tb.Lease("w", []string{"x", "y"}, 2, 7, 10)
	if len(got) != 2 || got[0].ID != b.ID || got[1].ID != a.ID {
		t.Fatalf("lease: got %+v, want b (priority 5) then a (oldest)", got)
	}
	if got[0].Token != 7 || got[0].DeadlineNs != 110 || got[0].Attempts != 1 || got[0].State != Leased {
		t.Fatalf("leased job: got %+v, want token 7, deadline 110, attempt 1", got[0])
	}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"heartbeat, stale token", second(tb.Heartbeat(a.ID, 6, 20)), ErrToken},
		{"complete, stale token", second(tb.Complete(a.ID, 8, Result{}, 20)), ErrToken},
		{"complete of a pending job", second(tb.Complete(c.ID, 7, Result{}, 20)), ErrToken},
		{"retry of a live job", second(tb.Retry(a.ID)), ErrState},
		{"cancel of none", second(tb.Cancel(99, 20)), ErrNotFound},
		{"complete", second(tb.Complete(a.ID, 7, Result{ExitCode: 3, Output: []byte("ok")}, 20)), nil},
		{"complete again", second(tb.Complete(a.ID, 7, Result{}, 20)), ErrToken},
		{"cancel of a finished job", second(tb.Cancel(a.ID, 20)), ErrState},
	}
	for _, cs := range cases {
		if !errors.Is(cs.err, cs.want) || (cs.want == nil) != (cs.err == nil) {
			t.Errorf("%s: got %v, want %v", cs.name, cs.err, cs.want)
		}
	}
	if j, _ := tb.Get(a.ID); j.State != Succeeded || j.Result.ExitCode != 3 || string(j.Result.Output) != "ok" {
		t.Fatalf("completed job: got %+v", j)
	}
}

func second[T any](_ T, err error) error { return err }

func TestExpiryBackoffThenDead(t *testing.T) {
	tb := New(testLimits())
	j, _, _ := tb.Submit(spec("x", 0), 0)
	got, _ := tb.Lease("w", []string{"x"}, 1, 3, 0)
	if tb.Expire(j.ID, 3, 99, 4) {
		t.Fatal("expired before the deadline")
	}
	if !tb.Expire(j.ID, got[0].Token, 100, 5) {
		t.Fatal("not expired at the deadline")
	}
	j, _ = tb.Get(j.ID)
	d := Backoff(j.ID, 1, 5, 10, 40)
	if j.State != Pending || j.Attempts != 1 || j.NotBeforeNs != 100+d || d < 5 || d > 10 {
		t.Fatalf("after expiry: got %+v (backoff %d), want pending, attempt 1, not before 100 + 5..10", j, d)
	}
	if got, _ := tb.Lease("w", []string{"x"}, 1, 6, 100+d-1); len(got) != 0 {
		t.Fatal("leased during its backoff")
	}
	got, _ = tb.Lease("w", []string{"x"}, 1, 7, 100+d)
	if _, err := tb.Fail(j.ID, 7, "boom", true, 200, 8); err != nil {
		t.Fatal(err)
	}
	if j, _ = tb.Get(j.ID); j.State != Dead || j.Attempts != 2 || j.Reason != "boom" {
		t.Fatalf("after the last attempt: got %+v, want dead after 2 attempts", j)
	}
	if dl, _ := tb.List(Dead, 0, 10); len(dl) != 1 || dl[0].ID != j.ID {
		t.Fatalf("dead letters: got %+v", dl)
	}
	if j, _ = tb.Retry(j.ID); j.State != Pending || j.Attempts != 0 {
		t.Fatalf("retried dead letter: got %+v, want pending with attempts reset", j)
	}
}

func TestBackoffBounds(t *testing.T) {
	for attempt := int64(1); attempt < 80; attempt++ {
		d := Backoff(1, attempt, uint64(attempt), 1000, 1e9)
		want := min(int64(1e9), 1000<<min(attempt-1, 40))
		if d < want/2 || d > want {
			t.Fatalf("attempt %d: backoff %d, want %d..%d", attempt, d, want/2, want)
		}
	}
}

func TestPruneByCountAndAge(t *testing.T) {
	tb := New(testLimits()) // three finished kept, for 1000 ns
	for i := int64(0); i < 5; i++ {
		j, _, _ := tb.Submit(spec("x", 0), i)
		tb.Cancel(j.ID, i)
	}
	if gone := tb.Prune(4, 0); len(gone) != 2 || gone[0] != 1 || gone[1] != 2 {
		t.Fatalf("prune by count: got %v, want [1 2]", gone)
	}
	if gone := tb.Prune(1003, 10); len(gone) != 2 || tb.Len() != 1 {
		t.Fatalf("prune by age at 1003: got %v (%d left), want jobs 3 and 4 gone", gone, tb.Len())
	}
}

func TestIdempotencyKeyAndLimits(t *testing.T) {
	tb := New(testLimits())
	s := spec("x", 0)
	s.Key = "k"
	a, existing, _ := tb.Submit(s, 0)
	b, existing2, _ := tb.Submit(s, 1)
	if existing || !existing2 || a.ID != b.ID || tb.Len() != 1 {
		t.Fatalf("second submit with a key: got %d (existing %v), want job %d again", b.ID, existing2, a.ID)
	}
	for i := 0; i < 7; i++ {
		tb.Submit(spec("x", 0), 0)
	}
	if _, _, err := tb.Submit(spec("x", 0), 0); !errors.Is(err, ErrFull) {
		t.Fatalf("submit into a full table: got %v, want ErrFull", err)
	}
	bad := []Spec{{}, {Type: "x", AttemptsMax: 0, TimeoutNs: 100}, {Type: "x", AttemptsMax: 1, TimeoutNs: 1},
		{Type: "x", AttemptsMax: 1, TimeoutNs: 100, BackoffBaseNs: 5, BackoffMaxNs: 4},
		{Type: "x", AttemptsMax: 1, TimeoutNs: 100, Payload: make([]byte, 64<<10+1)}}
	for _, s := range bad {
		if err := tb.CheckSpec(s); err == nil {
			t.Errorf("spec %+v: accepted", s)
		}
	}
}

func TestCodecRoundTripAndGarbage(t *testing.T) {
	tb := New(testLimits())
	s := spec("x", 3)
	s.Key, s.Payload = "k", []byte("p")
	tb.Submit(s, 1)
	tb.Submit(spec("y", 0), 2)
	tb.Lease("w", []string{"x"}, 1, 9, 3)
	enc := tb.Encode()
	back, err := Decode(enc, testLimits())
	if err != nil || back.Hash() != tb.Hash() || !bytes.Equal(back.Encode(), enc) {
		t.Fatalf("round trip: err %v, hash %x want %x", err, back.Hash(), tb.Hash())
	}
	for i := range enc {
		if _, err := Decode(enc[:i], testLimits()); err == nil {
			t.Fatalf("truncated at %d: decoded", i)
		}
	}
	if _, err := Decode(append(enc, 0), testLimits()); err == nil {
		t.Fatal("trailing byte: decoded")
	}
	a := Answer{Job: Job{ID: 1, Spec: s, State: Leased, Token: 4}, Existing: true, Jobs: []Job{{ID: 2}}, Next: 2}
	got, err := DecodeAnswer(a.Encode())
	if err != nil || got.Job.ID != 1 || got.Job.Key != "k" || !got.Existing || len(got.Jobs) != 1 || got.Next != 2 {
		t.Fatalf("answer round trip: got %+v, %v", got, err)
	}
	if a.Encode()[0] == 0xFE {
		t.Fatal("answer starts with the host's refusal mark")
	}
	for _, b := range [][]byte{nil, {0}, {0xFE}, {answerVersion}, append(a.Encode(), 1)} {
		if _, err := DecodeAnswer(b); err == nil {
			t.Errorf("answer %x: decoded", b)
		}
	}
}

// The module refuses malformed and oversized commands before proposing, and
// the leader's own kinds from clients; a refusal changes nothing.
func TestValidateAndRefusals(t *testing.T) {
	m := NewModule(testLimits())
	cases := []struct {
		name string
		cmd  module.Command
		want module.Outcome
	}{
		{"submit garbage", module.Command{Kind: CmdSubmit, Body: []byte{9}}, module.Invalid},
		{"payload too large", Submit(Spec{Type: "x", AttemptsMax: 1, TimeoutNs: 100, Payload: make([]byte, 64<<10+1)}), module.TooLarge},
		{"lease no types", Lease("w", nil, 1), module.Invalid},
		{"lease too many", Lease("w", []string{"x"}, 17), module.Invalid},
		{"heartbeat token 0", Heartbeat(1, 0), module.Invalid},
		{"output too large", Complete(1, 2, Result{Output: make([]byte, 64<<10+1)}), module.TooLarge},
		{"expire forged", module.Command{Kind: CmdExpire, Body: []byte{0}}, module.Invalid},
		{"prune forged", module.Command{Kind: CmdPrune}, module.Invalid},
		{"fail flag 2", module.Command{Kind: CmdFail, Body: []byte{1, 1, 0, 2}}, module.Invalid},
	}
	for _, c := range cases {
		if a := m.Validate(c.cmd.Kind, c.cmd.Body); a.Outcome != c.want || a.Detail == "" {
			t.Errorf("%s: got %v %q, want %v", c.name, a.Outcome, a.Detail, c.want)
		}
	}
	env := &module.Env{Index: 5, NowNs: 1, Batch: &storage.Batch{}}
	h := m.Hash()
	for _, c := range []module.Command{Cancel(1), Complete(1, 2, Result{}), RetryDead(1), DropDead(1)} {
		if a := m.Apply(env, c.Kind, c.Body); a.Outcome != module.NotFound {
			t.Errorf("kind %d on no job: got %v, want not found", c.Kind, a.Outcome)
		}
	}
	if m.Hash() != h {
		t.Fatal("refusals changed the table")
	}
}

// A simple model of one job's life, checked against the table under random
// commands: states move only along allowed transitions, attempts never
// exceed the max, a stale token never completes, and the dead letters are
// exactly the jobs that ran out of attempts. The per-state counts equal a
// recount after every command, prune and snapshot round trip included, and
// the counters follow what the commands did.
func TestTableAgainstModel(t *testing.T) {
	allowed := map[[2]State]bool{
		{Pending, Leased}: true, {Pending, Cancelled}: true, {Leased, Pending}: true, {Leased, Succeeded}: true,
		{Leased, Failed}: true, {Leased, Dead}: true, {Leased, Cancelled}: true, {Dead, Pending}: true,
	}
	rapid.Check(t, func(rt *rapid.T) {
		l := testLimits()
		l.JobsMax, l.FinishedMax, l.FinishedAgeMaxNs = 6, rapid.IntRange(1, 100).Draw(rt, "finishedMax"), 1<<60
		tb := New(l)
		now, index := int64(0), uint64(0)
		ranOut := map[ID]bool{}
		var want Counters
		for step := 0; step < 60; step++ {
			now += rapid.Int64Range(0, 60).Draw(rt, "dt")
			index++
			before := map[ID]Job{}
			for _, id := range tb.ids() {
				before[id], _ = tb.Get(id)
			}
			id := ID(rapid.IntRange(1, 7).Draw(rt, "id"))
			j, _ := tb.Get(id)
			token := j.Token
			if rapid.Bool().Draw(rt, "stale") {
				token = rapid.Uint64Range(0, index).Draw(rt, "token")
			}
			switch rapid.IntRange(0, 9).Draw(rt, "op") {
			case 0:
				s := spec("x", rapid.Int64Range(0, 2).Draw(rt, "prio"))
				s.AttemptsMax = rapid.Int64Range(1, 3).Draw(rt, "attempts")
				tb.Submit(s, now)
			case 1:
				leased, _ := tb.Lease("w", []string{"x"}, rapid.IntRange(1, 3).Draw(rt, "n"), index, now)
				for _, lj := range leased {
					if lj.Attempts > 1 {
						want.Retries++
					}
				}
			case 2:
				_, err := tb.Complete(id, token, Result{}, now)
				if err == nil && (j.State != Leased || token != j.Token) {
					rt.Fatalf("job %d completed under token %d, held %+v", id, token, j)
				}
			case 3:
				tb.Fail(id, token, "r", rapid.Bool().Draw(rt, "retryable"), now, index)
			case 4:
				for _, e := range tb.Expired(now, 10) {
					if tb.Expire(e.ID, e.Token, now, index) {
						want.LeaseExpiries++
					}
				}
			case 5:
				tb.Cancel(id, now)
			case 6:
				tb.Retry(id)
			case 7:
				tb.Heartbeat(id, token, now)
			case 8:
				tb.Drop(id)
			case 9:
				tb.Prune(now, rapid.IntRange(0, 3).Draw(rt, "prune"))
			}
			recount := Counts{}
			for _, id := range tb.ids() {
				j, _ := tb.Get(id)
				*countOf(&recount, j.State)++
				b, existed := before[id]
				if existed && b.State != j.State && !allowed[[2]State{b.State, j.State}] {
					rt.Fatalf("job %d moved %v -> %v", id, b.State, j.State)
				}
				if j.Attempts > j.AttemptsMax || j.Attempts < 0 {
					rt.Fatalf("job %d: %d of %d attempts", id, j.Attempts, j.AttemptsMax)
				}
				if existed && b.State == Leased && j.State == Dead {
					want.DeadLetters++
					ranOut[id] = b.Attempts == b.AttemptsMax
					if !ranOut[id] {
						rt.Fatalf("job %d dead with attempts left: %+v", id, b)
					}
				}
				if j.State == Dead && !ranOut[id] {
					rt.Fatalf("job %d dead without running out of attempts", id)
				}
			}
			if got := tb.Counts(); got != recount {
				rt.Fatalf("counts: got %+v, recount %+v", got, recount)
			}
			if got := tb.Counters(); got != want {
				rt.Fatalf("counters: got %+v, want %+v", got, want)
			}
			dead, _ := tb.List(Dead, 0, 100)
			if len(dead) != tb.Count(Dead) {
				rt.Fatalf("dead letters %d, dead jobs %d", len(dead), tb.Count(Dead))
			}
			back, err := Decode(tb.Encode(), l)
			if err != nil || back.Hash() != tb.Hash() || back.Counts() != recount {
				rt.Fatalf("snapshot round trip: %v, counts %+v, want %+v", err, back.Counts(), recount)
			}
		}
	})
}

// countOf points at the count of state s in c.
func countOf(c *Counts, s State) *int {
	return [...]*int{Pending: &c.Pending, Leased: &c.Leased, Succeeded: &c.Succeeded, Failed: &c.Failed, Dead: &c.Dead, Cancelled: &c.Cancelled}[s]
}
