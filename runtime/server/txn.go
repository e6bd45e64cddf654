package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/aspen-db/aspen/core/kv"
)

// Consul's /v1/txn: a list of KV operations applied atomically. Checks
// (cas, lock, unlock, get, check-index, check-session, check-not-exists,
// delete-cas) become compares of one Aspen transaction; if any fails,
// nothing is applied and the answer is 409 naming each failed check.
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
	plan, err := translateTxn(ops, true)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	plan = s.fitTxn(ops, plan)
	resp, err := s.Do(r.Context(), plan.txn, r.URL.Query().Has("stale"))
	if err != nil {
		writeCallError(w, err)
		return
	}
	s.consulHeaders(w, resp.Revision)
	s.answerTxn(w, ops, plan, resp)
}

// answerTxn answers as Consul does (409 naming the failed checks, else the
// results), and says when a get-tree was cut short by the replica's range
// cap: in More, or, when nothing was written, by refusing the whole answer
// (a Consul client would not look at More and would take the cut for the
// tree).
func (s *Server) answerTxn(w http.ResponseWriter, ops []consulTxnOp, plan txnPlan, resp kv.Response) {
	if !resp.Succeeded {
		writeJSON(w, http.StatusConflict, consulTxnResponse{Errors: failedChecks(plan.checks, resp.Results)})
		return
	}
	more := cutTrees(ops, plan.reads, resp)
	if len(more) > 0 && plan.txn.ReadOnly() {
		i := more[0].OpIndex
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("operation %d: get-tree %q holds more than %d keys, the most a transaction lists; list them with GET /v1/kv/%s?recurse",
			i, ops[i].KV.Key, s.limits().RangeLimitMax, ops[i].KV.Key))
		return
	}
	writeJSON(w, http.StatusOK, consulTxnResponse{Results: txnResults(ops, plan, resp), More: more})
}

// cutTrees names every get-tree the replica's range cap cut short.
func cutTrees(ops []consulTxnOp, reads []int, resp kv.Response) []txnMore {
	var more []txnMore
	for i, op := range ops {
		if op.KV == nil || op.KV.Verb != "get-tree" || reads[i] < 0 {
			continue
		}
		if res := resp.Results[reads[i]]; res.More {
			more = append(more, txnMore{OpIndex: i, After: string(res.Records[len(res.Records)-1].Key)})
		}
	}
	return more
}

// fitTxn gives up what a transaction too large for the store's op limit
// can do without: first the reads after its writes (their results then
// hold only what the request said), then the reads of its checked keys
// (a failure then names the first check only).
func (s *Server) fitTxn(ops []consulTxnOp, plan txnPlan) txnPlan {
	size := func(t kv.Txn) int { return len(t.Compares) + len(t.Then) + len(t.Else) }
	if size(plan.txn) > s.limits().TxnOpsMax {
		plan, _ = translateTxn(ops, false) // translated once already: no error
	}
	if size(plan.txn) > s.limits().TxnOpsMax {
		plan.txn.Else = nil
	}
	return plan
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
// An operation with two checks that fail for one reason is named once.
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
		why := checkFailure(c.cmp, rec)
		e := consulTxnError{OpIndex: c.op, What: why}
		if why != "" && (len(errs) == 0 || errs[len(errs)-1] != e) {
			errs = append(errs, e)
		}
	}
	if len(errs) == 0 { // the checked keys were not read back
		errs = append(errs, consulTxnError{OpIndex: checks[0].op, What: "a check failed: an index, existence or lock did not match"})
	}
	return errs
}

