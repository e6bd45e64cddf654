package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aspen-db/aspen/core/groups"
	"github.com/aspen-db/aspen/core/module"
)

// A competing member's fetch goes through the log only when it would lease
// something: the server first asks the replica, after a ReadIndex, whether
// it would (groups.Fetchable), and answers an empty fetch without a write.
// With WaitMs, while nothing is fetchable the fetch waits as a topic read
// does (topicwait.go): registered before it asks, woken by the loop after a
// round that applied entries (a publish, a settle, the leader's expiry of a
// lease) once the replica says the member could lease something, or by a
// timer when a message nakked with a delay comes due (time alone moves
// nothing in the log, so then it proposes the fetch and lets apply decide).
// A fetch that raced another member to what woke it waits again, within
// WaitMs. Under the caller's own session (X-Aspen-Client) the fetch is
// proposed at most once, since a retry of that sequence number answers what
// the first proposal did: and the first check proposes when the member holds
// leases already, so that a retried fetch whose answer was lost gets its
// messages again rather than an empty answer. When that proposal leases
// nothing the fetch waits, and answers empty once woken: a member that
// fetches while it holds leases costs one write a fetch, not one a wake.

func (s *Server) handleGroupFetch(w http.ResponseWriter, r *http.Request) {
	req, ok := groupRequestOf(w, r, false)
	if !ok {
		return
	}
	client, seq, own, err := callerSession(r)
	switch {
	case err != nil:
	case req.Max < 0:
		err = fmt.Errorf("Max must be a positive number of messages, got %d", req.Max)
	default:
		err = checkWaitMs(req.WaitMs)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	req.Max = cmp.Or(req.Max, 1)
	cmd := groups.Fetch(req.Name, req.Member, req.Max)
	propose := func() (any, error) {
		if own {
			return s.CallAs(r.Context(), client, seq, cmd)
		}
		return s.Call(r.Context(), cmd)
	}
	a, err := s.groupFetch(r.Context(), req, own, propose)
	switch {
	case errors.Is(err, errReadersFull):
		writeError(w, http.StatusTooManyRequests, err.Error())
	case err != nil:
		writeCallError(w, err)
	default:
		writeJSON(w, http.StatusOK, groupDeliveries(req, a))
	}
}

// groupFetch asks whether the fetch would lease anything and proposes it
// when so (or when a nakked message's delay has passed on this host's
// clock, which the replica's replicated time may not show yet); with
// WaitMs it waits in between. once (the caller's own session): the first
// check proposes also when the member holds leases, and after a proposal
// that leased nothing the fetch only waits, answering empty when it is
// woken (the caller fetches again under a new sequence number).
func (s *Server) groupFetch(ctx context.Context, req GroupRequest, once bool, propose func() (any, error)) (groups.Answer, error) {
	end := time.Now().Add(time.Duration(req.WaitMs) * time.Millisecond)
	proposed := false
	for first := true; ; first = false {
		var wait *topicWait
		if req.WaitMs > 0 {
			var ok bool
			if wait, ok = s.topicReaders.addUntil(s.fetchableNow(req.Name, req.Member)); !ok {
				return groups.Answer{}, errReadersFull
			}
		}
		ready, err := s.fetchable(ctx, req)
		due := ready.NextNs != 0 && ready.NextNs <= time.Now().UnixNano()
		fetch := ready.Ready || due || first && once && ready.Held > 0
		if err != nil || fetch {
			s.topicReaders.remove(wait)
		}
		switch {
		case err != nil:
			return groups.Answer{}, err
		case fetch && once && proposed:
			return groups.Answer{}, nil // the session's one proposal is spent
		case fetch:
			a, err := groupAnswer(propose())
			proposed = true
			if err != nil || len(a.Deliveries) > 0 || !time.Now().Before(end) || once && (ready.Ready || due) {
				return a, err
			}
			continue // another member took what woke it, or the leases held were not a lost answer's: wait
		}
		if wait == nil || !s.awaitFetchable(ctx, wait, end, ready.NextNs) {
			return groups.Answer{}, nil
		}
	}
}

// awaitFetchable waits for wait to be woken, or for a nakked message to
// come due at nextNs (0: none); it reports false when end came first or the
// request or server is done. wait is removed either way.
func (s *Server) awaitFetchable(ctx context.Context, wait *topicWait, end time.Time, nextNs int64) bool {
	defer s.topicReaders.remove(wait)
	until := end
	if nextNs != 0 && time.Unix(0, nextNs).Before(until) {
		until = time.Unix(0, nextNs)
	}
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	select {
	case <-wait.ready:
		return true
	case <-timer.C:
		return time.Now().Before(end)
	case <-ctx.Done():
	case <-s.stop:
	}
	return false
}

// fetchable asks the replica, after a ReadIndex, whether req's fetch would
// lease anything now.
func (s *Server) fetchable(ctx context.Context, req GroupRequest) (groups.Readiness, error) {
	a, err := groupAnswer(s.Query(ctx, groups.FetchableQuery(req.Name, req.Member, req.Max)))
	if err != nil {
		return groups.Readiness{}, err
	}
	if a.Ready == nil {
		return groups.Readiness{}, errors.New("group fetchable: the replica answered no readiness")
	}
	return *a.Ready, nil
}

// fetchableNow is a waiting fetch's test, which the loop runs against the
// replica's own state at its query time: over when the member could lease
// something, or the fetch would be refused (its next check says why).
func (s *Server) fetchableNow(group, member string) func() bool {
	return func() bool {
		mod, ok := s.node.Hosted("groups").(*groups.Module)
		if !ok {
			return true
		}
		r, err := mod.Fetchable(group, member, s.node.QueryNowNs())
		return err != nil || r.Ready
	}
}

// groupAnswer takes a call's answer as the group module's.
func groupAnswer(v any, err error) (groups.Answer, error) {
	if err != nil {
		return groups.Answer{}, err
	}
	a, ok := v.(groups.Answer)
	if !ok {
		return groups.Answer{}, fmt.Errorf("group call: the replica answered %T", v)
	}
	return a, nil
}

// GroupSettleBatch is the body of settle/batch: a member's settles of the
// leases it holds, each under its own handle, at most the module's bound
// (256 by default) in one call.
type GroupSettleBatch struct {
	Name   string
	Member string
	Items  []GroupSettleItem
}

// GroupSettleItem is one settle in a batch: Op is ack, nak, progress or
// term, as the single endpoints are named.
type GroupSettleItem struct {
	Op      string
	Handle  string
	DelayMs int64 `json:",omitempty"` // nak: not delivered again before this
}

// GroupBatchAnswer answers settle/batch: one answer per item asked, in the
// order asked.
type GroupBatchAnswer struct {
	Items []GroupItemAnswer
}

// GroupItemAnswer is one item's answer: the status a single settle of it
// would have got (200, or 409 for a lease forged, settled, delivered again
// since or past its ack wait: that lease unchanged), why it was refused,
// and a progress's new deadline.
type GroupItemAnswer struct {
	Status     int
	Error      string `json:",omitempty"`
	DeadlineMs int64  `json:",omitempty"`
}

// groupSettleVerbs names the settle verbs as the API spells them.
var groupSettleVerbs = map[string]uint8{"ack": groups.Ack, "nak": groups.Nak, "progress": groups.InProgress, "term": groups.Terminate}

func (s *Server) handleGroupSettleBatch(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, false) {
		return
	}
	var req GroupSettleBatch
	if code, err := readStrictJSON(r, &req, "GroupSettleBatch", groupBodyBytesMax); err != nil {
		writeError(w, code, err.Error())
		return
	}
	items := make([]groups.SettleItem, len(req.Items))
	for i, it := range req.Items {
		verb, ok := groupSettleVerbs[it.Op]
		if !ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("item %d: Op must be ack, nak, progress or term, got %q", i, it.Op))
			return
		}
		var err error
		if items[i], err = groupSettleItem(verb, it.Handle, it.DelayMs); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("item %d: %v", i, err))
			return
		}
	}
	// No items, too many, and a group or member name out of bounds are the
	// replica's to refuse, whole, as for one settle.
	answerCall(s, w, r, "group settle batch", true, groups.SettleBatch(req.Name, req.Member, items), groupBatchAnswer)
}

func groupBatchAnswer(a groups.Answer) any {
	out := GroupBatchAnswer{Items: make([]GroupItemAnswer, len(a.Items))}
	for i, it := range a.Items {
		if it.Outcome != module.OK {
			out.Items[i] = GroupItemAnswer{Status: itemStatus(it.Outcome), Error: it.Detail}
			continue
		}
		out.Items[i] = GroupItemAnswer{Status: http.StatusOK, DeadlineMs: groupMsOf(it.DeadlineNs)}
	}
	return out
}

// itemStatus is the status of one refused item, as writeCallError would
// answer its refusal alone.
func itemStatus(o module.Outcome) int {
	if code, ok := refusalStatus[o]; ok {
		return code
	}
	return http.StatusBadRequest
}
