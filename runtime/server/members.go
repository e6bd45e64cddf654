package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go.etcd.io/raft/v3"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/node"
)

// ErrRemoved is why a node stops after its cluster removed it: a clean end,
// not a failure.
var ErrRemoved = errors.New("this node was removed from the cluster")

// NotLeaderError says a request must go to the leader, and where that is.
type NotLeaderError struct {
	LeaderID       uint64 `json:"leader_id"`
	LeaderPeerAddr string `json:"leader_peer_addr"`
	LeaderHTTPAddr string `json:"leader_http_addr"`
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == 0 {
		return "not the leader, and no leader is known yet"
	}
	return fmt.Sprintf("not the leader; node %d leads (http %s)", e.LeaderID, e.LeaderHTTPAddr)
}

func (s *Server) notLeader() error {
	lead := s.member(s.Status().Lead)
	return &NotLeaderError{LeaderID: lead.ID, LeaderPeerAddr: lead.PeerAddr, LeaderHTTPAddr: lead.HTTPAddr}
}

// Members is the current membership with addresses.
func (s *Server) Members() []node.Member { return *s.members.Load() }

func (s *Server) member(id uint64) node.Member {
	for _, m := range s.Members() {
		if m.ID == id {
			return m
		}
	}
	return node.Member{}
}

func (s *Server) storeMembers() {
	ms := s.node.Members()
	s.members.Store(&ms)
}

// refreshPeers points the transport at the membership the replica applied.
func (s *Server) refreshPeers() {
	old := map[uint64]string{}
	for _, m := range s.Members() {
		old[m.ID] = m.PeerAddr
	}
	s.storeMembers()
	for _, m := range s.Members() {
		if m.ID != s.cfg.ID && m.PeerAddr != "" && old[m.ID] != m.PeerAddr {
			s.tr.AddPeer(m.ID, m.PeerAddr)
		}
		delete(old, m.ID)
	}
	for id := range old {
		if id != s.cfg.ID {
			s.tr.RemovePeer(id)
		}
	}
}

// ChangeMembers proposes a membership change through the leader. A learner
// that is still catching up is retried until the call's deadline.
func (s *Server) ChangeMembers(ctx context.Context, changes []node.MemberChange) error {
	_, err := s.withSession(ctx, node.Request{Members: changes})
	return err
}

// memberRequest is the body of POST /v1/aspen/members.
type memberRequest struct {
	Op       string `json:"op"` // add-learner, add-voter, promote, remove
	ID       uint64 `json:"id"`
	PeerAddr string `json:"peer_addr"`
	HTTPAddr string `json:"http_addr"`
}

func (s *Server) handleMembers(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.Members())
	case http.MethodPost:
		s.postMembers(w, r)
	default:
		methodNotAllowed(w, r, "GET, POST")
	}
}

func (s *Server) postMembers(w http.ResponseWriter, r *http.Request) {
	var req memberRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, memberBodyBytesMax)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed body: "+err.Error())
		return
	}
	c, err := toMemberChange(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if c.Type == node.RemoveMember && c.ID == s.cfg.ID && s.Status().Role == raft.StateLeader {
		// A leader removing itself would leave the cluster leaderless for an
		// election timeout: hand over first, then send the caller to the new
		// leader (the CLI follows the 421).
		if to := s.successor(r.Context()); to != 0 && s.transferLeader(r.Context(), to) == nil {
			writeMemberError(w, s.notLeader())
			return
		}
	}
	removed := s.member(c.ID) // before the change: its address is about to be forgotten
	if err := s.ChangeMembers(r.Context(), []node.MemberChange{c}); err != nil {
		writeMemberError(w, err)
		return
	}
	if c.Type == node.RemoveMember && c.ID != s.cfg.ID && removed.HTTPAddr != "" {
		// The leader stops replicating to a removed node at once, so it may
		// never apply its own removal: tell it, and let it check.
		s.goOwned(func() { s.notifyRemoved(removed.HTTPAddr) })
	}
	writeJSON(w, http.StatusOK, s.Members())
}

// notifyRemoved tells a removed node so, on a goroutine Close waits for:
// best effort, given up when this node stops. It tries again until the node
// takes it: the node checks with this one, whose published membership may
// still list it for a round or two (under load, once was not enough).
func (s *Server) notifyRemoved(addr string) {
	ctx, cancel := context.WithTimeout(s.ctx, notifyRemovedTimeoutMs*time.Millisecond)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/aspen/removed?by="+s.HTTPAddr(), nil)
		if err != nil {
			return
		}
		req.Close = true // a one-off: no idle connection (and its goroutines) left behind
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(notifyRemovedRetryMs * time.Millisecond):
		}
	}
}

