package groups

import (
	"fmt"
	"testing"

	"github.com/aspen-db/aspen/core/module"
	"pgregory.net/rapid"
)

func competingDef(name, topic string) Def {
	return Def{Name: name, Topic: topic, Mode: Competing, AckWaitNs: 30e9, DeliveriesMax: 3, InFlightMax: 4}
}

func newCompeting(t tester, parts, msgs int) *rig {
	r := newRig(t)
	r.log.create("t", parts)
	for p := range parts {
		for i := range msgs {
			r.log.publish("t", p, fmt.Sprintf("m%d-%d", p, i), r.now)
		}
	}
	r.ok(Create(competingDef("q", "t")))
	return r
}

// TestCompetingLeaseLifecycle walks one message through fetch, in
// progress, nak with delay, expiry, and max deliveries into the dead
// letters, then replay and ack.
func TestCompetingLeaseLifecycle(t *testing.T) {
	r := newCompeting(t, 1, 2)
	d := r.ok(Fetch("q", "w1", 1)).Deliveries
	if len(d) != 1 || string(d[0].Message.Value) != "m0-0" || d[0].Delivery != 1 {
		t.Fatalf("first fetch: %+v, want m0-0 at delivery 1", d)
	}
	h := d[0].Handle
	r.refused(Settle("q", "w2", Ack, h, 0), module.Conflict)                                 // not w2's
	r.refused(Settle("q", "w1", Ack, Handle{P: 0, Off: 1, Delivery: 1}, 0), module.Conflict) // forged: never leased
	r.refused(Settle("q", "w1", Ack, Handle{P: 0, Off: 0, Delivery: 2}, 0), module.Conflict) // forged delivery
	r.now += 20e9
	p := r.ok(Settle("q", "w1", InProgress, h, 0)).Deliveries
	if p[0].DeadlineNs != r.now+30e9 {
		t.Fatalf("in progress: deadline %d, want %d", p[0].DeadlineNs, r.now+30e9)
	}
	r.ok(Settle("q", "w1", Nak, h, 5e9))
	if d := r.ok(Fetch("q", "w1", 1)).Deliveries; d[0].Off != 1 {
		t.Fatalf("fetch during the nak's delay got offset %d, want the next message 1", d[0].Off)
	}
	r.now += 5e9
	d = r.ok(Fetch("q", "w2", 1)).Deliveries
	if d[0].Off != 0 || d[0].Delivery != 2 {
		t.Fatalf("after the delay: %+v, want offset 0 at delivery 2", d[0].Handle)
	}
	r.refused(Settle("q", "w1", Ack, h, 0), module.Conflict) // the old lease moved on
	r.now += 30e9                                            // expires: the third delivery is the last
	r.refused(Settle("q", "w2", Ack, d[0].Handle, 0), module.Conflict)
	d = r.ok(Fetch("q", "w3", 2)).Deliveries // reclaims 0 and 1, redelivers both
	if len(d) != 2 || d[0].Off != 1 || d[1].Off != 0 || d[1].Delivery != 3 {
		t.Fatalf("third round: %+v, want 1 (its lease ended first) then 0 at its third delivery", d)
	}
	r.now += 31e9
	r.graceNow() // this leader's grace first: every lease gets a second more
	r.now += 1e9
	r.due()
	g := r.describe("q")
	if g.DeadLetters != 1 || g.Pending != 1 || g.Stats.Expiries != 4 {
		t.Fatalf("after the last delivery expired: %d dead, %d pending, %d expiries; want 1, 1, 4", g.DeadLetters, g.Pending, g.Stats.Expiries)
	}
	dead := r.m.Query(QueryDead, DeadLetters("q", 0, 0).Body, r.now).Value.(Answer).Dead
	if len(dead) != 1 || dead[0].Off != 0 || dead[0].Reason != ReasonDeliveries || dead[0].Deliveries != 3 {
		t.Fatalf("dead letters: %+v", dead)
	}
	r.refused(Dead("q", Replay, 99), module.NotFound)
	r.ok(Dead("q", Replay, dead[0].Seq))
	d = r.ok(Fetch("q", "w1", 2)).Deliveries
	if len(d) != 2 || d[1].Off != 0 || d[1].Delivery != 1 {
		t.Fatalf("after replay: %+v, want offset 1 (waiting longest), then 0 at delivery 1 again", d)
	}
	for _, x := range d {
		r.ok(Settle("q", "w1", Ack, x.Handle, 0))
	}
	if g := r.describe("q"); g.Pending != 0 || g.Offsets[0].Offset != 2 || g.Offsets[0].Lag != 0 {
		t.Fatalf("all acked: %+v", g.Offsets[0])
	}
	r.reload()
}

