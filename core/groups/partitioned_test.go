package groups

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/aspen-db/aspen/core/module"
)

func partitionedDef(name, topic string) Def {
	return Def{Name: name, Topic: topic, Mode: Partitioned, SessionNs: 10e9}
}

// newPartitioned makes a rig with topic t (4 partitions, 5 messages each)
// and partitioned group g.
func newPartitioned(t tester) *rig {
	r := newRig(t)
	r.log.create("t", 4)
	for p := range 4 {
		for i := range 5 {
			r.log.publish("t", p, fmt.Sprintf("m%d-%d", p, i), r.now)
		}
	}
	r.ok(Create(partitionedDef("g", "t")))
	return r
}

// TestRebalanceRevokesBeforeAssigning: when b joins, a keeps the
// partitions b is to get until it releases them; a may commit them in the
// meantime; after the release b owns them under a new generation, and
// nobody owned a partition twice at any point.
func TestRebalanceRevokesBeforeAssigning(t *testing.T) {
	r := newPartitioned(t)
	a := r.ok(Join("g", "a")).Assignment
	if !slices.Equal(a.Assigned, []int{0, 1, 2, 3}) || len(a.Revoking) != 0 {
		t.Fatalf("first member: got %+v, want all four partitions", a)
	}
	b := r.ok(Join("g", "b")).Assignment
	if len(b.Assigned) != 0 {
		t.Fatalf("newcomer owns %v before a released anything", b.Assigned)
	}
	hb := r.ok(Heartbeat("g", "a")).Assignment
	if len(hb.Revoking) != 2 || len(hb.Assigned) != 2 || hb.Generation != a.Generation {
		t.Fatalf("a's heartbeat after b joined: got %+v, want 2 kept and 2 revoking at generation %d", hb, a.Generation)
	}
	p := hb.Revoking[0]
	r.ok(Commit("g", "a", hb.Generation, p, 3)) // a finishes its work on p first
	genBefore := r.describe("g").Generation
	rel := r.ok(Heartbeat("g", "a", hb.Revoking...)).Assignment
	if len(rel.Revoking) != 0 || rel.Generation <= hb.Generation {
		t.Fatalf("after releasing: got %+v, want nothing revoking and a new generation", rel)
	}
	if g := r.describe("g"); g.Generation != genBefore+1 {
		t.Fatalf("release: generation %d, want %d", g.Generation, genBefore+1)
	}
	b2 := r.ok(Heartbeat("g", "b")).Assignment
	if !slices.Equal(b2.Assigned, hb.Revoking) {
		t.Fatalf("b owns %v, want the released %v", b2.Assigned, hb.Revoking)
	}
	// a's commit for p now fails (not its partition); b's at its
	// generation passes, from where a left it.
	r.refused(Commit("g", "a", rel.Generation, p, 4), module.Conflict)
	r.ok(Commit("g", "b", b2.Generation, p, 4))
	if off := r.describe("g").Offsets[p].Offset; off != 4 {
		t.Fatalf("committed %d, want 4", off)
	}
	r.reload()
}

// checkStaleCommitRefused: a member that joins again (a restarted process
// under the same id) is a new incarnation; the old one's commits, naming
// the old generation, are refused and leave the offset alone.
func checkStaleCommitRefused(r *rig) error {
	old := r.ok(Join("g", "a")).Assignment
	cur := r.ok(Join("g", "a")).Assignment
	if cur.Generation == old.Generation {
		return fmt.Errorf("a second join kept generation %d", cur.Generation)
	}
	r.ok(Commit("g", "a", cur.Generation, 0, 2))
	if a := r.apply(Commit("g", "a", old.Generation, 0, 5)); a.Outcome != module.Conflict {
		return fmt.Errorf("commit from stale generation %d (current %d): got %v, want conflict", old.Generation, cur.Generation, a.Outcome)
	}
	if off := r.describe("g").Offsets[0].Offset; off != 2 {
		return fmt.Errorf("offset %d after a stale commit, want 2", off)
	}
	return nil
}

func TestStaleGenerationCommitRefused(t *testing.T) {
	if err := checkStaleCommitRefused(newPartitioned(t)); err != nil {
		t.Fatal(err)
	}
}