// notifyRemovedRetryMs is the pause between tries to tell a removed node.
const notifyRemovedRetryMs = 200

// handleRemoved is told by a member that this node was removed. It does not
// take the word for it: it asks that member (which must be one it knows) for
// the membership, and stops only if it is no longer in it.
func (s *Server) handleRemoved(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, "POST")
		return
	}
	by := r.URL.Query().Get("by")
	if !s.knowsHTTPAddr(by) {
		writeError(w, http.StatusBadRequest, "?by= must be the HTTP address of a known member")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), notifyRemovedTimeoutMs*time.Millisecond)
	defer cancel()
	members, err := fetchMembers(ctx, by)
	if err != nil {
		writeError(w, http.StatusBadGateway, "could not confirm with "+by+": "+err.Error())
		return
	}
	for _, m := range members {
		if m.ID == s.cfg.ID {
			writeError(w, http.StatusConflict, "this node is still a member according to "+by)
			return
		}
	}
	switch err := s.onLoop(s.persistRemoved); {
	case errors.Is(err, ErrStopped):
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "recording the removal: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, "stopping")
	// The answer still reaches the caller: shutdown waits for handlers in
	// flight (up to shutdownGraceMs).
	s.fail(ErrRemoved)
}

// onLoop runs f on the loop goroutine and returns its error, or ErrStopped
// if the node stops first.
func (s *Server) onLoop(f func() error) error {
	err, lerr := callLoop(context.Background(), s, f)
	return errors.Join(lerr, err)
}

// callLoop runs f on the loop goroutine, the only one that may touch the
// replica, and returns what it returned: ErrStopped if the node stops
// first, or ctx's error if the caller stops waiting.
func callLoop[T any](ctx context.Context, s *Server, f func() T) (T, error) {
	var zero T
	ch := make(chan T, 1)
	if !s.post(func() { ch <- f() }) {
		return zero, ErrStopped
	}
	select {
	case v := <-ch:
		return v, nil
	case <-s.done: // the loop ended with f still queued
		return zero, ErrStopped
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// persistRemoved marks the disk, so that a restart on it refuses to serve
// instead of campaigning forever with a stale configuration.
func (s *Server) persistRemoved() error {
	if err := s.store.Apply(s.node.MarkRemoved()); err != nil {
		return err
	}
	return s.store.Sync()
}

func (s *Server) knowsHTTPAddr(addr string) bool {
	for _, m := range s.Members() {
		if addr != "" && m.HTTPAddr == addr && m.ID != s.cfg.ID {
			return true
		}
	}
	return false
}

func fetchMembers(ctx context.Context, addr string) ([]node.Member, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/aspen/members", nil)
	if err != nil {
		return nil, err
	}
	req.Close = true // a one-off: no idle connection (and its goroutines) left behind
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var members []node.Member
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&members); err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return nil, errors.New("empty membership")
	}
	return members, nil
}

func toMemberChange(req memberRequest) (node.MemberChange, error) {
	c := node.MemberChange{ID: req.ID, PeerAddr: req.PeerAddr, HTTPAddr: req.HTTPAddr}
	switch req.Op {
	case "add-learner":
		c.Type = node.AddLearner
	case "add-voter", "promote":
		c.Type = node.AddVoter
	case "remove":
		c.Type = node.RemoveMember
	default:
		return c, fmt.Errorf("op %q: want add-learner, add-voter, promote or remove", req.Op)
	}
	switch {
	case req.ID == 0:
		return c, fmt.Errorf("id must be a non-zero node id")
	case req.Op != "promote" && req.Op != "remove" && req.PeerAddr == "":
		return c, fmt.Errorf("%s needs the new node's peer_addr", req.Op)
	}
	return c, nil
}

func writeMemberError(w http.ResponseWriter, err error) {
	var nl *NotLeaderError
	if errors.As(err, &nl) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMisdirectedRequest)
		json.NewEncoder(w).Encode(struct {
			Error string `json:"error"`
			*NotLeaderError
		}{err.Error(), nl})
		return
	}
	writeCallError(w, err)
}

// handleTransfer asks the leader to hand over to ?id= and waits for it. A
// follower sends the caller to the leader (421); a target the leader refuses
// (a learner, not a member) is a conflict with the membership (409).
func (s *Server) handleTransfer(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, "POST")
		return
	}
	to, ok, err := uintParam(r, "id")
	if err != nil || !ok || to == 0 {
		writeError(w, http.StatusBadRequest, "give the new leader as ?id=N")
		return
	}
	err = s.transferLeader(r.Context(), to)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]uint64{"leader": to})
	default:
		writeMemberError(w, err)
	}
}

