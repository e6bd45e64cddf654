package storage

import (
	"bytes"
	"errors"
	"testing"
)

func TestPutRecordSealsLikePut(t *testing.T) {
	for _, value := range [][]byte{nil, {}, []byte("v"), bytes.Repeat([]byte("abc"), 100)} {
		var put, rec Batch
		put.Put([]byte("k"), value)
		rec.PutRecord([]byte("k"), append(NewRecord(len(value)), value...))
		if got, want := rec.Ops[0].Value, put.Ops[0].Value; !bytes.Equal(got, want) {
			t.Fatalf("PutRecord of %q wrote %x, want Put's %x", value, got, want)
		}
		payload, err := Open([]byte("k"), rec.Ops[0].Value)
		if err != nil || !bytes.Equal(payload, value) {
			t.Fatalf("Open = %q, %v; want %q", payload, err, value)
		}
	}
}

func TestOpenRefusesAFlippedBit(t *testing.T) {
	rec := Seal([]byte("value"))
	rec[len(rec)-1] ^= 1
	if _, err := Open([]byte("k"), rec); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a flipped record: %v, want ErrCorrupt", err)
	}
}

func TestPutRecordWithoutRoomPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("PutRecord of a record shorter than its checksum did not panic")
		}
	}()
	var b Batch
	b.PutRecord([]byte("k"), []byte{1, 2})
}