// TestCompetingBounds: a member holds at most InFlightMax leases, a
// terminated message is dead at once, and drop deletes a dead letter.
func TestCompetingBounds(t *testing.T) {
	r := newCompeting(t, 2, 5)
	if d := r.ok(Fetch("q", "w", 10)).Deliveries; len(d) != 4 {
		t.Fatalf("fetch of 10 with max in flight 4: got %d", len(d))
	}
	if d := r.ok(Fetch("q", "w", 10)).Deliveries; len(d) != 0 {
		t.Fatalf("fetch at max in flight: got %d, want none", len(d))
	}
	d := r.ok(Fetch("q", "v", 1)).Deliveries
	r.ok(Settle("q", "v", Terminate, d[0].Handle, 0))
	dead := r.m.Query(QueryDead, DeadLetters("q", 0, 0).Body, r.now).Value.(Answer).Dead
	if len(dead) != 1 || dead[0].Reason != ReasonTerminated {
		t.Fatalf("terminate: dead letters %+v", dead)
	}
	r.ok(Dead("q", Drop, dead[0].Seq))
	r.refused(Dead("q", Drop, dead[0].Seq), module.NotFound)
	r.refused(Reset("q", AllPartitions, ToEarliest, 0), module.Conflict) // leases out
	r.reload()
}

// TestCompetingRetention: a message retention removed while unsettled is
// counted trimmed, not delivered, and undelivered ones below the first
// offset are skipped.
func TestCompetingRetention(t *testing.T) {
	r := newCompeting(t, 1, 4)
	d := r.ok(Fetch("q", "w", 1)).Deliveries
	r.ok(Settle("q", "w", Nak, d[0].Handle, 0))
	r.log.trim("t", 0, 2)
	d = r.ok(Fetch("q", "w", 4)).Deliveries
	if len(d) != 2 || d[0].Off != 2 {
		t.Fatalf("after trimming to 2: %+v", d)
	}
	if s := r.describe("q").Stats; s.Trimmed != 2 {
		t.Fatalf("trimmed %d, want 2 (offset 0 waiting, offset 1 never delivered)", s.Trimmed)
	}
}

// model is what the competing model test knows of each message.
type msgModel struct {
	acked, dead bool
	deliveries  int
	lease       Handle
	holder      string
	deadlineNs  int64
}

// settle moves the model over a settle its lease took at nowNs.
func (mm *msgModel) settle(verb uint8, nowNs int64) {
	switch verb {
	case Ack:
		mm.acked = true
	case Terminate:
		mm.dead = true
	case Nak:
		mm.holder = ""
	case InProgress:
		mm.deadlineNs = nowNs + 30e9
	}
}

