package sim

import (
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/groups"
	"github.com/aspen-db/aspen/core/node"
)

// The groups checker fed hand-made reports: each broken rule is reported.
func TestGroupsCheckerReports(t *testing.T) {
	off := func(v uint64) *uint64 { return &v }
	owners := func(gen uint64, member string, os ...string) groups.Change {
		return groups.Change{Group: "g", Owners: os, Generation: gen, Member: member}
	}
	commit := func(member string, gen uint64, p int, o uint64) groups.Change {
		return groups.Change{Group: "g", Offset: off(o), P: p, Member: member, Generation: gen}
	}
	start := []struct {
		kind byte
		c    groups.Change
	}{
		{groups.CmdCreate, owners(0, "", "", "")},
		{groups.CmdJoin, owners(1, "a", "a", "a")},
		{groups.CmdJoin, owners(2, "b", "a", "a")}, // b joins; partition 1 is being revoked from a
	}
	cases := []struct {
		name string
		kind byte
		c    groups.Change
		want string // "" for none
	}{
		{"owner commits", groups.CmdCommit, commit("a", 1, 0, 3), ""},
		{"stale generation", groups.CmdCommit, commit("a", 0, 0, 3), "commit from a stale generation accepted"},
		{"non-owner", groups.CmdCommit, commit("b", 2, 0, 3), "commit by a non-owner accepted"},
		{"released", groups.CmdHeartbeat, owners(3, "a", "a", "b"), ""},
		{"taken", groups.CmdJoin, owners(3, "c", "a", "b"), "two live members own partition 1"},
		{"generation", groups.CmdJoin, owners(2, "c", "a", "a"), "owners of 2 partitions at generation 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &World{check: newChecker()}
			w.newGroupsChecker()
			idx := uint64(0)
			apply := func(kind byte, ch groups.Change) {
				idx++
				w.groupApplied(&node.Applied{Index: idx, Kind: kind}, &ch)
			}
			for _, s := range start {
				apply(s.kind, s.c)
			}
			apply(c.kind, c.c)
			got := strings.Join(w.check.violations, "; ")
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// An ack accepted for a delivery that is no longer the message's latest,
// or after its deadline with no grace since, is reported.
func TestGroupsCheckerReportsLateAcks(t *testing.T) {
	deliver := func(d uint32, member string, deadline int64) groups.Change {
		return groups.Change{Group: "q", Member: member, Delivered: &groups.Delivery{Handle: groups.Handle{P: 0, Off: 5, Delivery: d}, Member: member, DeadlineNs: deadline}}
	}
	ack := func(d uint32, member string) groups.Change {
		return groups.Change{Group: "q", Member: member, Settled: &groups.Handle{P: 0, Off: 5, Delivery: d}}
	}
	cases := []struct {
		name   string
		ackNs  int64
		ack    groups.Change
		redeal bool
		want   string
	}{
		{"current", 500, ack(1, "a"), false, ""},
		{"moved on", 500, ack(1, "a"), true, "ack after the lease moved on accepted"},
		{"after the ack wait", 1500, ack(1, "a"), false, "ack after the ack wait accepted"},
		{"not its holder", 500, ack(1, "b"), false, "ack after the lease moved on accepted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &World{check: newChecker()}
			w.newGroupsChecker()
			steps := []groups.Change{{Group: "q", Owners: []string{""}}, deliver(1, "a", 1000)}
			if c.redeal {
				steps = append(steps, deliver(2, "b", 2000))
			}
			for i, ch := range steps {
				w.groupApplied(&node.Applied{Index: uint64(i + 1), TimeNs: 100}, &ch)
			}
			w.groupApplied(&node.Applied{Index: 10, TimeNs: c.ackNs}, &c.ack)
			got := strings.Join(w.check.violations, "; ")
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// A batch settle's answer is checked item by item: an item acknowledged
// that no replica reported settled, an item refused while its lease
// stood, and an answer with another number of items are each reported.
func TestGroupsCheckerBatchAnswers(t *testing.T) {
	h := func(off uint64) groups.Handle { return groups.Handle{P: 0, Off: off, Delivery: 1} }
	items := []groups.SettleItem{{Verb: groups.Ack, Handle: h(1)}, {Verb: groups.Ack, Handle: h(2)}}
	ok, refused := groups.ItemAnswer{Outcome: node.OK}, groups.ItemAnswer{Outcome: node.Conflict, Detail: "fenced"}
	cases := []struct {
		name    string
		settled bool // the replicas reported item 0 settled
		answer  []groups.ItemAnswer
		want    string
	}{
		{"as reported", true, []groups.ItemAnswer{ok, refused}, ""},
		{"acknowledged unsettled", false, []groups.ItemAnswer{ok, refused}, "was acknowledged, but no replica reported it settled"},
		{"item count", true, []groups.ItemAnswer{ok, refused, refused}, "answered with 3 items"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &World{check: newChecker()}
			w.newGroupsChecker()
			apply := func(idx uint64, ch groups.Change) {
				w.groupApplied(&node.Applied{Index: idx, Kind: groups.CmdFetch}, &ch)
			}
			apply(1, groups.Change{Group: "gwork", Owners: []string{""}})
			for i, it := range items {
				d := &groups.Delivery{Handle: it.Handle, Member: "a", DeadlineNs: 1000}
				apply(uint64(2+i), groups.Change{Group: "gwork", Member: "a", Delivered: d})
			}
			if c.settled {
				apply(4, groups.Change{Group: "gwork", Member: "a", Settled: &items[0].Handle})
			}
			// Item 1's lease was moved on (delivered to b) before the answer.
			apply(5, groups.Change{Group: "gwork", Member: "b", Delivered: &groups.Delivery{Handle: groups.Handle{P: 0, Off: 2, Delivery: 2}, Member: "b", DeadlineNs: 2000}})
			w.gpc.timeNs = 500
			op := &topicOp{kind: gSettleBatch, items: items}
			w.gpc.settledBatch(w, &memberState{group: 1, id: "a"}, op, node.Response{Outcome: node.OK, Value: groups.Answer{Items: c.answer}})
			got := strings.Join(w.check.violations, "; ")
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	w := &World{check: newChecker()}
	w.newGroupsChecker()
	w.groupApplied(&node.Applied{Index: 1, Kind: groups.CmdCreate}, &groups.Change{Group: "gwork", Owners: []string{""}})
	w.groupApplied(&node.Applied{Index: 2, Kind: groups.CmdFetch}, &groups.Change{Group: "gwork", Member: "a", Delivered: &groups.Delivery{Handle: h(1), Member: "a", DeadlineNs: 1000}})
	w.gpc.timeNs = 500
	w.gpc.settledBatch(w, &memberState{group: 1, id: "a"}, &topicOp{items: items[:1]}, node.Response{Outcome: node.OK, Value: groups.Answer{Items: []groups.ItemAnswer{refused}}})
	if got := strings.Join(w.check.violations, "; "); !strings.Contains(got, "was refused (fenced) while its lease stood") {
		t.Fatalf("an item refused while its lease stood: got %q", got)
	}
}