func checkFailure(c kv.Compare, rec *kv.Record) string {
	session := string(c.Value)
	switch {
	case c.Target == kv.TargetExists && c.Exists && rec == nil:
		return fmt.Sprintf("key %q does not exist", c.Key)
	case c.Target == kv.TargetExists && !c.Exists && rec != nil:
		return fmt.Sprintf("key %q exists", c.Key)
	case c.Target == kv.TargetModRev && rec == nil && c.Rev != 0:
		return fmt.Sprintf("key %q does not exist", c.Key)
	case c.Target == kv.TargetModRev && rec != nil && rec.ModRev != c.Rev:
		return fmt.Sprintf("current modify index %d of key %q does not match %d", rec.ModRev, c.Key, c.Rev)
	case c.Target == kv.TargetSession && (rec == nil || rec.Session == "") && session != "":
		return fmt.Sprintf("key %q is not locked by session %q", c.Key, session)
	case c.Target == kv.TargetSession && rec != nil && rec.Session != session:
		return fmt.Sprintf("key %q is locked by session %q, not %q", c.Key, rec.Session, session)
	case c.Target == kv.TargetLockable && rec != nil && rec.Session != "" && rec.Session != session:
		return fmt.Sprintf("key %q is locked by session %q", c.Key, rec.Session)
	case c.Target == kv.TargetLockable && (rec == nil || rec.Session == ""):
		return fmt.Sprintf("key %q is in its lock delay (a session that held it was invalidated)", c.Key)
	}
	return ""
}

// txnShape is what one operation's result holds, as Consul answers it.
type txnShape uint8

const (
	shapeNone    txnShape = iota // check-not-exists and the deletes: nothing
	shapeEntry                   // the key's entry without its value: set, cas, lock, unlock, check-index, check-session
	shapeValue                   // the entry with its value: get
	shapeOrEmpty                 // get-or-empty: the entry, or the request's own when there is none
	shapeTree                    // get-tree: every entry under the prefix, with values
)

// txnPlan is a Consul transaction as one Aspen txn: its checks, and for
// each operation the Then op its result is read from (-1: none) and what
// the result holds.
type txnPlan struct {
	txn    kv.Txn
	checks []check
	reads  []int
	shapes []txnShape
}

// translateTxn maps Consul verbs onto compares and ops, and Publish onto
// the txn's messages. When a check fails, the else branch reads every
// checked key, so that the answer can say which. With readBack, a get
// after each write reads the entry the write left, for its result.
func translateTxn(ops []consulTxnOp, readBack bool) (plan txnPlan, err error) {
	for i, op := range ops {
		switch {
		case op.KV != nil && op.Publish != nil, op.KV == nil && op.Publish == nil:
			return plan, fmt.Errorf("operation %d: want one of KV and Publish", i)
		case op.Publish != nil:
			p := kv.Pub{Topic: op.Publish.Topic, Value: op.Publish.Value}
			if op.Publish.Key != nil {
				p.Key = []byte(*op.Publish.Key)
			}
			plan.txn.Publish = append(plan.txn.Publish, p)
			plan.reads, plan.shapes = append(plan.reads, -1), append(plan.shapes, shapeNone)
			continue
		}
		cmps, kop, shape, err := translateKV(*op.KV)
		if err != nil {
			return plan, fmt.Errorf("operation %d: %w", i, err)
		}
		for _, c := range cmps {
			plan.checks = append(plan.checks, check{op: i, cmp: c})
			plan.txn.Else = append(plan.txn.Else, kv.Op{Type: kv.OpGet, Key: c.Key})
		}
		plan.txn.Compares = append(plan.txn.Compares, cmps...)
		plan.txn.Then = append(plan.txn.Then, kop)
		read := len(plan.txn.Then) - 1
		switch {
		case kop.Type == kv.OpPut && readBack:
			plan.txn.Then = append(plan.txn.Then, kv.Op{Type: kv.OpGet, Key: kop.Key})
			read++
		case kop.Type == kv.OpPut:
			read = -1
		}
		plan.reads, plan.shapes = append(plan.reads, read), append(plan.shapes, shape)
	}
	return plan, nil
}

