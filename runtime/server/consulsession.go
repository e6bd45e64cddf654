package server

import (
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/locks"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/node"
)

// Consul's /v1/session API over core/locks. Writes (create, renew,
// destroy) go through the log under a session of the server's pool, reads
// (info, list, node) after a ReadIndex. The node picks what Consul's agent
// picks: the session's id (a random UUID), its node (this node's name when
// the body names none) and the defaults of lock delay and behavior; the
// replica judges TTL and lock delay against its limits (core/locks).
//
// Sessions have no health checks: a body naming none, or only Consul's
// default serfHealth, is accepted, and a session ends by destroy or by its
// TTL. X-Consul-Index of the reads is the replica's applied log index, the
// index space of a session's CreateIndex and ModifyIndex.

// consulSession is Consul's session as JSON.
type consulSession struct {
	ID            string
	Name          string
	Node          string
	LockDelay     time.Duration // nanoseconds in JSON, as Consul writes it
	Behavior      string
	TTL           string // "15s"; "" without a TTL
	NodeChecks    []string
	ServiceChecks []consulServiceCheck
	CreateIndex   uint64
	ModifyIndex   uint64
}

type consulServiceCheck struct {
	ID        string
	Namespace string `json:",omitempty"`
}

// sessionCreate is the body of PUT /v1/session/create; every field may be
// left out. LockDelay is a duration string or a number of nanoseconds, and
// Consul reads numbers below 1000 as seconds.
type sessionCreate struct {
	Name          string
	Node          string
	LockDelay     json.RawMessage
	Behavior      string
	TTL           string
	Checks        []string
	NodeChecks    []string
	ServiceChecks []consulServiceCheck
	Namespace     string
}

func (s *Server) sessionRoutes(route func(pattern, name string, h http.HandlerFunc)) {
	route("/v1/session/create", "session_create", s.handleSessionCreate)
	route("/v1/session/renew/", "session_renew", s.handleSessionRenew)
	route("/v1/session/destroy/", "session_destroy", s.handleSessionDestroy)
	route("/v1/session/info/", "session_info", s.sessionRead("/v1/session/info/", locks.Info))
	route("/v1/session/node/", "session_node", s.sessionRead("/v1/session/node/", locks.OfNode))
	route("/v1/session/list", "session_list", s.sessionRead("", func(string) module.Command { return locks.List() }))
}

func (s *Server) handleSessionCreate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		methodNotAllowed(w, r, "PUT")
		return
	}
	var body sessionCreate
	if err := decodeStrict(r.Body, sessionBodyBytesMax, &body); err != nil && !errors.Is(err, errEmptyBody) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sess, err := s.newSession(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	answerCall(s, w, r, "session create", true, locks.Create(sess), func(locks.Answer) any {
		return struct{ ID string }{sess.ID}
	})
}

// newSession checks a create's body and fills in what Consul's agent would.
func (s *Server) newSession(b sessionCreate) (locks.Session, error) {
	sess := locks.Session{ID: newSessionID(), Name: b.Name, Node: b.Node, LockDelayNs: locks.LockDelayDefault}
	var err error
	if sess.Behavior, err = locks.ParseBehavior(b.Behavior); err != nil {
		return sess, err
	}
	if b.TTL != "" {
		ttl, err := time.ParseDuration(b.TTL)
		if err != nil || ttl < 0 {
			return sess, fmt.Errorf("session TTL %q is not a duration such as 15s", b.TTL)
		}
		sess.TTLNs = int64(ttl)
	}
	if len(b.LockDelay) > 0 {
		if sess.LockDelayNs, err = parseLockDelay(b.LockDelay); err != nil {
			return sess, err
		}
	}
	if b.Namespace != "" && b.Namespace != "default" {
		return sess, fmt.Errorf("namespace %q: Aspen has only the default namespace", b.Namespace)
	}
	if err := checksSupported(b); err != nil {
		return sess, err
	}
	if sess.Node == "" {
		sess.Node = nodeName(s.cfg.ID)
	} else if !slices.Contains(s.memberNames(), sess.Node) {
		return sess, fmt.Errorf("Missing node registration: node %q is not a member of this cluster (members: %s)",
			sess.Node, strings.Join(s.memberNames(), ", "))
	}
	return sess, nil
}

// parseLockDelay reads a duration string or a number of nanoseconds; as in
// Consul, a value below 1000 (nanoseconds) means seconds, since users write
// 15 meaning 15 s.
func parseLockDelay(raw json.RawMessage) (int64, error) {
	var d time.Duration
	var text string
	var n float64
	switch {
	case json.Unmarshal(raw, &text) == nil:
		parsed, err := time.ParseDuration(text)
		if err != nil {
			return 0, fmt.Errorf("LockDelay %q is not a duration such as 15s", text)
		}
		d = parsed
	case json.Unmarshal(raw, &n) == nil && n < float64(1<<63):
		d = time.Duration(n)
	default:
		return 0, fmt.Errorf("LockDelay %s is neither a duration string nor a number of nanoseconds", raw)
	}
	if d < 0 {
		return 0, fmt.Errorf("LockDelay %v is negative", d)
	}
	if d < lockDelaySecondsBelow {
		d *= time.Second
	}
	return int64(d), nil
}

