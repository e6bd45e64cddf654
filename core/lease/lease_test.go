package lease

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func testLimits() Limits {
	return Limits{LeasesMax: 4, KeysPerLeaseMax: 2, TTLMinNs: 10, TTLMaxNs: 1000}
}

func TestGrantKeepAliveExpire(t *testing.T) {
	tb := New(testLimits())
	l, err := tb.Grant(0, 100, 5)
	if err != nil || l.ID != 1 || l.ExpiryNs != 105 {
		t.Fatalf("grant: got %+v, %v; want id 1 expiring at 105", l, err)
	}
	if _, err := tb.Grant(1, 100, 5); !errors.Is(err, ErrExists) {
		t.Fatalf("grant of a taken id: got %v, want ErrExists", err)
	}
	for _, ttl := range []int64{0, 9, 1001} {
		if _, err := tb.Grant(0, ttl, 5); !errors.Is(err, ErrTTL) {
			t.Fatalf("grant with ttl %d: got %v, want ErrTTL", ttl, err)
		}
	}
	if got := tb.Expired(104, 10); len(got) != 0 {
		t.Fatalf("expired before the deadline: %v", got)
	}
	if l, _ = tb.KeepAlive(1, 50); l.ExpiryNs != 150 {
		t.Fatalf("keep-alive at 50: expiry %d, want 150", l.ExpiryNs)
	}
	if l, _ = tb.KeepAlive(1, 20); l.ExpiryNs != 150 {
		t.Fatalf("a keep-alive never moves the deadline back: expiry %d, want 150", l.ExpiryNs)
	}
	if got := tb.Expired(150, 10); !slices.Equal(got, []ID{1}) {
		t.Fatalf("expired at 150: got %v, want [1]", got)
	}
	if _, err := tb.KeepAlive(7, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("keep-alive of an unknown lease: got %v, want ErrNotFound", err)
	}
}

func TestAttachAndRevoke(t *testing.T) {
	tb := New(testLimits())
	a, _ := tb.Grant(0, 100, 0)
	b, _ := tb.Grant(0, 100, 0)
	mustAttach := func(key string, id ID) {
		t.Helper()
		if err := tb.Attach([]byte(key), id); err != nil {
			t.Fatalf("attach %s to %d: %v", key, id, err)
		}
	}
	mustAttach("x", a.ID)
	mustAttach("y", a.ID)
	if err := tb.Attach([]byte("z"), a.ID); !errors.Is(err, ErrKeysFull) {
		t.Fatalf("third key on a two-key lease: got %v, want ErrKeysFull", err)
	}
	mustAttach("y", b.ID) // moves y
	if tb.Of([]byte("y")) != b.ID {
		t.Fatalf("y is on lease %d, want %d", tb.Of([]byte("y")), b.ID)
	}
	mustAttach("x", 0) // unties x
	keys, err := tb.Revoke(b.ID)
	if err != nil || len(keys) != 1 || string(keys[0]) != "y" {
		t.Fatalf("revoke: got %q, %v; want [y]", keys, err)
	}
	if l, keys, _ := tb.Get(a.ID); l.Keys != 0 || len(keys) != 0 {
		t.Fatalf("lease %d still holds %q", a.ID, keys)
	}
}

// A random sequence of operations against a plain model: the table must agree
// with it, and encode and decode to a table with the same hash and listing.
func TestTableAgainstModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		tb := New(testLimits())
		model := map[ID]int64{} // id -> expiry
		now := int64(0)
		for i := 0; i < 40; i++ {
			now += rapid.Int64Range(0, 50).Draw(rt, "step")
			id := ID(rapid.Int64Range(0, 5).Draw(rt, "id"))
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0:
				ttl := rapid.Int64Range(0, 200).Draw(rt, "ttl")
				if l, err := tb.Grant(id, ttl, now); err == nil {
					model[l.ID] = now + ttl
				}
			case 1:
				if _, err := tb.KeepAlive(id, now); err == nil {
					model[id] = max(model[id], now+tb.leases[id].ttl)
				} else if _, ok := model[id]; ok {
					rt.Fatalf("keep-alive of live lease %d: %v", id, err)
				}
			case 2:
				_, err := tb.Revoke(id)
				if _, ok := model[id]; ok != (err == nil) {
					rt.Fatalf("revoke %d: %v, but the model has it: %v", id, err, ok)
				}
				delete(model, id)
			case 3:
				_ = tb.Attach([]byte{byte('a' + i%3)}, id)
			}
			for _, l := range tb.List() {
				if model[l.ID] != l.ExpiryNs {
					rt.Fatalf("lease %d expires at %d, model says %d", l.ID, l.ExpiryNs, model[l.ID])
				}
			}
			if tb.Len() != len(model) {
				rt.Fatalf("table holds %d leases, model %d", tb.Len(), len(model))
			}
		}
		again, err := Decode(tb.Encode(), testLimits())
		if err != nil || again.Hash() != tb.Hash() || !slices.Equal(again.List(), tb.List()) {
			rt.Fatalf("round trip: %v, hash %x vs %x", err, again.Hash(), tb.Hash())
		}
	})
}

func TestDecodeRefusesDamage(t *testing.T) {
	tb := New(testLimits())
	l, _ := tb.Grant(0, 100, 0)
	_ = tb.Attach([]byte("key"), l.ID)
	enc := tb.Encode()
	for cut := 0; cut < len(enc); cut++ {
		if _, err := Decode(enc[:cut], testLimits()); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode of the first %d of %d bytes: got %v, want ErrCorrupt", cut, len(enc), err)
		}
	}
	if _, err := Decode(append(slices.Clone(enc), 0), testLimits()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: got %v, want ErrCorrupt", err)
	}
}
