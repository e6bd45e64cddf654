package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/aspen-db/aspen/core/kv"
)

// Consul's ?recurse and ?keys answer every key under the prefix, and tools
// that export or mirror a prefix trust that. A read copies its records out
// in the loop, up to the replica's range cap (kv.Limits.RangeLimitMax), so
// a listing longer than listCopyKeysMax is served from a clone of the
// state instead, streamed as it is walked.

// listing is the keys under a prefix at one revision: copied out by the
// read when few, else a clone of the whole state to walk off the loop.
type listing struct {
	rev    int64
	prefix []byte
	recs   []kv.KeyValue // every record under prefix, when view is nil
	view   *kv.Machine   // the state at rev, never written
}

// each visits the listing's records in key order until fn returns false.
func (l listing) each(fn func(key []byte, r kv.Record) bool) {
	if l.view != nil {
		l.view.AscendPrefix(l.prefix, fn)
		return
	}
	for _, rec := range l.recs {
		if !fn(rec.Key, rec.Record) {
			return
		}
	}
}

func (l listing) empty() bool {
	empty := true
	l.each(func([]byte, kv.Record) bool { empty = false; return false })
	return empty
}

// list reads every key under prefix at one revision, linearizably unless
// stale. The read copies up to listCopyKeysMax records (fewer if the
// replica's range cap is lower), as any read does; when there are more,
// the answer is a clone taken after that read. The read's ReadIndex makes
// any later state a linearizable answer, and the clone costs the loop O(1)
// where copying a long listing would hold up apply (writes that follow a
// clone copy the tree nodes they touch, which is why short listings take
// none).
func (s *Server) list(ctx context.Context, prefix []byte, stale bool) (listing, error) {
	limit := min(listCopyKeysMax, s.limits().RangeLimitMax) // a larger one would be refused
	op := kv.Op{Type: kv.OpRange, Key: prefix, Prefix: true, Limit: limit}
	resp, err := s.Read(ctx, kv.Txn{Then: []kv.Op{op}}, stale)
	if err != nil {
		return listing{}, err
	}
	if res := resp.Results[0]; !res.More {
		return listing{rev: resp.Revision, recs: res.Records}, nil
	}
	view, err := s.cloneKV(ctx)
	if err != nil {
		return listing{}, err
	}
	return listing{rev: view.Revision(), prefix: prefix, view: view}, nil
}

// cloneKV returns a copy-on-write clone of this replica's KV state. The
// loop takes it, as it takes a snapshot's: it alone touches the machine,
// and Clone marks the tree shared. The clone is then the caller's to walk
// on its own goroutine while the loop applies on.
func (s *Server) cloneKV(ctx context.Context) (*kv.Machine, error) {
	return callLoop(ctx, s, func() *kv.Machine { return s.node.Hosted("kv").(*kv.Module).M.Clone() })
}

// kvList answers ?recurse and ?keys (with ?separator): 404 when nothing is
// under the prefix, else the whole listing, written as it is walked.
func (s *Server) kvList(w http.ResponseWriter, r *http.Request, prefix string) {
	q := r.URL.Query()
	l, err := s.list(r.Context(), []byte(prefix), q.Has("stale"))
	if err != nil {
		writeCallError(w, err)
		return
	}
	s.consulHeaders(w, l.rev)
	if l.empty() {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	switch {
	case q.Has("keys"):
		w.Header().Set("Content-Type", "application/json")
		writeKeys(w, l, len(prefix), q.Get("separator"))
	case q.Has("raw"): // the first value, as before listings streamed
		w.Header().Set("Content-Type", "application/octet-stream")
		l.each(func(_ []byte, rec kv.Record) bool { w.Write(rec.Value); return false })
	default:
		w.Header().Set("Content-Type", "application/json")
		writeEntries(w, l)
	}
}

// writeEntries writes the listing as Consul's array of KVPairs, one entry
// at a time: a long listing is never held a second time as entries. A
// failed write (the client went away) ends the walk.
func writeEntries(w io.Writer, l listing) {
	a := newJSONArray(w)
	var e consulEntry // one for all: handing the encoder a new one boxed each
	l.each(func(key []byte, rec kv.Record) bool {
		e = toConsul(kv.KeyValue{Key: key, Record: rec})
		return a.add(&e) == nil
	})
	a.close()
}

// writeKeys writes the listing's keys, each folded after the first sep
// that follows the prefix (its first prefixLen bytes), as Consul does.
// Keys come in order, so the keys one fold covers are adjacent (they all
// start with it) and each fold is written once, in order.
func writeKeys(w io.Writer, l listing, prefixLen int, sep string) {
	a := newJSONArray(w)
	sepBytes := []byte(sep)
	var last []byte
	var text string // as e in writeEntries
	l.each(func(key []byte, _ kv.Record) bool {
		if len(sepBytes) > 0 {
			if i := bytes.Index(key[prefixLen:], sepBytes); i >= 0 {
				key = key[:prefixLen+i+len(sepBytes)]
			}
		}
		if a.n > 0 && bytes.Equal(key, last) {
			return true
		}
		last, text = key, string(key)
		return a.add(&text) == nil
	})
	a.close()
}

// jsonArray writes a JSON array an element at a time through a buffer.
type jsonArray struct {
	bw  *bufio.Writer
	enc *json.Encoder
	n   int
}

func newJSONArray(w io.Writer) *jsonArray {
	bw := bufio.NewWriterSize(w, listWriteBufferBytes)
	return &jsonArray{bw: bw, enc: json.NewEncoder(bw)}
}

func (a *jsonArray) add(v any) error {
	sep := byte(',')
	if a.n == 0 {
		sep = '['
	}
	a.n++
	a.bw.WriteByte(sep) // a failed write sticks in bw and comes back from Encode
	return a.enc.Encode(v)
}

func (a *jsonArray) close() {
	if a.n == 0 {
		a.bw.WriteByte('[')
	}
	a.bw.WriteString("]\n")
	a.bw.Flush()
}
