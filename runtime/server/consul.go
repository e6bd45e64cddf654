package server

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/kv"
)

// The KV endpoints follow Consul's /v1/kv API, so that Consul KV clients work
// unchanged. Consul's ModifyIndex and CreateIndex are Aspen's mod and create
// revisions; X-Consul-Index is the store's revision.

// consulEntry is Consul's KVPair as JSON.
type consulEntry struct {
	LockIndex   uint64
	Key         string
	Flags       uint64
	Value       []byte // base64 in JSON, like Consul
	Session     string `json:",omitempty"` // the lock's holder; absent when free, as in Consul
	CreateIndex uint64
	ModifyIndex uint64
}

func (s *Server) handleKV(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
	if err := kv.CheckKeyText([]byte(key)); err != nil {
		// Refused on reads too: no listing can show such a key unchanged.
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.kvGet(w, r, key)
	case http.MethodPut:
		s.kvPut(w, r, key)
	case http.MethodDelete:
		s.kvDelete(w, r, key)
	default:
		methodNotAllowed(w, r, "GET, PUT, DELETE")
	}
}

func (s *Server) kvGet(w http.ResponseWriter, r *http.Request, key string) {
	q := r.URL.Query()
	if err := s.block(r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q.Has("recurse") || q.Has("keys") {
		s.kvList(w, r, key)
		return
	}
	resp, err := s.Read(r.Context(), kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: []byte(key)}}}, q.Has("stale"))
	if err != nil {
		writeCallError(w, err)
		return
	}
	s.consulHeaders(w, resp.Revision)
	recs := resp.Results[0].Records
	switch {
	case len(recs) == 0:
		w.WriteHeader(http.StatusNotFound)
	case q.Has("raw"):
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(recs[0].Value)
	default:
		writeJSON(w, http.StatusOK, []consulEntry{toConsul(recs[0])})
	}
}

func toConsul(rec kv.KeyValue) consulEntry {
	return consulEntry{Key: string(rec.Key), Value: rec.Value, CreateIndex: uint64(rec.CreateRev), ModifyIndex: uint64(rec.ModRev),
		Flags: rec.Flags, LockIndex: rec.LockIndex, Session: rec.Session}
}

// block implements Consul's blocking queries: with ?index=N, wait (up to
// ?wait, default 5 minutes) until the store's revision passes N, or until the
// node stops, so that Close need not wait out the query.
func (s *Server) block(r *http.Request) error {
	return blockOn(r, func(ctx context.Context, index uint64) { s.hub.waitAbove(ctx, s.stop, int64(index)) })
}

// blockOn reads a blocking query's ?index and ?wait and, when it blocks,
// runs waitAbove on the index for at most the wait: each endpoint waits on
// the index it reports.
func blockOn(r *http.Request, waitAbove func(ctx context.Context, index uint64)) error {
	index, ok, err := uintParam(r, "index")
	if err != nil || !ok {
		return err
	}
	wait := blockingWaitSecondsDefault * time.Second
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := parseConsulDuration(v)
		if err != nil {
			return err
		}
		wait = min(d, blockingWaitSecondsMax*time.Second)
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	waitAbove(ctx, index)
	return nil
}

// parseConsulDuration accepts Go durations and bare numbers of seconds.
func parseConsulDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("query parameter wait=%q is not a duration", v)
	}
	return d, nil
}

func (s *Server) consulHeaders(w http.ResponseWriter, rev int64) {
	// Consul clients treat index 0 as "no index"; a fresh store reports 1.
	w.Header().Set("X-Consul-Index", strconv.FormatInt(max(rev, 1), 10))
	st := s.Status()
	w.Header().Set("X-Consul-KnownLeader", strconv.FormatBool(st.Lead != 0))
	w.Header().Set("X-Consul-LastContact", "0")
}

func (s *Server) kvPut(w http.ResponseWriter, r *http.Request, key string) {
	if key == "" {
		writeError(w, http.StatusBadRequest, "missing key: PUT /v1/kv/<key>")
		return
	}
	limit := int64(s.limits().ValueBytesMax)
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	if int64(len(body)) > limit {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("value exceeds %d byte limit", limit))
		return
	}
	put, err := putOp(r, key, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if put.Lock != kv.LockNone {
		s.writeBool(w, r, lockTxn(put))
		return
	}
	txn := kv.Txn{Then: []kv.Op{put}}
	if !s.addCAS(w, r, key, &txn) {
		return
	}
	s.writeBool(w, r, txn)
}

func (s *Server) kvDelete(w http.ResponseWriter, r *http.Request, key string) {
	op := kv.Op{Type: kv.OpDelete, Key: []byte(key)}
	if r.URL.Query().Has("recurse") {
		op = kv.Op{Type: kv.OpDeleteRange, Key: []byte(key), Prefix: true}
	}
	txn := kv.Txn{Then: []kv.Op{op}}
	if !s.addCAS(w, r, key, &txn) {
		return
	}
	s.writeBool(w, r, txn)
}

// leaseParam reads Aspen's ?lease=ID, which ties the key to a lease (Consul
// has no such parameter, so its clients never send it). A lease the cluster
// does not hold is the replica's to refuse: it refuses the whole write, and
// the answer is 400 naming the lease.
func leaseParam(r *http.Request) (int64, error) {
	id, ok, err := uintParam(r, "lease")
	switch {
	case err != nil:
		return 0, err
	case ok && (id == 0 || id > math.MaxInt64):
		return 0, fmt.Errorf("query parameter lease=%d is not a lease id (1..%d)", id, int64(math.MaxInt64))
	}
	return int64(id), nil
}

// addCAS turns ?cas=N into a compare on the key's mod revision (0: must not exist).
func (s *Server) addCAS(w http.ResponseWriter, r *http.Request, key string, txn *kv.Txn) bool {
	index, ok, err := uintParam(r, "cas")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return false
	}
	if ok {
		txn.Compares = []kv.Compare{{Key: []byte(key), Target: kv.TargetModRev, Result: kv.Equal, Rev: int64(index)}}
	}
	return true
}

// writeBool answers a write the way Consul does: true, or false when a CAS failed.
func (s *Server) writeBool(w http.ResponseWriter, r *http.Request, txn kv.Txn) {
	resp, err := s.Write(r.Context(), txn)
	if err != nil {
		writeCallError(w, err)
		return
	}
	s.consulHeaders(w, resp.Revision)
	writeJSON(w, http.StatusOK, resp.Succeeded)
}

func (s *Server) limits() kv.Limits {
	if s.cfg.Node != nil {
		return s.cfg.Node.Limits
	}
	return kv.DefaultLimits()
}

func (s *Server) handleLeader(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	writeJSON(w, http.StatusOK, s.LeaderAddr())
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	var peers []string
	for _, m := range s.Members() {
		if !m.Learner {
			peers = append(peers, m.PeerAddr)
		}
	}
	writeJSON(w, http.StatusOK, peers)
}
