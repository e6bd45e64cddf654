package groups

import (
	"testing"

	"github.com/aspen-db/aspen/core/module"
)

// TestSettleBatch: one command settles a fetched batch, each item alone:
// a forged handle and a handle an earlier item settled are refused while
// the rest apply; a malformed batch is refused whole and changes nothing.
func TestSettleBatch(t *testing.T) {
	r := newCompeting(t, 1, 4)
	d := r.ok(Fetch("q", "w", 4)).Deliveries
	forged := d[3].Handle
	forged.Delivery = 2
	items := []SettleItem{
		{Verb: Ack, Handle: d[0].Handle},
		{Verb: Nak, Handle: d[1].Handle, DelayNs: 5e9},
		{Verb: Ack, Handle: forged},
		{Verb: InProgress, Handle: d[2].Handle},
		{Verb: Ack, Handle: d[0].Handle}, // the first item settled it
		{Verb: Terminate, Handle: d[3].Handle},
	}
	r.now += 1e9
	got := r.ok(SettleBatch("q", "w", items)).Items
	want := []module.Outcome{module.OK, module.OK, module.Conflict, module.OK, module.Conflict, module.OK}
	if len(got) != len(want) {
		t.Fatalf("got %d answers for %d items", len(got), len(items))
	}
	for i := range want {
		if got[i].Outcome != want[i] {
			t.Errorf("item %d: got %v %q, want %v", i, got[i].Outcome, got[i].Detail, want[i])
		}
	}
	if got[3].DeadlineNs != r.now+30e9 {
		t.Errorf("in progress: deadline %d, want %d", got[3].DeadlineNs, r.now+30e9)
	}
	g := r.describe("q")
	if g.Pending != 2 || g.DeadLetters != 1 || g.Members[0].InFlight != 1 {
		t.Fatalf("after the batch: %d pending, %d dead, members %+v; want the nakked and the renewed pending, the terminated dead, one lease held", g.Pending, g.DeadLetters, g.Members)
	}
	if ready := r.fetchable("q", "w"); ready.Ready || ready.NextNs != r.now+5e9 || ready.Held != 1 {
		t.Fatalf("fetchable during the nak's delay: %+v, want not ready until %d, one held", ready, r.now+5e9)
	}
	r.now += 5e9
	if ready := r.fetchable("q", "w"); !ready.Ready {
		t.Fatalf("fetchable after the nak's delay: %+v, want ready", ready)
	}

	h := d[2].Handle
	tooMany := make([]SettleItem, r.lim.SettleMax+1)
	for i := range tooMany {
		tooMany[i] = SettleItem{Verb: Ack, Handle: h}
	}
	for _, bad := range [][]SettleItem{
		nil,
		tooMany,
		{{Verb: Ack, Handle: h}, {Verb: 9, Handle: h}},
		{{Verb: Ack, Handle: h}, {Verb: Ack, Handle: h, DelayNs: 1}},
		{{Verb: Nak, Handle: h, DelayNs: -1}},
		{{Verb: Ack, Handle: Handle{P: h.P, Off: h.Off}}},
	} {
		r.refused(SettleBatch("q", "w", bad), module.Invalid)
	}
	r.refused(SettleBatch("nope", "w", []SettleItem{{Verb: Ack, Handle: h}}), module.NotFound)
	if g2 := r.describe("q"); g2.Pending != 2 || g2.Members[0].InFlight != 1 {
		t.Fatalf("after refused batches: %+v, want the lease held as before", g2)
	}
	r.ok(SettleBatch("q", "w", []SettleItem{{Verb: Ack, Handle: h}}))
	r.reload()
}