// transferLeader asks for a handover to the given voter until it leads. The
// leader judges the target at once, so a refusal answers now, not at the
// timeout.
func (s *Server) transferLeader(ctx context.Context, to uint64) error {
	ctx, cancel := context.WithTimeout(ctx, transferTimeoutMs*time.Millisecond)
	defer cancel()
	for asked := false; s.Status().Lead != to; asked = true {
		err := s.askTransfer(ctx, to)
		switch {
		case errors.Is(err, node.ErrTransferNotLeader) && !asked:
			return s.notLeader()
		case errors.Is(err, node.ErrTransferNotLeader):
			// This node stepped down after the first ask: the handover is
			// under way; wait for the new leader to show.
		case err != nil:
			return err
		}
		select {
		case <-time.After(transferPollMs * time.Millisecond):
		case <-s.stop:
			return ErrStopped
		case <-ctx.Done():
			return fmt.Errorf("leadership did not move to node %d in time (is it caught up and reachable?)", to)
		}
	}
	return nil
}

// askTransfer runs the node's TransferLeader on its loop goroutine.
func (s *Server) askTransfer(ctx context.Context, to uint64) error {
	err, lerr := callLoop(ctx, s, func() error { return s.node.TransferLeader(to) })
	switch {
	case lerr != nil && ctx.Err() != nil:
		return fmt.Errorf("the node did not take the transfer request in time")
	case lerr != nil:
		return lerr
	}
	return err
}

// successor is the voter, other than this leader, with the most of the log
// among those heard from recently; 0 when there is none. It reads the
// progress on the loop: the status's copy may be up to moduleReadEvery old,
// from before the followers were heard from.
func (s *Server) successor(ctx context.Context) uint64 {
	progress, err := callLoop(ctx, s, s.node.Progress)
	if err != nil {
		return 0
	}
	var best node.PeerProgress
	for _, p := range progress {
		if p.ID != s.cfg.ID && !p.Learner && p.RecentActive && p.Match >= best.Match {
			best = p
		}
	}
	return best.ID
}

// handleSnapshot streams a consistent backup: a ReadIndex barrier first, so
// the backup holds every write acknowledged before the request.
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	if _, err := s.Read(r.Context(), kv.Txn{}, false); err != nil {
		writeCallError(w, err)
		return
	}
	var data []byte
	if err := s.onLoop(func() error { data = s.node.Backup(); return nil }); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	b, _ := node.DecodeBackup(data)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Aspen-Revision", strconv.FormatInt(b.Revision, 10))
	w.Header().Set("X-Aspen-Index", strconv.FormatUint(b.Index, 10))
	w.Write(data)
}

// lastContact remembers when each peer was last heard from.
type lastContact struct {
	mu    sync.Mutex
	peers map[uint64]*atomic.Int64
}

func (l *lastContact) touch(id uint64) {
	l.mu.Lock()
	if l.peers == nil {
		l.peers = map[uint64]*atomic.Int64{}
	}
	t, ok := l.peers[id]
	if !ok {
		t = new(atomic.Int64)
		l.peers[id] = t
	}
	l.mu.Unlock()
	t.Store(time.Now().UnixNano())
}

func (l *lastContact) report() map[uint64]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[uint64]string{}
	for id, t := range l.peers {
		out[id] = time.Since(time.Unix(0, t.Load())).Round(time.Millisecond).String()
	}
	return out
}

// advertise records this node's addresses in the replicated membership until
// they are there, so other members can point clients (and removal notices)
// at it. It runs at start, and again if the record drifts from reality,
// until the node stops.
func (s *Server) advertise() {
	me := node.Member{ID: s.cfg.ID, PeerAddr: s.PeerAddr(), HTTPAddr: s.HTTPAddr()}
	for {
		pause := advertiseCheckMs * time.Millisecond
		if got := s.member(s.cfg.ID); got.ID == 0 || got.PeerAddr != me.PeerAddr || got.HTTPAddr != me.HTTPAddr {
			ctx, cancel := context.WithTimeout(s.ctx, advertiseTimeoutMs*time.Millisecond)
			s.writeAdvertise(ctx, me)
			cancel()
			pause = advertiseRetryMs * time.Millisecond // until it shows, look again soon
		}
		select {
		case <-s.stop:
			return
		case <-time.After(pause):
		}
	}
}

func (s *Server) writeAdvertise(ctx context.Context, me node.Member) {
	s.withSession(ctx, node.Request{Advertise: &me})
}
