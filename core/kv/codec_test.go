package kv_test

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
	"pgregory.net/rapid"
)

// Codec generators range over every field's full domain, not just the values
// the machine produces: the codecs must carry whatever a caller hands them,
// except where the encoding spends part of a domain on a marker: an op's type
// is below 0x80 (the high bit marks flags and locks) and a record's version
// is not negative (a negative one marks them).
var (
	anyBytes = rapid.SliceOfN(rapid.Byte(), 0, 8)
	anyInt64 = rapid.OneOf(rapid.Int64(), rapid.SampledFrom([]int64{0, -1, math.MinInt64, math.MaxInt64}))

	anyCompare = rapid.Custom(func(t *rapid.T) kv.Compare {
		return kv.Compare{
			Key:    anyBytes.Draw(t, "key"),
			Target: kv.CompareTarget(rapid.Byte().Draw(t, "target")),
			Result: kv.CompareResult(rapid.Byte().Draw(t, "result")),
			Value:  anyBytes.Draw(t, "value"),
			Rev:    anyInt64.Draw(t, "rev"),
			Exists: rapid.Bool().Draw(t, "exists"),
		}
	})
	anyOp = rapid.Custom(func(t *rapid.T) kv.Op {
		return kv.Op{
			Type:    kv.OpType(rapid.ByteMax(0x7f).Draw(t, "type")),
			Key:     anyBytes.Draw(t, "key"),
			Value:   anyBytes.Draw(t, "value"),
			End:     anyBytes.Draw(t, "end"),
			Prefix:  rapid.Bool().Draw(t, "prefix"),
			Limit:   rapid.Int().Draw(t, "limit"),
			Lease:   rapid.OneOf(rapid.Just(int64(0)), anyInt64).Draw(t, "lease"),
			Flags:   rapid.OneOf(rapid.Just(uint64(0)), rapid.Uint64()).Draw(t, "flags"),
			Lock:    kv.LockOp(rapid.Byte().Draw(t, "lock")),
			Session: rapid.OneOf(rapid.Just(""), rapid.String()).Draw(t, "session"),
		}
	})
	anyTxn = rapid.Custom(func(t *rapid.T) kv.Txn {
		return kv.Txn{
			Compares: rapid.SliceOfN(anyCompare, 0, 3).Draw(t, "compares"),
			Then:     rapid.SliceOfN(anyOp, 0, 3).Draw(t, "then"),
			Else:     rapid.SliceOfN(anyOp, 0, 3).Draw(t, "else"),
		}
	})
	anyRecord = rapid.Custom(func(t *rapid.T) kv.Record {
		return kv.Record{
			Value:     anyBytes.Draw(t, "value"),
			CreateRev: anyInt64.Draw(t, "create"),
			ModRev:    anyInt64.Draw(t, "mod"),
			Version:   rapid.Int64Min(0).Draw(t, "version"),
			Flags:     rapid.OneOf(rapid.Just(uint64(0)), rapid.Uint64()).Draw(t, "flags"),
			LockIndex: rapid.OneOf(rapid.Just(uint64(0)), rapid.Uint64()).Draw(t, "lock index"),
			Session:   rapid.OneOf(rapid.Just(""), rapid.String()).Draw(t, "session"),
		}
	})
	anyResponse = rapid.Custom(func(t *rapid.T) kv.Response {
		result := rapid.Custom(func(t *rapid.T) kv.OpResult {
			kvs := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) kv.KeyValue {
				return kv.KeyValue{Key: anyBytes.Draw(t, "key"), Record: anyRecord.Draw(t, "record")}
			}), 0, 3).Draw(t, "records")
			return kv.OpResult{Records: kvs, More: rapid.Bool().Draw(t, "more"), Deleted: anyInt64.Draw(t, "deleted")}
		})
		return kv.Response{
			Succeeded: rapid.Bool().Draw(t, "succeeded"),
			Revision:  anyInt64.Draw(t, "revision"),
			Results:   rapid.SliceOfN(result, 0, 3).Draw(t, "results"),
		}
	})
)