func translateKV(op consulTxnKV) ([]kv.Compare, kv.Op, txnShape, error) {
	key := []byte(op.Key)
	modRev := kv.Compare{Key: key, Target: kv.TargetModRev, Result: kv.Equal, Rev: int64(op.Index)}
	exists := func(b bool) kv.Compare {
		return kv.Compare{Key: key, Target: kv.TargetExists, Result: kv.Equal, Exists: b}
	}
	get := kv.Op{Type: kv.OpGet, Key: key}
	if err := kv.CheckKeyText(key); err != nil {
		return nil, get, 0, err // every verb names a key or a prefix
	}
	put := kv.Op{Type: kv.OpPut, Key: key, Value: op.Value, Flags: op.Flags}
	switch op.Verb {
	case "set":
		return nil, put, shapeEntry, nil
	case "cas":
		return []kv.Compare{modRev}, put, shapeEntry, nil
	case "lock", "unlock":
		if op.Session == "" {
			return nil, get, 0, fmt.Errorf("verb %s needs a Session", op.Verb)
		}
		put.Lock, put.Session = kv.LockAcquire, op.Session
		if op.Verb == "unlock" {
			put.Lock = kv.LockRelease
		}
		return []kv.Compare{lockCompare(put)}, put, shapeEntry, nil
	case "get":
		return []kv.Compare{exists(true)}, get, shapeValue, nil
	case "get-or-empty":
		return nil, get, shapeOrEmpty, nil
	case "get-tree":
		return nil, kv.Op{Type: kv.OpRange, Key: key, Prefix: true}, shapeTree, nil
	case "check-index":
		return []kv.Compare{exists(true), modRev}, get, shapeEntry, nil
	case "check-session": // an empty Session checks that the key is not locked
		held := kv.Compare{Key: key, Target: kv.TargetSession, Result: kv.Equal, Value: []byte(op.Session)}
		return []kv.Compare{exists(true), held}, get, shapeEntry, nil
	case "check-not-exists":
		return []kv.Compare{exists(false)}, get, shapeNone, nil
	case "delete":
		return nil, kv.Op{Type: kv.OpDelete, Key: key}, shapeNone, nil
	case "delete-tree":
		return nil, kv.Op{Type: kv.OpDeleteRange, Key: key, Prefix: true}, shapeNone, nil
	case "delete-cas":
		return []kv.Compare{modRev}, kv.Op{Type: kv.OpDelete, Key: key}, shapeNone, nil
	}
	return nil, get, 0, fmt.Errorf("verb %q is not supported (set, cas, lock, unlock, get, get-or-empty, get-tree, "+
		"check-index, check-session, check-not-exists, delete, delete-tree, delete-cas)", op.Verb)
}

// txnResults answers like Consul: get, get-or-empty and get-tree return
// entries with their values; set, cas, lock, unlock, check-index and
// check-session return the key's entry without its value; check-not-exists
// and the deletes return nothing; a publish returns its topic.
func txnResults(ops []consulTxnOp, plan txnPlan, resp kv.Response) []consulTxnResult {
	var out []consulTxnResult
	for i, op := range ops {
		if op.Publish != nil {
			out = append(out, consulTxnResult{Publish: &txnPublished{Topic: op.Publish.Topic}})
			continue
		}
		var recs []kv.KeyValue
		if plan.reads[i] >= 0 {
			recs = resp.Results[plan.reads[i]].Records
		}
		for _, e := range txnEntries(*op.KV, plan.shapes[i], plan.reads[i] >= 0, recs, resp.Revision) {
			out = append(out, consulTxnResult{KV: &e})
		}
	}
	return out
}

// txnEntries is one operation's entries. A write whose entry was not read
// back (fitTxn) answers what its request said, at the txn's revision.
func txnEntries(op consulTxnKV, shape txnShape, read bool, recs []kv.KeyValue, rev int64) []consulEntry {
	var out []consulEntry
	switch {
	case shape == shapeNone:
	case shape == shapeEntry && !read:
		out = append(out, consulEntry{Key: op.Key, Flags: op.Flags, ModifyIndex: uint64(rev)})
	case shape == shapeOrEmpty && len(recs) == 0:
		// Consul answers the request's own entry, without a value.
		out = append(out, consulEntry{Key: op.Key, Flags: op.Flags, Session: op.Session, ModifyIndex: op.Index})
	default:
		for _, rec := range recs {
			e := toConsul(rec)
			if shape == shapeEntry {
				e.Value = nil
			}
			out = append(out, e)
		}
	}
	return out
}