// TestCompetingModel runs random fetches, settles (with real, stale and
// forged handles), publishes and clock moves against a model: a settle is
// accepted exactly when the model says the lease is live; no message is
// delivered more than max deliveries; after a heal every message is acked
// or dead (at least once, nothing lost), and the state reloads equal.
func TestCompetingModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		parts := rapid.IntRange(1, 3).Draw(t, "partitions")
		r := newCompeting(t, parts, 0)
		r.graceNow()
		model := map[Handle]*msgModel{} // by (p, off) with delivery 0
		var handles []Handle
		members := []string{"w1", "w2", "w3"}
		publish := func(p int) {
			off := r.log.publish("t", p, "x", r.now)
			model[Handle{P: p, Off: off}] = &msgModel{}
		}
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			switch rapid.IntRange(0, 5).Draw(t, "op") {
			case 0:
				publish(rapid.IntRange(0, parts-1).Draw(t, "p"))
			case 1:
				mem := rapid.SampledFrom(members).Draw(t, "member")
				ready := r.fetchable("q", mem)
				expiries := r.describe("q").Stats.Expiries
				a := r.ok(Fetch("q", mem, rapid.IntRange(1, 5).Draw(t, "n")))
				if reclaimed := r.describe("q").Stats.Expiries > expiries; ready.Ready != (len(a.Deliveries) > 0 || reclaimed) {
					t.Fatalf("fetchable said %+v, the fetch by %s leased %d and reclaimed %v", ready, mem, len(a.Deliveries), reclaimed)
				}
				for _, d := range a.Deliveries {
					mm := model[Handle{P: d.P, Off: d.Off}]
					if mm == nil || mm.acked || mm.dead {
						t.Fatalf("delivered %+v: settled or unknown message", d.Handle)
					}
					if mm.holder != "" && r.now < mm.deadlineNs {
						t.Fatalf("delivered %+v while leased to %s until %d", d.Handle, mm.holder, mm.deadlineNs)
					}
					mm.deliveries++
					if int(d.Delivery) != mm.deliveries || mm.deliveries > 3 {
						t.Fatalf("delivery %d, model counts %d (max 3)", d.Delivery, mm.deliveries)
					}
					mm.lease, mm.holder, mm.deadlineNs = d.Handle, mem, d.DeadlineNs
					handles = append(handles, d.Handle)
				}
				r.due() // the leader's grace comes with the first leases, before time moves
				if ready := r.fetchable("q", mem); !ready.Ready && ready.NextNs != 0 && ready.NextNs <= r.now {
					t.Fatalf("fetchable at %d: not ready, yet a message waits until %d", r.now, ready.NextNs)
				}
			case 2:
				if len(handles) == 0 {
					continue
				}
				mem := rapid.SampledFrom(members).Draw(t, "member")
				items := make([]SettleItem, rapid.IntRange(1, 4).Draw(t, "items"))
				for i := range items {
					items[i] = SettleItem{Verb: rapid.SampledFrom([]uint8{Ack, Ack, Nak, InProgress, Terminate}).Draw(t, "verb"),
						Handle: rapid.SampledFrom(handles).Draw(t, "handle")}
					if rapid.IntRange(0, 4).Draw(t, "forge") == 0 {
						items[i].Handle.Delivery += 1
					}
				}
				var got []module.Outcome
				if len(items) == 1 && rapid.Bool().Draw(t, "single") {
					got = []module.Outcome{r.apply(Settle("q", mem, items[0].Verb, items[0].Handle, 0)).Outcome}
				} else {
					for _, it := range r.ok(SettleBatch("q", mem, items)).Items {
						got = append(got, it.Outcome)
					}
				}
				for i, it := range items { // in order: an item meets what the ones before it left
					mm := model[Handle{P: it.Handle.P, Off: it.Handle.Off}]
					live := mm != nil && !mm.acked && !mm.dead && mm.lease == it.Handle && mm.holder == mem && r.now < mm.deadlineNs
					if (got[i] == module.OK) != live {
						t.Fatalf("settle %d of %+v by %s at %d (item %d of %d): got %v, model says live=%v (%+v)", it.Verb, it.Handle, mem, r.now, i, len(items), got[i], live, mm)
					}
					if live {
						mm.settle(it.Verb, r.now)
					}
				}
			case 3:
				r.now += rapid.Int64Range(1, 40e9).Draw(t, "dt")
			case 4:
				r.due()
			case 5:
				r.reload()
			}
		}
		// Heal: one diligent member fetches and acks until nothing is left.
		for round := 0; ; round++ {
			if round > 1000 {
				t.Fatal("the queue never drained")
			}
			r.now += 31e9
			r.due()
			a := r.ok(Fetch("q", "w1", 4))
			if len(a.Deliveries) == 0 && r.describe("q").Pending == 0 {
				break
			}
			for _, d := range a.Deliveries {
				r.ok(Settle("q", "w1", Ack, d.Handle, 0))
				model[Handle{P: d.P, Off: d.Off}].acked = true
			}
		}
		dead := map[Handle]bool{}
		for _, d := range r.m.Query(QueryDead, DeadLetters("q", 0, 100).Body, r.now).Value.(Answer).Dead {
			dead[Handle{P: d.P, Off: d.Off}] = true
		}
		for h, mm := range model {
			if !mm.acked && !dead[h] {
				t.Fatalf("message %d/%d neither acked nor dead (%+v)", h.P, h.Off, mm)
			}
		}
		for _, o := range r.describe("q").Offsets {
			if o.Lag != 0 {
				t.Fatalf("partition %d lags %d after the heal", o.P, o.Lag)
			}
		}
		r.reload()
	})
}

// TestNakOfTheLastDeliveryIsDead: a message nakked at its last delivery
// goes to the dead letters at once, as an expiry there would send it; a
// nak before that puts it back.
func TestNakOfTheLastDeliveryIsDead(t *testing.T) {
	r := newCompeting(t, 1, 1)
	for delivery := uint32(1); delivery <= 3; delivery++ {
		d := r.ok(Fetch("q", "w", 1)).Deliveries
		if len(d) != 1 || d[0].Delivery != delivery {
			t.Fatalf("fetch %d: got %+v, want offset 0 at delivery %d", delivery, d, delivery)
		}
		r.ok(Settle("q", "w", Nak, d[0].Handle, 0))
	}
	g := r.describe("q")
	dead := r.m.Query(QueryDead, DeadLetters("q", 0, 0).Body, r.now).Value.(Answer).Dead
	if g.Pending != 0 || len(dead) != 1 || dead[0].Reason != ReasonDeliveries || dead[0].Deliveries != 3 {
		t.Fatalf("after 3 naks of 3 deliveries: %d pending, dead %+v; want none pending, one dead after 3 deliveries", g.Pending, dead)
	}
	if d := r.ok(Fetch("q", "w", 1)).Deliveries; len(d) != 0 {
		t.Fatalf("fetch after the last nak: got %+v, want nothing", d)
	}
}
