package kv_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
)

func TestCheckKeyText(t *testing.T) {
	cases := []struct {
		key  string
		want string // "" for a key that passes, else a part of the error
	}{
		{"", ""},
		{"plain/key", ""},
		{"ünïcödé/日本/🌲", ""},
		{"a\x00b", "NUL byte at offset 1"},
		{"\x00", "NUL byte at offset 0"},
		{"bad\xffkey", "byte 0xff at offset 3 is not UTF-8"},
		{"cut\xe6\x97", "byte 0xe6 at offset 3 is not UTF-8"},           // a rune cut short
		{"surrogate\xed\xa0\x80", "byte 0xed at offset 9 is not UTF-8"}, // UTF-16 surrogates are not UTF-8
	}
	for _, c := range cases {
		err := kv.CheckKeyText([]byte(c.key))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("CheckKeyText(%q): got %v, want nil", c.key, err)
		case c.want != "" && (!errors.Is(err, kv.ErrKeyText) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("CheckKeyText(%q): got %v, want ErrKeyText saying %q", c.key, err, c.want)
		}
	}
}

// Keys already in a log must go on applying the same everywhere: the text
// check belongs to the APIs, not to Validate or Apply.
func TestKeysThatAreNotTextStillApply(t *testing.T) {
	txn := then(put("a\x00b", "1"), put("bad\xff", "2"))
	if err := kv.DefaultLimits().Validate(txn); err != nil {
		t.Fatalf("Validate: got %v, want nil", err)
	}
	m := kv.New()
	m.Apply(txn)
	if got := m.Read(then(get("bad\xff"))).Results[0].Records; len(got) != 1 || string(got[0].Value) != "2" {
		t.Fatalf("read back bad\\xff: got %+v, want value 2", got)
	}
}
