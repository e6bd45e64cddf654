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

type consulTxnOp struct {
	KV *consulTxnKV
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
	KV consulEntry
}

type consulTxnError struct {
	OpIndex int
	What    string
}

type consulTxnResponse struct {
	Results []consulTxnResult
	Errors  []consulTxnError
}

// txnOpsMax matches Consul's limit on operations per transaction.
const txnOpsMax = 64

func (s *Server) handleTxn(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		methodNotAllowed(w, r, "PUT")
		return
	}
	var ops []consulTxnOp
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(txnOpsMax)*int64(s.limits().ValueBytesMax)*2))
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
	txn, firstCheck, err := translateTxn(ops)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := s.Do(r.Context(), txn, r.URL.Query().Has("stale"))
	if err != nil {
		writeCallError(w, err)
		return
	}
	s.consulHeaders(w, resp.Revision)
	if !resp.Succeeded {
		// Aspen evaluates all checks together and does not say which one failed;
		// the first check stands for them.
		writeJSON(w, http.StatusConflict, consulTxnResponse{Errors: []consulTxnError{{OpIndex: firstCheck, What: "a check failed: index or existence did not match"}}})
		return
	}
	writeJSON(w, http.StatusOK, consulTxnResponse{Results: txnResults(ops, resp)})
}

// translateTxn maps Consul verbs onto compares and ops; it also returns the
// index of the first operation that checks something.
func translateTxn(ops []consulTxnOp) (kv.Txn, int, error) {
	var txn kv.Txn
	firstCheck := -1
	for i, op := range ops {
		if op.KV == nil {
			return txn, 0, fmt.Errorf("operation %d: only KV operations are supported", i)
		}
		cmps, kop, err := translateKV(*op.KV)
		if err != nil {
			return txn, 0, fmt.Errorf("operation %d: %w", i, err)
		}
		if len(cmps) > 0 && firstCheck < 0 {
			firstCheck = i
		}
		txn.Compares = append(txn.Compares, cmps...)
		txn.Then = append(txn.Then, kop)
	}
	return txn, max(firstCheck, 0), nil
}

func translateKV(op consulTxnKV) ([]kv.Compare, kv.Op, error) {
	key := []byte(op.Key)
	modRev := []kv.Compare{{Key: key, Target: kv.TargetModRev, Result: kv.Equal, Rev: int64(op.Index)}}
	exists := func(b bool) []kv.Compare {
		return []kv.Compare{{Key: key, Target: kv.TargetExists, Result: kv.Equal, Exists: b}}
	}
	get := kv.Op{Type: kv.OpGet, Key: key}
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
// entry they wrote (without its value), checks and deletes return nothing.
func txnResults(ops []consulTxnOp, resp kv.Response) []consulTxnResult {
	var out []consulTxnResult
	for i, op := range ops {
		switch op.KV.Verb {
		case "get", "get-tree":
			for _, rec := range resp.Results[i].Records {
				out = append(out, consulTxnResult{KV: toConsul(rec)})
			}
		case "set", "cas":
			rev := uint64(resp.Revision)
			out = append(out, consulTxnResult{KV: consulEntry{Key: op.KV.Key, ModifyIndex: rev, CreateIndex: rev}})
		}
	}
	return out
}