// checksSupported accepts what needs no health checks: none, or only
// Consul's default node check, which Aspen stands in for by a node's
// membership (a session outlives its node until its TTL or a destroy).
func checksSupported(b sessionCreate) error {
	for _, checks := range [][]string{b.Checks, b.NodeChecks} {
		if len(checks) > 1 || len(checks) == 1 && checks[0] != serfCheckID {
			return fmt.Errorf("health checks are not supported by Aspen: a session may name no checks or only %q; "+
				"give it a TTL so that it ends when its holder stops renewing it", serfCheckID)
		}
	}
	if len(b.ServiceChecks) > 0 {
		return errors.New("service checks are not supported by Aspen (there is no service catalog); give the session a TTL instead")
	}
	return nil
}

// serfCheckID is Consul's default node health check, which every session
// there carries unless its body says otherwise.
const serfCheckID = "serfHealth"

// nodeName is a node's name in Consul's APIs (agent/self, a session's
// Node): derived from its id, so every node knows every member's name.
func nodeName(id uint64) string { return fmt.Sprintf("aspen-%d", id) }

func (s *Server) memberNames() []string {
	var names []string
	for _, m := range s.Members() {
		names = append(names, nodeName(m.ID))
	}
	return names
}

// newSessionID is a random (version 4) UUID, as Consul's session ids are.
func newSessionID() string {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// sessionTarget checks a session endpoint's method and returns the
// argument at the end of its path (none when prefix is ""); Consul answers
// a path without one "Missing session".
func sessionTarget(w http.ResponseWriter, r *http.Request, method, prefix string) (string, bool) {
	if r.Method != method {
		methodNotAllowed(w, r, method)
		return "", false
	}
	arg := strings.TrimPrefix(r.URL.Path, prefix)
	if prefix != "" && arg == "" {
		writeError(w, http.StatusBadRequest, "Missing session: "+prefix+"<id>")
		return "", false
	}
	return arg, true
}

func (s *Server) handleSessionRenew(w http.ResponseWriter, r *http.Request) {
	id, ok := sessionTarget(w, r, http.MethodPut, "/v1/session/renew/")
	if !ok {
		return
	}
	v, err := s.Call(r.Context(), locks.Renew(id))
	var refused *node.Error
	switch {
	case errors.As(err, &refused) && refused.Outcome == node.NotFound:
		// Consul's words: its client reads a 404 as "session expired".
		writeError(w, http.StatusNotFound, fmt.Sprintf("Session id '%s' not found", id))
	case err != nil:
		writeCallError(w, err)
	default:
		writeJSON(w, http.StatusOK, toConsulSessions(v.(locks.Answer).Sessions))
	}
}

func (s *Server) handleSessionDestroy(w http.ResponseWriter, r *http.Request) {
	id, ok := sessionTarget(w, r, http.MethodPut, "/v1/session/destroy/")
	if !ok {
		return
	}
	answerCall(s, w, r, "session destroy", true, locks.Destroy(id), func(locks.Answer) any { return true })
}

// sessionRead serves a session query: the argument after prefix (none when
// prefix is ""), a blocking wait on ?index like Consul's, then the query
// after a ReadIndex. The index is read before the query (raised to the
// sessions' own indexes), so it is never ahead of the answer: a client
// blocking on it wakes at the next change.
func (s *Server) sessionRead(prefix string, query func(arg string) module.Command) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		arg, ok := sessionTarget(w, r, http.MethodGet, prefix)
		if !ok {
			return
		}
		if err := s.blockApplied(r); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		index := s.Status().Applied
		v, err := s.Query(r.Context(), query(arg))
		if err != nil {
			writeCallError(w, err)
			return
		}
		ss := v.(locks.Answer).Sessions
		for _, x := range ss { // applied by the read, so still not ahead of it
			index = max(index, x.ModifyIndex)
		}
		s.consulHeaders(w, int64(index))
		writeJSON(w, http.StatusOK, toConsulSessions(ss))
	}
}

// toConsulSessions renders sessions as Consul does, [] for none.
func toConsulSessions(ss []locks.Session) []consulSession {
	out := make([]consulSession, 0, len(ss))
	for _, x := range ss {
		ttl := ""
		if x.TTLNs > 0 {
			ttl = time.Duration(x.TTLNs).String()
		}
		out = append(out, consulSession{ID: x.ID, Name: x.Name, Node: x.Node, LockDelay: time.Duration(x.LockDelayNs),
			Behavior: x.Behavior.String(), TTL: ttl, NodeChecks: []string{}, CreateIndex: x.CreateIndex, ModifyIndex: x.ModifyIndex})
	}
	return out
}
