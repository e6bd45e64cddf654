package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/aspen-db/aspen/core/kv"
)

// Consul's /v1/txn: a list of KV operations applied atomically. Checks
// (cas, check-index, check-not-exists, delete-cas, get) become compares of one
// Aspen transaction; if any fails, nothing is applied and the answer is 409.
//
// Aspen adds one operation, Publish: a message to a topic (Topic, Key,
// Value base64 as KV values are), published only if the transaction
// applies, in the same commit as its writes. Its result names the topic.

type consulTxnOp struct {
	KV      *consulTxnKV
	Publish *txnPublish
}

type txnPublish struct {
	Topic string
	Key   *string // absent: no key (the partition goes round-robin)
	Value []byte
}

type consulTxnKV struct {
	Verb    string
	Key     string
	Value   []byte
	Flags   uint64
	Index   uint64
	Session string
}

type consulTxnResult struct {
	KV      *consulEntry  `json:",omitempty"`
	Publish *txnPublished `json:",omitempty"`
}

type txnPublished struct {
	Topic string
}

type consulTxnError struct {
	OpIndex int
	What    string
}

type consulTxnResponse struct {
	Results []consulTxnResult
	Errors  []consulTxnError
	More    []txnMore `json:",omitempty"` // Aspen's: get-trees the range cap cut short
}

// txnMore names a get-tree that listed only the first RangeLimitMax keys
// of its tree: the rest sort after After, its last key listed.
type txnMore struct {
	OpIndex int
	After   string
}

func (s *Server) handleTxn(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		methodNotAllowed(w, r, "PUT")
		return
	}
	var ops []consulTxnOp
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(txnOpsMax)*int64(s.limits().ValueBytesMax)*txnBodyPerValueFactor))
	if err == nil {
		err = json.Unmarshal(body, &ops)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "malformed transaction body: "+err.Error())
		return
	}
	if len(ops) > txnOpsMax {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("transaction has %d operations, limit is %d", len(ops), txnOpsMax))
		return
	}
	txn, checks, thenOf, err := translateTxn(ops)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(txn.Compares)+len(txn.Then)+len(txn.Else) > s.limits().TxnOpsMax {
		txn.Else = nil // no room to read the checked keys: failures name the first check only
	}
	resp, err := s.Do(r.Context(), txn, r.URL.Query().Has("stale"))
	if err != nil {
		writeCallError(w, err)
		return
	}
	s.consulHeaders(w, resp.Revision)
	s.answerTxn(w, ops, txn.ReadOnly(), checks, thenOf, resp)
}

// answerTxn answers as Consul does (409 naming the failed checks, else the
// results), and says when a get-tree was cut short by the replica's range
// cap: in More, or, when nothing was written, by refusing the whole answer
// (a Consul client would not look at More and would take the cut for the
// tree).
func (s *Server) answerTxn(w http.ResponseWriter, ops []consulTxnOp, readOnly bool, checks []check, thenOf []int, resp kv.Response) {
	if !resp.Succeeded {
		writeJSON(w, http.StatusConflict, consulTxnResponse{Errors: failedChecks(checks, resp.Results)})
		return
	}
	more := cutTrees(ops, thenOf, resp)
	if len(more) > 0 && readOnly {
		i := more[0].OpIndex
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("operation %d: get-tree %q holds more than %d keys, the most a transaction lists; list them with GET /v1/kv/%s?recurse",
			i, ops[i].KV.Key, s.limits().RangeLimitMax, ops[i].KV.Key))
		return
	}
	writeJSON(w, http.StatusOK, consulTxnResponse{Results: txnResults(ops, thenOf, resp), More: more})
}

// cutTrees names every get-tree the replica's range cap cut short.
func cutTrees(ops []consulTxnOp, thenOf []int, resp kv.Response) []txnMore {
	var more []txnMore
	for i, op := range ops {
		if op.KV == nil || op.KV.Verb != "get-tree" {
			continue
		}
		if res := resp.Results[thenOf[i]]; res.More {
			more = append(more, txnMore{OpIndex: i, After: string(res.Records[len(res.Records)-1].Key)})
		}
	}
	return more
}

// check is one compare of a translated transaction and the Consul
// operation it came from.
type check struct {
	op  int
	cmp kv.Compare
}

// failedChecks names every check that did not hold, as Consul does. The
// else branch of the transaction read each checked key at the revision the
// checks were evaluated at, so the verdicts here are those of the replica.
func failedChecks(checks []check, reads []kv.OpResult) []consulTxnError {
	var errs []consulTxnError
	for i, c := range checks {
		if i >= len(reads) {
			break
		}
		var rec *kv.Record
		if len(reads[i].Records) > 0 {
			rec = &reads[i].Records[0].Record
		}
		if why := checkFailure(c.cmp, rec); why != "" {
			errs = append(errs, consulTxnError{OpIndex: c.op, What: why})
		}
	}
	if len(errs) == 0 { // the checked keys were not read back
		errs = append(errs, consulTxnError{OpIndex: checks[0].op, What: "a check failed: index or existence did not match"})
	}
	return errs
}

