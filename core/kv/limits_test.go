package kv_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
)

func TestDefaultLimits(t *testing.T) {
	got := kv.DefaultLimits()
	want := kv.Limits{KeyBytesMax: 1536, ValueBytesMax: 512 << 10, TxnOpsMax: 128, RangeLimitMax: 10000}
	if got != want {
		t.Fatalf("DefaultLimits: got %+v, want %+v", got, want)
	}
}

func TestValidate(t *testing.T) {
	l := kv.Limits{KeyBytesMax: 4, ValueBytesMax: 8, TxnOpsMax: 3, RangeLimitMax: 10}
	key := func(n int) []byte { return bytes.Repeat([]byte("k"), n) }
	op := func(typ kv.OpType, k, end string) kv.Op { return kv.Op{Type: typ, Key: []byte(k), End: []byte(end)} }
	cmp := func(c kv.Compare) kv.Txn { return kv.Txn{Compares: []kv.Compare{c}} }
	ok := kv.Compare{Key: []byte("k"), Target: kv.TargetValue, Result: kv.Equal}

	cases := []struct {
		name string
		txn  kv.Txn
		want error
	}{
		{"empty txn", kv.Txn{}, nil},
		{"ops at the limit", kv.Txn{Compares: []kv.Compare{ok}, Then: []kv.Op{put("k", "v")}, Else: []kv.Op{get("k")}}, nil},
		{"too many ops", kv.Txn{Then: []kv.Op{get("a"), get("b")}, Else: []kv.Op{get("c"), get("d")}}, kv.ErrTooManyOps},
		{"key at the limit", then(kv.Op{Type: kv.OpPut, Key: key(4)}), nil},
		{"key too large", then(kv.Op{Type: kv.OpPut, Key: key(5)}), kv.ErrKeyTooLarge},
		{"empty put key", then(put("", "v")), kv.ErrEmptyKey},
		{"empty get key", then(get("")), kv.ErrEmptyKey},
		{"empty delete key", then(del("")), kv.ErrEmptyKey},
		{"value at the limit", then(kv.Op{Type: kv.OpPut, Key: key(1), Value: key(8)}), nil},
		{"value too large", then(kv.Op{Type: kv.OpPut, Key: key(1), Value: key(9)}), kv.ErrValueTooLarge},
		{"else branch checked", kv.Txn{Else: []kv.Op{put("", "v")}}, kv.ErrEmptyKey},
		{"unknown op", then(kv.Op{Type: 9, Key: key(1)}), kv.ErrBadOp},
		{"zero op", then(kv.Op{Key: key(1)}), kv.ErrBadOp},
		{"range", then(op(kv.OpRange, "a", "b")), nil},
		{"range of one key", then(op(kv.OpRange, "a", "")), nil},
		{"range end equal to key", then(op(kv.OpRange, "a", "a")), kv.ErrBadOp},
		{"range end before key", then(op(kv.OpDeleteRange, "b", "a")), kv.ErrBadOp},
		{"range from the first key", then(op(kv.OpRange, "", "b")), nil},
		{"range of everything", then(kv.Op{Type: kv.OpDeleteRange, Prefix: true}), nil},
		{"range of the empty key", then(op(kv.OpRange, "", "")), kv.ErrEmptyKey},
		{"range end too large", then(op(kv.OpRange, "a", "bbbbb")), kv.ErrKeyTooLarge},
		{"prefix key too large", then(kv.Op{Type: kv.OpRange, Key: key(5), Prefix: true}), kv.ErrKeyTooLarge},
		{"limit at the maximum", then(kv.Op{Type: kv.OpRange, Key: key(1), Prefix: true, Limit: 10}), nil},
		{"limit above the maximum", then(kv.Op{Type: kv.OpRange, Key: key(1), Prefix: true, Limit: 11}), kv.ErrBadOp},
		{"negative limit", then(kv.Op{Type: kv.OpRange, Key: key(1), Limit: -1}), kv.ErrBadOp},
		{"delete range limit", then(kv.Op{Type: kv.OpDeleteRange, Key: key(1), Prefix: true, Limit: 1}), kv.ErrBadOp},
		{"prefix on delete", then(kv.Op{Type: kv.OpDelete, Key: key(1), Prefix: true}), kv.ErrBadOp},
		{"end on get", then(op(kv.OpGet, "a", "b")), kv.ErrBadOp},
		{"compare", cmp(ok), nil},
		{"compare empty key", cmp(kv.Compare{Target: kv.TargetVersion, Result: kv.Less}), kv.ErrEmptyKey},
		{"compare key too large", cmp(kv.Compare{Key: key(5), Target: kv.TargetVersion, Result: kv.Less}), kv.ErrKeyTooLarge},
		{"compare value too large", cmp(kv.Compare{Key: key(1), Target: kv.TargetValue, Result: kv.Less, Value: key(9)}), kv.ErrValueTooLarge},
		{"compare unknown target", cmp(kv.Compare{Key: key(1), Target: kv.TargetLockable + 1, Result: kv.Equal}), kv.ErrBadOp},
		{"compare unknown result", cmp(kv.Compare{Key: key(1), Target: kv.TargetModRev, Result: 5}), kv.ErrBadOp},
		{"compare exists", cmp(kv.Compare{Key: key(1), Target: kv.TargetExists, Result: kv.NotEqual}), nil},
		{"compare exists less", cmp(kv.Compare{Key: key(1), Target: kv.TargetExists, Result: kv.Less}), kv.ErrBadOp},
	}
	for _, c := range cases {
		err := l.Validate(c.txn)
		if c.want == nil && err != nil || !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestValidateMessage(t *testing.T) {
	l := kv.DefaultLimits()
	err := l.Validate(kv.Txn{Else: []kv.Op{get("a"), {Type: kv.OpGet, Key: make([]byte, 2000)}}})
	want := "else op 1: kv: key too large: key of 2000 bytes exceeds 1536"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}