// checkCodec checks that decode inverts encode, that the decoded value does
// not alias the input, and that every truncation and any trailing byte is
// refused with ErrMalformed.
func checkCodec[V any](t *rapid.T, v V, enc func(V) []byte, dec func([]byte) (V, error), norm func(V) V) {
	b := enc(v)
	got, err := dec(b)
	if err != nil {
		t.Fatalf("decode: got error %v, want nil", err)
	}
	if !reflect.DeepEqual(norm(got), norm(v)) {
		t.Fatalf("round trip: got %+v, want %+v", got, v)
	}
	scribble(b)
	if !reflect.DeepEqual(norm(got), norm(v)) {
		t.Fatalf("decoded value changed with its input: got %+v, want %+v", got, v)
	}
	b = enc(v)
	for cut := range len(b) {
		if _, err := dec(b[:cut]); !errors.Is(err, kv.ErrMalformed) {
			t.Fatalf("decode of %d of %d bytes: got error %v, want ErrMalformed", cut, len(b), err)
		}
	}
	if _, err := dec(append(b, 0)); !errors.Is(err, kv.ErrMalformed) {
		t.Fatalf("decode with a trailing byte: got error %v, want ErrMalformed", err)
	}
}

func TestTxnCodec(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		txn := anyTxn.Draw(t, "txn")
		dec := kv.DecodeTxn
		if txn.Leased() {
			dec = kv.DecodeLeasedTxn // the log entry's kind says which
		}
		checkCodec(t, txn, kv.EncodeTxn, dec, normTxn)
	})
}

func TestRecordCodec(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		checkCodec(t, anyRecord.Draw(t, "record"), kv.EncodeRecord, kv.DecodeRecord, func(r kv.Record) kv.Record {
			r.Value = normBytes(r.Value)
			return r
		})
	})
}

func TestResponseCodec(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		checkCodec(t, anyResponse.Draw(t, "response"), kv.EncodeResponse, kv.DecodeResponse, normResponse)
	})
}

func TestEncodingIsDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		txn := anyTxn.Draw(t, "txn")
		first := kv.EncodeTxn(txn)
		decoded, err := decodeTxn(first)
		if err != nil {
			t.Fatalf("decode: got error %v, want nil", err)
		}
		if again := kv.EncodeTxn(decoded); string(again) != string(first) {
			t.Fatalf("re-encoding: got %x, want %x", again, first)
		}
	})
}

// TestDecodersRefuseGarbage feeds arbitrary bytes to every decoder: each must
// answer with a value or an error, never a panic.
func TestDecodersRefuseGarbage(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "bytes")
		decodeAll(t, b)
	})
}

func decodeAll(t interface{ Fatalf(string, ...any) }, b []byte) {
	for name, dec := range map[string]func([]byte) error{
		"txn":      func(b []byte) error { _, err := kv.DecodeTxn(b); return err },
		"leased":   func(b []byte) error { _, err := kv.DecodeLeasedTxn(b); return err },
		"record":   func(b []byte) error { _, err := kv.DecodeRecord(b); return err },
		"response": func(b []byte) error { _, err := kv.DecodeResponse(b); return err },
		"snapshot": func(b []byte) error { return kv.New().Restore(b) },
	} {
		if err := dec(b); err != nil && !errors.Is(err, kv.ErrMalformed) {
			t.Fatalf("%s: got error %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(kv.EncodeTxn(kv.Txn{Then: []kv.Op{put("a", "1")}}))
	f.Add(kv.EncodeRecord(kv.Record{Value: []byte("v"), CreateRev: 1, ModRev: 2, Version: 2}))
	m := kv.New()
	m.Apply(then(put("a", "1"), put("b", "2")))
	f.Add(m.Snapshot())
	f.Fuzz(func(t *testing.T, b []byte) { decodeAll(t, b) })
}

func normTxn(t kv.Txn) kv.Txn {
	var out kv.Txn
	for _, c := range t.Compares {
		c.Key, c.Value = normBytes(c.Key), normBytes(c.Value)
		out.Compares = append(out.Compares, c)
	}
	normOps := func(ops []kv.Op) []kv.Op {
		var out []kv.Op
		for _, op := range ops {
			op.Key, op.Value, op.End = normBytes(op.Key), normBytes(op.Value), normBytes(op.End)
			out = append(out, op)
		}
		return out
	}
	out.Then, out.Else = normOps(t.Then), normOps(t.Else)
	return out
}

// decodeTxn decodes with the decoder the log entry's kind would choose.
func decodeTxn(b []byte) (kv.Txn, error) {
	if t, err := kv.DecodeLeasedTxn(b); err == nil {
		return t, nil
	}
	return kv.DecodeTxn(b)
}