// TestCommitRefusals: every commit the state cannot take is refused with
// a clear outcome, and changes nothing (the rig checks hash and records).
func TestCommitRefusals(t *testing.T) {
	r := newPartitioned(t)
	a := r.ok(Join("g", "a")).Assignment
	r.ok(Join("g", "b"))
	hb := r.ok(Heartbeat("g", "a")).Assignment
	r.ok(Heartbeat("g", "a", hb.Revoking...))
	a2 := r.ok(Heartbeat("g", "a")).Assignment
	mine, theirs := a2.Assigned[0], hb.Revoking[0]
	r.ok(Commit("g", "a", a2.Generation, mine, 3))
	for _, tc := range []struct {
		name string
		c    module.Command
		want module.Outcome
	}{
		{"unknown group", Commit("nope", "a", a2.Generation, mine, 4), module.NotFound},
		{"unknown member", Commit("g", "zed", a2.Generation, mine, 4), module.Conflict},
		{"bad partition", Commit("g", "a", a2.Generation, 9, 4), module.Invalid},
		{"stale generation", Commit("g", "a", a.Generation, mine, 4), module.Conflict},
		{"future generation", Commit("g", "a", a2.Generation+5, mine, 4), module.Conflict},
		{"not the owner", Commit("g", "a", a2.Generation, theirs, 4), module.Conflict},
		{"backwards", Commit("g", "a", a2.Generation, mine, 2), module.Conflict},
		{"past the end", Commit("g", "a", a2.Generation, mine, 6), module.Conflict},
		{"empty member", Commit("g", "", a2.Generation, mine, 4), module.Invalid},
		{"release of a partition the group lacks", Heartbeat("g", "a", 9), module.Invalid},
		{"release of a partition kept", Heartbeat("g", "a", mine), module.Conflict},
		{"competing command", Fetch("g", "a", 1), module.Conflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.t = t
			detail := r.refused(tc.c, tc.want)
			if detail == "" {
				t.Fatal("refusal without a detail")
			}
		})
	}
	r.t = t
	r.ok(Commit("g", "a", a2.Generation, mine, 3)) // the same again: a retry, fine
	if off := r.describe("g").Offsets[mine].Offset; off != 3 {
		t.Fatalf("committed %d, want 3", off)
	}
}

// TestSessionExpiry: the leader expires a member whose session passed on
// replicated time (after its grace for the term), and its partitions go to
// the others; a heartbeat in between keeps it.
func TestSessionExpiry(t *testing.T) {
	r := newPartitioned(t)
	r.ok(Join("g", "a"))
	r.ok(Join("g", "b"))
	hb := r.ok(Heartbeat("g", "a")).Assignment
	r.ok(Heartbeat("g", "a", hb.Revoking...))
	r.graceNow()
	r.now += 6e9
	r.ok(Heartbeat("g", "a"))
	r.now += 6e9 // b's session (10 s) has passed, a's has not
	if n := r.due(); n != 1 {
		t.Fatalf("leader proposed %d commands, want one expiry", n)
	}
	g := r.describe("g")
	if len(g.Members) != 1 || g.Members[0].ID != "a" || len(g.Members[0].Assigned) != 4 {
		t.Fatalf("after b's session ended: %+v, want a alone with all four", g.Members)
	}
	if g.Stats.Expired != 1 {
		t.Fatalf("expired %d, want 1", g.Stats.Expired)
	}
	r.refused(Heartbeat("g", "b"), module.Conflict) // b must join again
	r.reload()
}

// TestExpiryRechecksAtApply: an expiry the leader proposed before a
// heartbeat applied finds the session extended and changes nothing.
func TestExpiryRechecksAtApply(t *testing.T) {
	r := newPartitioned(t)
	r.ok(Join("g", "a"))
	r.graceNow()
	r.now += 11e9
	cmds := r.m.Due(module.Leader{Term: r.term, NowNs: r.now, GraceNs: 1e9})
	if len(cmds) != 1 {
		t.Fatalf("got %d proposals, want one expiry", len(cmds))
	}
	r.ok(Heartbeat("g", "a"))
	r.applyRaw(cmds[0])
	if g := r.describe("g"); len(g.Members) != 1 {
		t.Fatalf("a was expired after its heartbeat applied: %+v", g.Members)
	}
}

// TestNewLeaderGrace: a new leader first extends every session by its
// grace, so a failover longer than a session does not expire everyone.
func TestNewLeaderGrace(t *testing.T) {
	r := newPartitioned(t)
	r.ok(Join("g", "a"))
	r.now += 20e9 // the failover took longer than the session
	r.term++
	r.due() // the grace only
	if g := r.describe("g"); len(g.Members) != 1 {
		t.Fatal("a new leader expired a member before its grace")
	}
	r.ok(Heartbeat("g", "a"))
	r.due()
	if g := r.describe("g"); len(g.Members) != 1 {
		t.Fatal("a member that heartbeat within the grace was expired")
	}
}

// TestReset: an operator resets offsets of an empty group only, to
// earliest, latest, a time or an offset within the bounds.
func TestReset(t *testing.T) {
	r := newPartitioned(t)
	r.ok(Join("g", "a"))
	r.refused(Reset("g", AllPartitions, ToEarliest, 0), module.Conflict)
	r.ok(Leave("g", "a"))
	r.log.trim("t", 1, 2)
	at := r.now + 5
	r.log.publish("t", 1, "late", at)
	for _, tc := range []struct {
		to    ResetTo
		value int64
		want  uint64
	}{{ToLatest, 0, 6}, {ToEarliest, 0, 2}, {ToTime, at, 5}, {ToOffset, 3, 3}} {
		r.ok(Reset("g", 1, tc.to, tc.value))
		if got := r.describe("g").Offsets[1].Offset; got != tc.want {
			t.Fatalf("reset to %d (%d): offset %d, want %d", tc.to, tc.value, got, tc.want)
		}
	}
	r.refused(Reset("g", 1, ToOffset, 1), module.Conflict)  // below first
	r.refused(Reset("g", 1, ToOffset, 7), module.Conflict)  // past end
	r.refused(Reset("g", 4, ToEarliest, 0), module.Invalid) // a partition the topic lacks: the request's fault
	r.refused(Reset("g", 0, 9, 0), module.Invalid)
	if lag := r.describe("g").Offsets[1].Lag; lag != 3 {
		t.Fatalf("lag %d, want 3 (end 6 - committed 3)", lag)
	}
}

