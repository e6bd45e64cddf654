package kv_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
)

func prefixed(m *kv.Machine, prefix string, max int) []string {
	var got []string
	m.AscendPrefix([]byte(prefix), func(key []byte, r kv.Record) bool {
		got = append(got, string(key)+"="+string(r.Value))
		return len(got) < max
	})
	return got
}

func TestAscendPrefix(t *testing.T) {
	m := kv.New()
	m.Apply(then(put("b", "1"), put("ab/c", "2"), put("a", "3"), put("abd", "4"), put("ab", "5"), put("aa", "6")))
	cases := []struct {
		prefix string
		max    int
		want   []string
	}{
		{"ab", 10, []string{"ab=5", "ab/c=2", "abd=4"}},
		{"ab", 2, []string{"ab=5", "ab/c=2"}}, // fn stops the walk
		{"", 10, []string{"a=3", "aa=6", "ab=5", "ab/c=2", "abd=4", "b=1"}},
		{"abc", 10, nil},
		{"c", 10, nil},
	}
	for _, c := range cases {
		if got := prefixed(m, c.prefix, c.max); !slices.Equal(got, c.want) {
			t.Errorf("AscendPrefix(%q) stopping after %d: got %q, want %q", c.prefix, c.max, got, c.want)
		}
	}
}

// A listing walks a clone while the original applies: what it visits is
// the state at the clone, values included, whatever the original does.
func TestAscendPrefixOnACloneWhileTheOriginalWrites(t *testing.T) {
	m := kv.New()
	var want []string
	for i := range 300 { // a tree of several nodes
		k := fmt.Sprintf("p/%03d", i)
		m.Apply(then(put(k, "old")))
		want = append(want, k+"=old")
	}
	c := m.Clone()
	got := []string{}
	c.AscendPrefix([]byte("p/"), func(key []byte, r kv.Record) bool {
		if len(got) == 100 {
			m.Apply(then(put("p/150", "new"), put("p/2000", "new")))
			m.Apply(then(kv.Op{Type: kv.OpDeleteRange, Key: []byte("p/2"), Prefix: true}))
		}
		got = append(got, string(key)+"="+string(r.Value))
		return true
	})
	if !slices.Equal(got, want) {
		t.Fatalf("clone listed %d records (%q...), want the %d taken", len(got), got[:min(3, len(got))], len(want))
	}
	if n := len(prefixed(m, "p/2", 1000)); n != 0 {
		t.Fatalf("original after its delete: %d keys under p/2, want 0", n)
	}
}
