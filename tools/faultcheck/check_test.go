package faultcheck

import (
	"strings"
	"testing"
	"time"
)

// Histories below use one key, "k", and small integer times.

func put(v string, call, ret int64) Op {
	return Op{Kind: Put, Key: "k", Value: v, OK: true, Call: call, Return: ret}
}

func unknownPut(v string, call int64) Op {
	return Op{Kind: Put, Key: "k", Value: v, Unknown: true, Call: call, Return: unknownReturn}
}

func get(v string, call, ret int64) Op {
	return Op{Kind: Get, Key: "k", Value: v, Call: call, Return: ret}
}

func final(v string, call, ret int64) Op {
	op := get(v, call, ret)
	op.Final = true
	return op
}

func cas(expect, v string, ok bool, call, ret int64) Op {
	return Op{Kind: CAS, Key: "k", Expect: expect, Value: v, OK: ok, Call: call, Return: ret}
}

func history(ops ...Op) *History {
	return &History{Keys: []string{"k"}, Ops: ops}
}

func TestCheckLinearizable(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want bool
	}{
		{"read your write", []Op{put("a", 0, 10), get("a", 20, 30)}, true},
		{"absent before any write", []Op{get("", 0, 10), put("a", 20, 30)}, true},
		{"stale read", []Op{put("a", 0, 10), put("b", 20, 30), get("a", 40, 50)}, false},
		{"concurrent read may see either", []Op{put("a", 0, 10), put("b", 20, 60), get("a", 30, 40), get("b", 45, 50)}, true},
		{"reads go back in time", []Op{put("a", 0, 10), put("b", 20, 60), get("b", 30, 40), get("a", 45, 50)}, false},
		{"value never written", []Op{put("a", 0, 10), get("x", 20, 30)}, false},
		{"unknown put seen", []Op{unknownPut("a", 0), get("a", 20, 30)}, true},
		{"unknown put never seen", []Op{put("a", 0, 10), unknownPut("b", 20), get("a", 30, 40)}, true},
		{"unknown put seen then lost", []Op{unknownPut("b", 0), get("b", 20, 30), get("", 40, 50)}, false},
		{"cas on the value read", []Op{get("", 0, 10), cas("", "a", true, 20, 30), get("a", 40, 50)}, true},
		{"cas held twice on one version", []Op{cas("", "a", true, 0, 10), cas("", "b", true, 20, 30)}, false},
		{"cas failed though it should hold", []Op{put("a", 0, 10), cas("a", "b", false, 20, 30)}, false},
		{"cas failed after an overwrite", []Op{put("a", 0, 10), put("b", 20, 30), cas("a", "c", false, 40, 50)}, true},
		{"a plain put cannot answer false", []Op{{Kind: Put, Key: "k", Value: "a", Call: 0, Return: 10}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Check(history(tt.ops...), 10*time.Second)
			if got := len(rep.Illegal) == 0 && len(rep.Undecided) == 0; got != tt.want {
				t.Fatalf("linearizable: got %v, want %v (illegal %v, undecided %v)", got, tt.want, rep.Illegal, rep.Undecided)
			}
		})
	}
}

func TestCheckDurable(t *testing.T) {
	tests := []struct {
		name     string
		ops      []Op
		wantLost string // a substring of the one problem expected, "" for none
	}{
		{"last acked write survives", []Op{put("a", 0, 10), put("b", 20, 30), final("b", 40, 50)}, ""},
		{"concurrent writes may end either way", []Op{put("a", 0, 30), put("b", 10, 20), final("a", 40, 50)}, ""},
		{"unknown write may land last", []Op{put("a", 0, 10), unknownPut("b", 20), final("b", 40, 50)}, ""},
		{"failed cas is no write", []Op{put("a", 0, 10), cas("x", "c", false, 20, 30), final("a", 40, 50)}, ""},
		{"acked write lost to absence", []Op{put("a", 0, 10), final("", 40, 50)}, "found the key absent"},
		{"acked write rolled back", []Op{put("a", 0, 10), put("b", 20, 30), final("a", 40, 50)}, "finished before it began"},
		{"acked cas rolled back", []Op{put("a", 0, 10), cas("a", "b", true, 20, 30), final("a", 40, 50)}, "finished before it began"},
		{"phantom value", []Op{put("a", 0, 10), final("zzz", 40, 50)}, "no write wrote"},
		{"one node serves a rolled-back value", []Op{put("a", 0, 10), put("b", 20, 30), final("b", 40, 50), final("a", 60, 70)},
			"finished before it began"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkDurable(history(tt.ops...))
			switch {
			case tt.wantLost == "" && len(got) > 0:
				t.Fatalf("got problems %q, want none", got)
			case tt.wantLost != "" && (len(got) != 1 || !strings.Contains(got[0], tt.wantLost)):
				t.Fatalf("got problems %q, want one containing %q", got, tt.wantLost)
			}
		})
	}
}

func TestCheckIndexes(t *testing.T) {
	at := func(op Op, index uint64) Op { op.Index = index; return op }
	tests := []struct {
		name string
		ops  []Op
		want int
	}{
		{"write and reads agree", []Op{at(put("a", 0, 10), 5), at(get("a", 20, 30), 5), at(get("a", 40, 50), 5)}, 0},
		{"reads disagree", []Op{at(get("a", 20, 30), 5), at(get("a", 40, 50), 6)}, 1},
		{"write's answer disagrees", []Op{at(put("a", 0, 10), 5), at(get("a", 20, 30), 7)}, 1},
		{"absent reads carry no index", []Op{at(get("", 0, 10), 0), at(get("", 20, 30), 9)}, 0},
		{"failed cas says nothing", []Op{at(cas("x", "a", false, 0, 10), 3), at(get("", 20, 30), 0)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkIndexes(tt.ops); len(got) != tt.want {
				t.Fatalf("got %d conflicts %q, want %d", len(got), got, tt.want)
			}
		})
	}
}

func TestReportErr(t *testing.T) {
	ok := Check(history(put("a", 0, 10), final("a", 20, 30)), time.Second)
	if err := ok.Err(); err != nil {
		t.Fatalf("clean history: got %v, want no error", err)
	}
	h := history(put("a", 0, 10))
	h.Unread = []string{"k"}
	if err := Check(h, time.Second).Err(); err == nil || !strings.Contains(err.Error(), "never read back") {
		t.Fatalf("unread key: got %v, want an error naming it", err)
	}
}

func TestWriteHTML(t *testing.T) {
	rep := Check(history(put("a", 0, 10), put("b", 20, 30), get("a", 40, 50)), time.Second)
	path := t.TempDir() + "/h.html"
	if err := rep.WriteHTML(path, time.Second); err != nil {
		t.Fatalf("WriteHTML: %v", err)
	}
}
