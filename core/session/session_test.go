package session

import "testing"

func TestVerdicts(t *testing.T) {
	tab := NewTable(4)
	if v, _ := tab.Check(1, 1); v != Fresh {
		t.Fatalf("unknown client: got %v, want Fresh", v)
	}
	tab.Record(1, 5, 10, []byte("r5"))
	cases := []struct {
		seq  uint64
		want Verdict
	}{{4, Stale}, {5, Duplicate}, {6, Fresh}}
	for _, c := range cases {
		v, resp := tab.Check(1, c.seq)
		if v != c.want {
			t.Errorf("seq %d: got %v, want %v", c.seq, v, c.want)
		}
		if v == Duplicate && string(resp) != "r5" {
			t.Errorf("duplicate answer: got %q, want %q", resp, "r5")
		}
	}
}

func TestEvictsLongestIdleAndStaysBounded(t *testing.T) {
	tab := NewTable(2)
	tab.Record(1, 1, 10, nil)
	tab.Record(2, 1, 5, nil)
	evicted, ok := tab.Record(3, 1, 20, nil)
	if !ok || evicted != 2 {
		t.Fatalf("got eviction (%d, %v), want client 2 (idle since index 5)", evicted, ok)
	}
	if tab.Len() != 2 {
		t.Fatalf("got %d sessions, want 2", tab.Len())
	}
}

func TestSnapshotRoundTripKeepsHash(t *testing.T) {
	tab := NewTable(8)
	for i := uint64(1); i <= 5; i++ {
		tab.Record(i, i*2, i*3, []byte{byte(i)})
	}
	other := NewTable(8)
	if err := other.Restore(tab.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if other.Hash() != tab.Hash() || other.Len() != tab.Len() {
		t.Fatalf("restored table differs: hash %x vs %x", other.Hash(), tab.Hash())
	}
	if err := other.Restore([]byte{5, 1}); err == nil {
		t.Fatal("truncated snapshot restored without error")
	}
}
