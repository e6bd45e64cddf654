package linearize

import (
	"fmt"
	"testing"

	"github.com/anishathalye/porcupine"
)

func TestPartitionBySortsKeysAndKeepsOrder(t *testing.T) {
	var history []porcupine.Operation
	for i, k := range []string{"b", "a", "c", "a", "b"} {
		history = append(history, porcupine.Operation{ClientId: i, Input: k})
	}
	parts := PartitionBy(func(op porcupine.Operation) string { return op.Input.(string) })(history)
	var got []string
	for _, p := range parts {
		s := ""
		for _, op := range p {
			s += fmt.Sprintf("%s%d ", op.Input, op.ClientId)
		}
		got = append(got, s)
	}
	want := []string{"a1 a3 ", "b0 b4 ", "c2 "}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestPartitionByEmptyHistory(t *testing.T) {
	parts := PartitionBy(func(op porcupine.Operation) int { return op.ClientId })(nil)
	if len(parts) != 0 {
		t.Fatalf("got %d partitions of an empty history, want 0", len(parts))
	}
}
