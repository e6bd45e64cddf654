package kv_test

import (
	"bytes"
	"cmp"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/aspen-db/aspen/core/kv"
)

// model is the obviously-correct reference the Machine is checked against: a
// plain map, an explicit revision counter, and results computed by sorting keys.
type model struct {
	recs map[string]kv.Record
	rev  int64
}

func newModel() *model { return &model{recs: map[string]kv.Record{}} }

func (md *model) sortedKeys() []string {
	keys := make([]string, 0, len(md.recs))
	for k := range md.recs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// covered lists, in order, the stored keys a Range or DeleteRange op covers.
func (md *model) covered(op kv.Op) []string {
	var out []string
	for _, k := range md.sortedKeys() {
		var in bool
		switch {
		case len(op.End) > 0:
			in = k >= string(op.Key) && k < string(op.End)
		case op.Prefix:
			in = strings.HasPrefix(k, string(op.Key))
		default:
			in = k == string(op.Key)
		}
		if in {
			out = append(out, k)
		}
	}
	return out
}

func (md *model) holds(c kv.Compare) bool {
	r, ok := md.recs[string(c.Key)]
	var order int
	switch c.Target {
	case kv.TargetValue:
		if !ok {
			return c.Result == kv.NotEqual
		}
		order = bytes.Compare(r.Value, c.Value)
	case kv.TargetModRev:
		order = cmp.Compare(r.ModRev, c.Rev)
	case kv.TargetCreateRev:
		order = cmp.Compare(r.CreateRev, c.Rev)
	case kv.TargetVersion:
		order = cmp.Compare(r.Version, c.Rev)
	case kv.TargetExists:
		switch c.Result {
		case kv.Equal:
			return ok == c.Exists
		case kv.NotEqual:
			return ok != c.Exists
		}
		return false
	default:
		return false
	}
	switch c.Result {
	case kv.Equal:
		return order == 0
	case kv.NotEqual:
		return order != 0
	case kv.Less:
		return order < 0
	case kv.Greater:
		return order > 0
	}
	return false
}

func (md *model) kv(k string) kv.KeyValue {
	r := md.recs[k]
	r.Value = bytes.Clone(r.Value)
	return kv.KeyValue{Key: []byte(k), Record: r}
}

// apply runs t the way the Machine's contract says, op by op.
func (md *model) apply(t kv.Txn) (kv.Response, []kv.Change) {
	ok := true
	for _, c := range t.Compares {
		ok = ok && md.holds(c)
	}
	ops := t.Then
	if !ok {
		ops = t.Else
	}
	touched := map[string]bool{}
	var results []kv.OpResult
	for _, op := range ops {
		results = append(results, md.exec(op, touched))
	}
	var changes []kv.Change
	for _, k := range slices.Sorted(maps.Keys(touched)) {
		r, found := md.recs[k]
		changes = append(changes, kv.Change{Key: []byte(k), Record: r, Deleted: !found})
	}
	if len(touched) > 0 {
		md.rev++
	}
	return kv.Response{Succeeded: ok, Revision: md.rev, Results: results}, changes
}

// exec runs one op, stamping writes with the next revision and noting the keys
// it changed in touched.
func (md *model) exec(op kv.Op, touched map[string]bool) kv.OpResult {
	var res kv.OpResult
	next, k := md.rev+1, string(op.Key)
	switch op.Type {
	case kv.OpGet:
		if _, found := md.recs[k]; found {
			res.Records = []kv.KeyValue{md.kv(k)}
		}
	case kv.OpRange:
		keys := md.covered(op)
		if op.Limit > 0 && len(keys) > op.Limit {
			keys, res.More = keys[:op.Limit], true
		}
		for _, k := range keys {
			res.Records = append(res.Records, md.kv(k))
		}
	case kv.OpPut:
		r, found := md.recs[k]
		if found {
			r = kv.Record{CreateRev: r.CreateRev, ModRev: next, Version: r.Version + 1}
		} else {
			r = kv.Record{CreateRev: next, ModRev: next, Version: 1}
		}
		r.Value = bytes.Clone(op.Value)
		md.recs[k] = r
		touched[k] = true
	case kv.OpDelete, kv.OpDeleteRange:
		keys := []string{k}
		if op.Type == kv.OpDeleteRange {
			keys = md.covered(op)
		}
		for _, k := range keys {
			if _, found := md.recs[k]; found {
				delete(md.recs, k)
				res.Deleted++
				touched[k] = true
			}
		}
	}
	return res
}

// The Machine and the model may differ in whether an empty slice is nil; these
// helpers make both nil so that reflect.DeepEqual compares what matters.

func normBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func normResponse(r kv.Response) kv.Response {
	if len(r.Results) == 0 {
		r.Results = nil
	}
	out := r
	out.Results = nil
	for _, res := range r.Results {
		var recs []kv.KeyValue
		for _, rec := range res.Records {
			rec.Key, rec.Value = normBytes(rec.Key), normBytes(rec.Value)
			recs = append(recs, rec)
		}
		res.Records = recs
		out.Results = append(out.Results, res)
	}
	return out
}

func normChanges(cs []kv.Change) []kv.Change {
	var out []kv.Change
	for _, c := range cs {
		c.Key, c.Record.Value = normBytes(c.Key), normBytes(c.Record.Value)
		out = append(out, c)
	}
	return out
}

func equalResponses(a, b kv.Response) bool {
	return reflect.DeepEqual(normResponse(a), normResponse(b))
}

func equalChanges(a, b []kv.Change) bool {
	return reflect.DeepEqual(normChanges(a), normChanges(b))
}