func checkFailure(c kv.Compare, rec *kv.Record) string {
	switch {
	case c.Target == kv.TargetExists && c.Exists && rec == nil:
		return fmt.Sprintf("key %q does not exist", c.Key)
	case c.Target == kv.TargetExists && !c.Exists && rec != nil:
		return fmt.Sprintf("key %q exists", c.Key)
	case c.Target == kv.TargetModRev && rec == nil && c.Rev != 0:
		return fmt.Sprintf("key %q does not exist", c.Key)
	case c.Target == kv.TargetModRev && rec != nil && rec.ModRev != c.Rev:
		return fmt.Sprintf("current modify index %d of key %q does not match %d", rec.ModRev, c.Key, c.Rev)
	}
	return ""
}

// translateTxn maps Consul verbs onto compares and ops, and Publish onto
// the txn's messages. When a check fails, the else branch reads every
// checked key, so that the answer can say which. thenOf gives each
// operation's index in the Then branch (-1 for a publish).
func translateTxn(ops []consulTxnOp) (txn kv.Txn, checks []check, thenOf []int, err error) {
	for i, op := range ops {
		switch {
		case op.KV != nil && op.Publish != nil, op.KV == nil && op.Publish == nil:
			return txn, nil, nil, fmt.Errorf("operation %d: want one of KV and Publish", i)
		case op.Publish != nil:
			p := kv.Pub{Topic: op.Publish.Topic, Value: op.Publish.Value}
			if op.Publish.Key != nil {
				p.Key = []byte(*op.Publish.Key)
			}
			txn.Publish = append(txn.Publish, p)
			thenOf = append(thenOf, -1)
			continue
		}
		cmps, kop, err := translateKV(*op.KV)
		if err != nil {
			return txn, nil, nil, fmt.Errorf("operation %d: %w", i, err)
		}
		for _, c := range cmps {
			checks = append(checks, check{op: i, cmp: c})
			txn.Else = append(txn.Else, kv.Op{Type: kv.OpGet, Key: c.Key})
		}
		txn.Compares = append(txn.Compares, cmps...)
		thenOf = append(thenOf, len(txn.Then))
		txn.Then = append(txn.Then, kop)
	}
	return txn, checks, thenOf, nil
}

func translateKV(op consulTxnKV) ([]kv.Compare, kv.Op, error) {
	key := []byte(op.Key)
	modRev := []kv.Compare{{Key: key, Target: kv.TargetModRev, Result: kv.Equal, Rev: int64(op.Index)}}
	exists := func(b bool) []kv.Compare {
		return []kv.Compare{{Key: key, Target: kv.TargetExists, Result: kv.Equal, Exists: b}}
	}
	get := kv.Op{Type: kv.OpGet, Key: key}
	if err := kv.CheckKeyText(key); err != nil {
		return nil, get, err // every verb names a key or a prefix
	}
	if op.Flags != 0 || op.Session != "" {
		return nil, get, fmt.Errorf("flags and sessions are not supported by Aspen")
	}
	switch op.Verb {
	case "set":
		return nil, kv.Op{Type: kv.OpPut, Key: key, Value: op.Value}, nil
	case "cas":
		return modRev, kv.Op{Type: kv.OpPut, Key: key, Value: op.Value}, nil
	case "get":
		return exists(true), get, nil
	case "get-tree":
		return nil, kv.Op{Type: kv.OpRange, Key: key, Prefix: true}, nil
	case "check-index":
		return modRev, get, nil
	case "check-not-exists":
		return exists(false), get, nil
	case "delete":
		return nil, kv.Op{Type: kv.OpDelete, Key: key}, nil
	case "delete-tree":
		return nil, kv.Op{Type: kv.OpDeleteRange, Key: key, Prefix: true}, nil
	case "delete-cas":
		return modRev, kv.Op{Type: kv.OpDelete, Key: key}, nil
	}
	return nil, get, fmt.Errorf("verb %q is not supported (set, cas, get, get-tree, check-index, check-not-exists, delete, delete-tree, delete-cas)", op.Verb)
}

// txnResults answers like Consul: gets return their entries, sets return the
// entry they wrote (without its value), checks and deletes return nothing;
// a publish returns its topic.
func txnResults(ops []consulTxnOp, thenOf []int, resp kv.Response) []consulTxnResult {
	var out []consulTxnResult
	for i, op := range ops {
		if op.Publish != nil {
			out = append(out, consulTxnResult{Publish: &txnPublished{Topic: op.Publish.Topic}})
			continue
		}
		switch op.KV.Verb {
		case "get", "get-tree":
			for _, rec := range resp.Results[thenOf[i]].Records {
				e := toConsul(rec)
				out = append(out, consulTxnResult{KV: &e})
			}
		case "set", "cas":
			rev := uint64(resp.Revision)
			out = append(out, consulTxnResult{KV: &consulEntry{Key: op.KV.Key, ModifyIndex: rev, CreateIndex: rev}})
		}
	}
	return out
}