// TestCreateAndValidateRefusals: bad definitions and commands are refused
// before the log, unknown topics and held names by the state.
func TestCreateAndValidateRefusals(t *testing.T) {
	r := newPartitioned(t)
	r.refused(Create(partitionedDef("g", "t")), module.Conflict)
	r.refused(Create(partitionedDef("h", "nope")), module.NotFound)
	for name, d := range map[string]Def{
		"no name":           {Topic: "t", Mode: Partitioned, SessionNs: 10e9},
		"no mode":           {Name: "x", Topic: "t", SessionNs: 10e9},
		"short session":     {Name: "x", Topic: "t", Mode: Partitioned, SessionNs: 1},
		"competing session": {Name: "x", Topic: "t", Mode: Competing, SessionNs: 10e9, AckWaitNs: 30e9, DeliveriesMax: 5, InFlightMax: 10},
		"no deliveries":     {Name: "x", Topic: "t", Mode: Competing, AckWaitNs: 30e9, InFlightMax: 10},
	} {
		if a := r.m.Validate(CmdCreate, Create(d).Body); a.Outcome != module.Invalid {
			t.Errorf("%s: got %v, want invalid", name, a.Outcome)
		}
	}
	for _, c := range []module.Command{
		{Kind: CmdExpire, Body: named(CmdExpire, "g").u(0).b},
		{Kind: CmdGrace, Body: []byte{1, 1}},
		{Kind: CmdJoin, Body: []byte{0xff}},
		Fetch("g", "a", 0),
		Settle("g", "a", 9, Handle{P: 0, Off: 0, Delivery: 1}, 0),
		Settle("g", "a", Ack, Handle{P: 0, Off: 0, Delivery: 1}, 5),
		Dead("g", Replay),
	} {
		if a := r.m.Validate(c.Kind, c.Body); a.Outcome != module.Invalid {
			t.Errorf("command %d: got %v, want invalid", c.Kind, a.Outcome)
		}
	}
	r.refused(Join("nope", "a"), module.NotFound)
	r.refused(Leave("g", "zed"), module.NotFound)
	r.refused(Heartbeat("g", "zed"), module.Conflict)
	r.ok(Join("g", "a"))
	r.refused(Heartbeat("g", "a", 0), module.Conflict) // not being revoked
	r.refused(Heartbeat("g", "a", 7), module.Invalid)  // no such partition: the request's fault
	var e *module.Error
	if !errors.As(error(&module.Error{Outcome: module.Conflict}), &e) {
		t.Fatal("module.Error does not match itself")
	}
}

// TestMembersBounded: a group holds at most MembersMax members.
func TestMembersBounded(t *testing.T) {
	r := newPartitioned(t)
	r.m.limits.MembersMax = 2
	r.ok(Join("g", "a"))
	r.ok(Join("g", "b"))
	r.refused(Join("g", "c"), module.TooLarge)
	r.ok(Join("g", "a")) // a rejoin is not a new member
}

// TestDeleteRemovesEveryRecord: a deleted group leaves no record behind,
// and the table reloads without it.
func TestDeleteRemovesEveryRecord(t *testing.T) {
	r := newCompeting(t, 2, 3)
	d := r.ok(Fetch("q", "w", 2)).Deliveries
	r.ok(Settle("q", "w", Terminate, d[0].Handle, 0))
	r.ok(Delete("q"))
	n := 0
	_ = r.d.Scan(prefixGroup, func(k, _ []byte) error { n++; return nil })
	_ = r.d.Scan(prefixPending, func(k, _ []byte) error { n++; return nil })
	_ = r.d.Scan(prefixDead, func(k, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d records left after delete", n)
	}
	r.refused(Fetch("q", "w", 1), module.NotFound)
	r.reload()
}

// TestReadingsAgreeWithDescribe: the metrics' reading of a group is the
// numbers describe answers, lag included.
func TestReadingsAgreeWithDescribe(t *testing.T) {
	r := newPartitioned(t)
	a := r.ok(Join("g", "a")).Assignment
	r.ok(Commit("g", "a", a.Generation, 2, 3))
	d := r.describe("g")
	got := r.m.Readings()
	if len(got) != 1 || got[0].Name != "g" || got[0].Generation != d.Generation || got[0].Members != 1 ||
		!reflect.DeepEqual(got[0].Partitions, d.Offsets) || got[0].Partitions[2].Lag != 2 {
		t.Fatalf("readings: got %+v, want the describe's numbers %+v (lag 2 on partition 2)", got, d)
	}
}
