package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/runtime/transport"
)

// StatusReport is what /v1/aspen/status answers.
type StatusReport struct {
	node.Status
	LeaderAddr  string                         `json:"leader_addr"`
	Members     []node.Member                  `json:"members"`
	Peers       map[uint64]transport.PeerStats `json:"peers"`
	LastContact map[uint64]string              `json:"last_contact"` // since a message last arrived from each peer
	// TickMs and ElectionTimeoutMs are this node's raft settings; the
	// election timeout is also the grace a new leader gives every lease.
	TickMs            int64 `json:"tick_ms"`
	ElectionTimeoutMs int64 `json:"election_timeout_ms"`
}

// UnmarshalJSON reads a report as the status API writes it: raft.StateType
// marshals as its name ("StateLeader") but has no way back.
func (r *StatusReport) UnmarshalJSON(b []byte) error {
	type plain StatusReport
	var v struct {
		plain
		Role string
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	role, err := node.ParseRole(v.Role)
	if err != nil {
		return err
	}
	*r = StatusReport(v.plain)
	r.Role = role
	return nil
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	tick := s.cfg.Tick.Milliseconds()
	writeJSON(w, http.StatusOK, StatusReport{Status: s.Status(), LeaderAddr: s.LeaderAddr(), Members: s.Members(),
		Peers: s.tr.Stats(), LastContact: s.contact.report(), TickMs: tick, ElectionTimeoutMs: tick * int64(s.electionTicks)})
}

// WatchEvent is one line of a watch stream.
type WatchEvent struct {
	Revision       int64  `json:"revision"`
	Type           string `json:"type"` // put or delete
	Key            string `json:"key"`
	Value          []byte `json:"value,omitempty"`
	CreateRevision int64  `json:"create_revision,omitempty"`
	ModRevision    int64  `json:"mod_revision,omitempty"`
	Version        int64  `json:"version,omitempty"`
	// Flags, LockIndex and Session are Consul's (a key's flags, how often a
	// session acquired it, and the session holding it); absent when zero.
	Flags     uint64 `json:"flags,omitempty"`
	LockIndex uint64 `json:"lock_index,omitempty"`
	Session   string `json:"session,omitempty"`
	// Expired marks a delete made by a lease's expiry, not by a client (a
	// revoke is a client's); absent otherwise, so older readers see a delete.
	Expired bool   `json:"expired,omitempty"`
	Error   string `json:"error,omitempty"`
}

// handleWatch streams changes to a key (?key=) or a prefix (?prefix=), one
// JSON object per line, starting at ?from= (default: the next revision). A
// start older than the retained history is answered 410 Gone.
func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key, prefix := q.Get("key"), q.Get("prefix")
	if (key == "") == (!q.Has("prefix")) {
		writeError(w, http.StatusBadRequest, "give exactly one of ?key= or ?prefix=")
		return
	}
	from, _, err := uintParam(r, "from")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	next := int64(from)
	if next == 0 {
		rev, _ := s.hub.revision()
		next = rev + 1
	}
	match := func(e node.Event) bool {
		if q.Has("prefix") {
			return bytes.HasPrefix(e.Key, []byte(prefix))
		}
		return string(e.Key) == key
	}
	if _, _, ok, _ := s.hub.since(next, match); !ok {
		writeError(w, http.StatusGone, "revision "+strconv.FormatInt(next, 10)+" is older than the retained history; read the current state and watch from its revision")
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	s.streamWatch(r.Context(), w, next, match)
}

func (s *Server) streamWatch(ctx context.Context, w http.ResponseWriter, next int64, match func(node.Event) bool) {
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	for {
		evs, upTo, ok, changed := s.hub.since(next, match)
		if !ok {
			enc.Encode(WatchEvent{Error: "history lost (node restarted or installed a snapshot); watch again"})
			return
		}
		for _, e := range evs {
			enc.Encode(toWatchEvent(e))
		}
		next = max(next, upTo+1)
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		}
	}
}

func toWatchEvent(e node.Event) WatchEvent {
	if e.Deleted {
		return WatchEvent{Revision: e.Revision, Type: "delete", Key: string(e.Key), Expired: e.Expired}
	}
	return WatchEvent{Revision: e.Revision, Type: "put", Key: string(e.Key), Value: e.Record.Value,
		CreateRevision: e.Record.CreateRev, ModRevision: e.Record.ModRev, Version: e.Record.Version,
		Flags: e.Record.Flags, LockIndex: e.Record.LockIndex, Session: e.Record.Session}
}
