package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"

	"github.com/aspen-db/aspen/core/node"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, name string, h http.HandlerFunc) { mux.HandleFunc(pattern, s.metrics.instrument(name, h)) }
	route("/v1/txn", "txn", s.handleTxn)
	route("/v1/status/leader", "status_leader", s.handleLeader)
	route("/v1/status/peers", "status_peers", s.handlePeers)
	s.sessionRoutes(route)
	s.agentRoutes(route)
	route("/v1/aspen/status", "aspen_status", s.handleStatus)
	route("/v1/aspen/watch", "aspen_watch", s.handleWatch)
	route("/v1/aspen/members", "aspen_members", s.handleMembers)
	route("/v1/aspen/transfer-leader", "aspen_transfer", s.handleTransfer)
	route("/v1/aspen/snapshot", "aspen_snapshot", s.handleSnapshot)
	route("/v1/aspen/removed", "aspen_removed", s.handleRemoved)
	s.leaseRoutes(route)
	s.tokenRoutes(route)
	s.jobRoutes(route)
	s.jobStatsRoute(route)
	route("/v1/aspen/job/complete/batch", "aspen_job_complete_batch", s.handleJobCompleteBatch)
	s.scheduleRoutes(route)
	s.hookRoutes(route)
	s.topicRoutes(route)
	s.groupRoutes(route)
	mux.Handle("/metrics", s.metrics.handler())
	if s.cfg.Profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves heap, goroutine, block, ...
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	kvRoute := s.metrics.instrument("kv", s.handleKV)
	return s.owned(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Keys are opaque: the mux would clean "a//b" or "x/../y" into another
		// path (and redirect), so KV requests skip it.
		if strings.HasPrefix(r.URL.Path, "/v1/kv/") {
			kvRoute(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

// apiError is the JSON body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// refusalStatus maps the outcomes of a request the replica judged and turned
// down (nothing applied) onto status codes.
var refusalStatus = map[node.Outcome]int{
	node.Invalid:  http.StatusBadRequest,
	node.TooLarge: http.StatusRequestEntityTooLarge,
	node.Conflict: http.StatusConflict,
	node.NotFound: http.StatusNotFound,
}

// writeCallError maps a failed call onto a status code: a refusal is the
// request's fault (nothing applied); the rest is unavailability, and for a
// write the outcome is unknown.
func writeCallError(w http.ResponseWriter, err error) {
	var refused *node.Error
	if errors.As(err, &refused) && refused.Outcome.Refused() {
		code, ok := refusalStatus[refused.Outcome]
		if !ok {
			code = http.StatusBadRequest // a refusal added to core before it got a status of its own
		}
		writeError(w, code, refused.Detail)
		return
	}
	if errors.Is(err, ErrSuperseded) {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	writeError(w, http.StatusServiceUnavailable, err.Error())
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed string) {
	w.Header().Set("Allow", allowed)
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allowed))
}

// uintParam parses an optional unsigned query parameter.
func uintParam(r *http.Request, name string) (v uint64, present bool, err error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return 0, false, nil
	}
	v, err = strconv.ParseUint(q.Get(name), 10, 64)
	if err != nil {
		return 0, true, fmt.Errorf("query parameter %s=%q is not an unsigned integer", name, q.Get(name))
	}
	return v, true, nil
}
