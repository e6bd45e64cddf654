package sched

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/sim/disk"
)

// busyRig holds schedules in every state: fired, missed, buffered, skipped,
// paused, zoned.
func busyRig(t *testing.T) *rig {
	r := newRig(t)
	r.apply(0, Add(def("a", "every 1s", OverlapBufferOne, CatchUpSkip, 0)), module.OK)
	r.apply(0, Add(def("b", "*/5 * * * * *", OverlapSkip, CatchUpRunAll, 3)), module.OK)
	d := def("c", "30 2 * * *", OverlapAllow, CatchUpRunOnce, 0)
	d.Zone = "Europe/Berlin"
	r.apply(0, Add(d), module.OK)
	for tick := int64(1); tick <= 3; tick++ {
		r.fire(tick*second, "a", tick*second)
	}
	r.fire(60*second, "b", 60*second)
	r.apply(61*second, Pause("c"), module.OK)
	return r
}

func TestTableRoundTrip(t *testing.T) {
	r := busyRig(t)
	enc := r.m.t.Encode()
	got, err := Decode(enc, DefaultLimits(), &Zones{})
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !bytes.Equal(got.Encode(), enc) || got.Hash() != r.m.Hash() {
		t.Fatal("decode then encode: the table changed")
	}
	// The records on disk rebuild the same table.
	d := disk.New()
	for _, b := range r.writes {
		if err := d.Apply(*b); err != nil {
			t.Fatal(err)
		}
	}
	m := NewModule(DefaultLimits(), r.q)
	if err := m.Load(d); err != nil {
		t.Fatalf("load: %v", err)
	}
	if !bytes.Equal(m.t.Encode(), enc) || m.Hash() != r.m.Hash() {
		t.Fatal("load: the table differs from the one that wrote the records")
	}
	// Restore, and the absent section of an older snapshot.
	if err := m.Restore(enc); err != nil || m.Hash() != r.m.Hash() {
		t.Fatalf("restore: %v", err)
	}
	if err := m.Restore(nil); err != nil || m.t.Len() != 0 {
		t.Fatalf("restore of an absent section: %v, %d schedules", err, m.t.Len())
	}
}

func TestDecodeRefusesGarbage(t *testing.T) {
	enc := busyRig(t).m.t.Encode()
	for n := range len(enc) {
		if _, err := Decode(enc[:n], DefaultLimits(), &Zones{}); err == nil {
			t.Fatalf("a table cut to %d of %d bytes decoded", n, len(enc))
		}
	}
	if _, err := Decode(append(enc, 0), DefaultLimits(), &Zones{}); err == nil {
		t.Fatal("a table with a trailing byte decoded")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := bytes.Clone(enc)
		b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		Decode(b, DefaultLimits(), &Zones{}) // must not panic
		DecodeAnswer(append([]byte{answerVersion}, b...))
		decodeFire(b)
		decodeDef(b)
	}
	if _, err := Decode([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, DefaultLimits(), &Zones{}); err == nil {
		t.Fatal("a count past the bytes left decoded")
	}
}

func TestAnswerRoundTrip(t *testing.T) {
	r := busyRig(t)
	s, h := r.get("a")
	list, _ := r.m.t.List("", 10)
	for _, a := range []Answer{{Schedule: s}, {Schedules: list, Next: "c"}, {History: h}} {
		b := a.Encode()
		if b[0] == 0xFE {
			t.Fatal("an answer opens with the host's refusal mark")
		}
		got, err := DecodeAnswer(b)
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Fatalf("answer round trip: got %+v (%v), want %+v", got, err, a)
		}
	}
	if _, err := DecodeAnswer([]byte{9}); err == nil {
		t.Fatal("an answer of an unknown version decoded")
	}
}
