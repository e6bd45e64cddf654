package server

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aspen-db/aspen/core/groups"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/topics"
)

// The consumer group API: consumer groups (core/groups) over JSON. Each
// endpoint takes a POST with a GroupRequest body and reads the fields it
// needs (list, describe and dead/list also a GET with the query parameters
// name, after and limit; settle/batch takes a GroupSettleBatch). Writes
// (create, delete, join, heartbeat, leave, commit, reset, ack, nak,
// progress, term, settle/batch, dead/replay, dead/drop) go through the log
// under a session, the caller's own with X-Aspen-Client and X-Aspen-Seq;
// describe, list, dead/list and read are served after a ReadIndex; a fetch
// goes through the log only when it would lease something (groupsfetch.go). A refusal changed nothing: 400 for a
// malformed request or a partition the group does not have; 404 for an
// unknown group, topic, member (leave) or dead letter; 409 for a call the
// group's state refuses: a stale generation, a partition not the member's,
// a handle forged, settled, delivered again since or past its ack wait, a
// command of the other mode, a reset with members; 413 for a full table or
// a body over groupBodyBytesMax.
//
// Partitioned groups: a member joins, heartbeats at a third of SessionMs
// (a member not heard from for SessionMs leaves), reads its partitions
// (read: from the committed offset unless From says otherwise) and commits
// the next offset to consume under the Generation its last join or
// heartbeat answered, after it has processed the messages before it. A
// partition in Revoking is being moved to another member: the member
// commits what it processed, stops reading it and names it in Released of
// its next heartbeat; only then does the new owner get it.
//
// Competing groups: a member fetches up to Max messages (waiting up to
// WaitMs for one), each leased to it for AckWaitMs under a Handle; ack
// settles it, nak puts it back (after DelayMs), progress starts its ack
// wait again, term sends it to the dead letters at once; settle/batch does
// any of these for many handles in one write, each answered alone. A lease not acked in time goes out again; after
// MaxDeliveries deliveries it goes to the dead letters instead.
//
// A Handle is an opaque string naming one delivery of one message; only
// the answer of the fetch that leased it is a valid source. Keys, values
// and header values come as Value when their bytes are UTF-8, else as
// ValueBase64 with Value empty (as the topic API answers). Times are Unix
// milliseconds of replicated time, durations milliseconds.

// GroupRequest is the body of every group endpoint; each reads the fields
// it needs.
type GroupRequest struct {
	Name string // the group (every endpoint but list)
	// create
	Topic         string `json:",omitempty"`
	Mode          string `json:",omitempty"` // partitioned or competing
	Start         string `json:",omitempty"` // earliest (default): from each partition's first offset; latest: only new messages
	SessionMs     int64  `json:",omitempty"` // partitioned; 0: groupSessionMsDefault
	AckWaitMs     int64  `json:",omitempty"` // competing; 0: groupAckWaitMsDefault
	MaxDeliveries int    `json:",omitempty"` // competing; 0: groupDeliveriesDefault
	MaxInFlight   int    `json:",omitempty"` // competing, leases per member; 0: groupInFlightDefault
	// join, heartbeat, leave, commit, read, fetch, ack, nak, progress, term
	Member     string `json:",omitempty"`
	Generation uint64 `json:",omitempty"` // commit: the generation the last join or heartbeat answered
	Partition  *int   `json:",omitempty"` // commit, read; reset: absent for every partition
	Offset     *int64 `json:",omitempty"` // commit: the next offset to consume; reset To offset
	Released   []int  `json:",omitempty"` // heartbeat: revoked partitions given up
	// reset
	To     string `json:",omitempty"` // earliest, latest, time or offset
	TimeMs int64  `json:",omitempty"` // To time: the first message published at or after it
	// read, fetch
	From *int64 `json:",omitempty"` // read: the first offset; absent: the committed one
	Max  int    `json:",omitempty"` // messages; 0: read the module's bound, fetch one
	// WaitMs: a read or fetch that finds nothing waits this long for a
	// message (at most topicWaitMsMax), as a topic read does.
	WaitMs int64 `json:",omitempty"`
	// ack, nak, progress, term
	Handle  string `json:",omitempty"`
	DelayMs int64  `json:",omitempty"` // nak: not delivered again before this
	// dead/replay, dead/drop
	Seqs []uint64 `json:",omitempty"`
	// list, dead/list
	After    string `json:",omitempty"` // list: names after this
	AfterSeq uint64 `json:",omitempty"` // dead/list: letters after this seq
	Limit    int    `json:",omitempty"` // 0: the module's page size
}

// GroupInfo is one group (create, describe, list; list leaves Members and
// Offsets out).
type GroupInfo struct {
	Name          string
	Topic         string
	Mode          string
	Start         string
	SessionMs     int64 `json:",omitempty"`
	AckWaitMs     int64 `json:",omitempty"`
	MaxDeliveries int   `json:",omitempty"`
	MaxInFlight   int   `json:",omitempty"`
	CreatedMs     int64
	Partitions    int
	Generation    uint64 // bumps on every change of assignment (partitioned)
	Pending       int    // competing: messages leased or waiting to go out again
	DeadLetters   int
	Stats         GroupStats
	Members       []GroupMember    `json:",omitempty"`
	Offsets       []GroupPartition `json:",omitempty"`
}

// GroupStats are a group's replicated counts (groups.Stats).
type GroupStats struct {
	Rebalances   uint64 // changes of the target assignment
	Expired      uint64 // members whose session ended
	Redeliveries uint64 // deliveries after a message's first
	Expiries     uint64 // leases that ran out
	DeadLettered uint64 // messages that went to the dead letters
	DeadEvicted  uint64 // dead letters pushed out by newer ones
	Trimmed      uint64 // unsettled messages retention removed
}

// GroupMember is a member in a describe: partitioned members with their
// partitions, or the competing members that hold leases.
type GroupMember struct {
	ID         string
	Generation uint64 `json:",omitempty"`
	DeadlineMs int64  `json:",omitempty"`
	Assigned   []int  `json:",omitempty"`
	Revoking   []int  `json:",omitempty"`
	InFlight   int    `json:",omitempty"`
}

// GroupPartition is one partition in a describe.
type GroupPartition struct {
	Partition int
	Owner     string `json:",omitempty"` // partitioned: absent while released and not yet assigned
	Target    string `json:",omitempty"`
	Offset    uint64 // partitioned: committed; competing: the first offset not settled
	First     uint64 // the topic's bounds now
	End       uint64
	Lag       uint64 // End minus the later of Offset and First
}

// GroupAssignment answers join and heartbeat: what the member holds.
type GroupAssignment struct {
	Member     string
	Generation uint64 // commits carry it
	Assigned   []int  // partitions it owns and keeps
	Revoking   []int  // partitions it owns but must release: commit, stop reading, name them in Released
	DeadlineMs int64  // its session ends then unless it heartbeats
}

// GroupDone answers delete, leave, commit and reset, which change what
// describe shows and answer nothing more.
type GroupDone struct {
	Name string
}

// GroupMessage is one message of the group's topic.
type GroupMessage struct {
	Partition   int
	Offset      uint64
	Key         *string       `json:",omitempty"` // a UTF-8 key; absent with no key or a binary one
	KeyBase64   string        `json:",omitempty"` // a key that is not UTF-8
	Value       string        // a UTF-8 value, else empty and ValueBase64 holds it
	ValueBase64 string        `json:",omitempty"`
	Headers     []GroupHeader `json:",omitempty"`
	Index       uint64        // the log index that committed it
	TimeMs      int64         // Unix ms of replicated time when it committed
}

// GroupHeader is one header of a message.
type GroupHeader struct {
	Key         string
	Value       string `json:",omitempty"`
	ValueBase64 string `json:",omitempty"`
}

// GroupMessages answers read: messages in offset order and the offset to
// read from next; Committed is the partition's committed offset.
type GroupMessages struct {
	Messages  []GroupMessage
	Next      uint64
	Committed uint64
}

// GroupDelivery is one leased message (fetch), or a lease renewed
// (progress, without the message).
type GroupDelivery struct {
	Handle     string
	Delivery   uint32 // 1 the first time the message went out
	DeadlineMs int64  // the lease ends then: an ack at or after it is refused
	GroupMessage
}

// GroupDeliveries answers fetch (none when nothing is due) and the settle
// endpoints (ack, nak, term: none; progress: the lease renewed).
type GroupDeliveries struct {
	Messages []GroupDelivery
}

// GroupDeadLetter is one message on a group's dead-letter list.
type GroupDeadLetter struct {
	Seq        uint64
	Partition  int
	Offset     uint64
	Deliveries uint32
	Reason     string // deliveries (never acked in MaxDeliveries) or terminated
	TimeMs     int64
}

// GroupDeadLetters answers dead/list (pass Next as AfterSeq for the next
// page; 0 at the end), dead/replay and dead/drop (the letters acted on).
type GroupDeadLetters struct {
	Letters []GroupDeadLetter
	Next    uint64 `json:",omitempty"`
}

// GroupList answers list; pass Next as After for the next page.
type GroupList struct {
	Groups []GroupInfo
	Next   string `json:",omitempty"`
}

// groupEndpoint is one group operation: how a request becomes a module
// command and the module's answer JSON.
type groupEndpoint struct {
	name    string
	write   bool // through the log (Call), else a query after a ReadIndex
	get     bool // also served on GET
	command func(GroupRequest) (module.Command, error)
	answer  func(GroupRequest, groups.Answer) any
}

var groupEndpoints = []groupEndpoint{
	{name: "create", write: true, command: groupCreateCommand, answer: groupOne},
	{name: "delete", write: true, command: groupNamed(groups.Delete), answer: groupDone},
	{name: "join", write: true, command: groupMemberCommand(groups.Join), answer: groupAssignment},
	{name: "heartbeat", write: true, command: groupHeartbeatCommand, answer: groupAssignment},
	{name: "leave", write: true, command: groupMemberCommand(groups.Leave), answer: groupDone},
	{name: "commit", write: true, command: groupCommitCommand, answer: groupDone},
	{name: "reset", write: true, command: groupResetCommand, answer: groupDone},
	{name: "ack", write: true, command: groupSettleCommand(groups.Ack), answer: groupDeliveries},
	{name: "nak", write: true, command: groupSettleCommand(groups.Nak), answer: groupDeliveries},
	{name: "progress", write: true, command: groupSettleCommand(groups.InProgress), answer: groupDeliveries},
	{name: "term", write: true, command: groupSettleCommand(groups.Terminate), answer: groupDeliveries},
	{name: "dead/list", get: true, command: groupDeadListCommand, answer: groupDeadLetters},
	{name: "dead/replay", write: true, command: groupDeadCommand(groups.Replay), answer: groupDeadLetters},
	{name: "dead/drop", write: true, command: groupDeadCommand(groups.Drop), answer: groupDeadLetters},
	{name: "describe", get: true, command: groupNamed(groups.Describe), answer: groupOne},
	{name: "list", get: true, command: groupListCommand, answer: groupList},
}

func (s *Server) groupRoutes(route func(pattern, name string, h http.HandlerFunc)) {
	for _, e := range groupEndpoints {
		route("/v1/aspen/group/"+e.name, "aspen_group_"+strings.ReplaceAll(e.name, "/", "_"), s.groupHandler(e))
	}
	route("/v1/aspen/group/read", "aspen_group_read", s.handleGroupRead)
	route("/v1/aspen/group/fetch", "aspen_group_fetch", s.handleGroupFetch)
	route("/v1/aspen/group/settle/batch", "aspen_group_settle_batch", s.handleGroupSettleBatch)
}

func (s *Server) groupHandler(e groupEndpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, ok := groupRequestOf(w, r, e.get)
		if !ok {
			return
		}
		cmd, err := e.command(req)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		answerCall(s, w, r, "group "+e.name, e.write, cmd, func(a groups.Answer) any { return e.answer(req, a) })
	}
}

// groupRequestOf reads a group endpoint's request (a POST, or a GET where
// get is set), or answers why not and reports false.
func groupRequestOf(w http.ResponseWriter, r *http.Request, get bool) (GroupRequest, bool) {
	if !allowMethods(w, r, get) {
		return GroupRequest{}, false
	}
	req, code, err := readGroupRequest(r)
	if err != nil {
		writeError(w, code, err.Error())
		return req, false
	}
	return req, true
}

// checkWaitMs refuses a long poll's WaitMs out of [0, topicWaitMsMax].
func checkWaitMs(ms int64) error {
	if ms < 0 || ms > topicWaitMsMax {
		return fmt.Errorf("WaitMs must be 0 to %d, got %d", topicWaitMsMax, ms)
	}
	return nil
}

// readGroupRequest decodes one JSON object strictly, or for a GET the query
// parameters name, after and limit (after a seq for dead/list).
func readGroupRequest(r *http.Request) (GroupRequest, int, error) {
	var req GroupRequest
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		req.Name, req.After = q.Get("name"), q.Get("after")
		limit, _, err := uintParam(r, "limit")
		if err != nil || limit > math.MaxInt32 {
			return req, http.StatusBadRequest, fmt.Errorf("query parameter limit=%q: want a page size", q.Get("limit"))
		}
		req.Limit = int(limit)
		if strings.HasSuffix(r.URL.Path, "/dead/list") && req.After != "" {
			seq, err := strconv.ParseUint(req.After, 10, 64)
			if err != nil {
				return req, http.StatusBadRequest, fmt.Errorf("query parameter after=%q: want a dead letter's seq", req.After)
			}
			req.After, req.AfterSeq = "", seq
		}
		return req, 0, nil
	}
	code, err := readStrictJSON(r, &req, "GroupRequest", groupBodyBytesMax)
	return req, code, err
}

// groupMs converts a duration field in milliseconds to nanoseconds,
// refusing what is negative or would overflow.
func groupMs(name string, ms int64) (int64, error) {
	if ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		return 0, fmt.Errorf("%s must be a non-negative number of milliseconds, got %d", name, ms)
	}
	return ms * int64(time.Millisecond), nil
}

// groupCreateCommand fills the defaults of the mode named; ranges are the
// replica's to refuse (its limits), with its own message.
func groupCreateCommand(req GroupRequest) (module.Command, error) {
	d := groups.Def{Name: req.Name, Topic: req.Topic}
	switch req.Start {
	case "", "earliest":
	case "latest":
		d.StartLatest = true
	default:
		return module.Command{}, fmt.Errorf("Start must be earliest or latest, got %q", req.Start)
	}
	var err error
	switch req.Mode {
	case "partitioned":
		if req.AckWaitMs != 0 || req.MaxDeliveries != 0 || req.MaxInFlight != 0 {
			return module.Command{}, errors.New("AckWaitMs, MaxDeliveries and MaxInFlight are for competing groups, not partitioned")
		}
		d.Mode = groups.Partitioned
		if req.SessionMs == 0 {
			req.SessionMs = groupSessionMsDefault
		}
		d.SessionNs, err = groupMs("SessionMs", req.SessionMs)
	case "competing":
		if req.SessionMs != 0 {
			return module.Command{}, errors.New("SessionMs is for partitioned groups: competing members have no sessions")
		}
		d.Mode = groups.Competing
		d.DeliveriesMax, d.InFlightMax = cmp.Or(req.MaxDeliveries, groupDeliveriesDefault), cmp.Or(req.MaxInFlight, groupInFlightDefault)
		d.AckWaitNs, err = groupMs("AckWaitMs", cmp.Or(req.AckWaitMs, groupAckWaitMsDefault))
	default:
		return module.Command{}, fmt.Errorf("Mode must be partitioned or competing, got %q", req.Mode)
	}
	if err != nil {
		return module.Command{}, err
	}
	return groups.Create(d), nil
}

func groupNamed(cmd func(string) module.Command) func(GroupRequest) (module.Command, error) {
	return func(req GroupRequest) (module.Command, error) { return cmd(req.Name), nil }
}

func groupMemberCommand(cmd func(group, member string) module.Command) func(GroupRequest) (module.Command, error) {
	return func(req GroupRequest) (module.Command, error) { return cmd(req.Name, req.Member), nil }
}

func groupHeartbeatCommand(req GroupRequest) (module.Command, error) {
	for _, p := range req.Released {
		if p < 0 {
			return module.Command{}, fmt.Errorf("Released must name partitions, got %d", p)
		}
	}
	return groups.Heartbeat(req.Name, req.Member, req.Released...), nil
}

// groupPartition reads a required partition field.
func groupPartition(req GroupRequest) (int, error) {
	switch {
	case req.Partition == nil:
		return 0, errors.New("Partition is required")
	case *req.Partition < 0:
		return 0, fmt.Errorf("Partition must not be negative, got %d", *req.Partition)
	}
	return *req.Partition, nil
}

func groupCommitCommand(req GroupRequest) (module.Command, error) {
	p, err := groupPartition(req)
	if err != nil {
		return module.Command{}, err
	}
	switch {
	case req.Offset == nil || *req.Offset < 0:
		return module.Command{}, errors.New("Offset is required: the next offset to consume, after every message before it was processed")
	case req.Generation == 0:
		return module.Command{}, errors.New("Generation is required: the one the member's last join or heartbeat answered")
	}
	return groups.Commit(req.Name, req.Member, req.Generation, p, uint64(*req.Offset)), nil
}

// groupResetTo names the reset targets as the API spells them.
var groupResetTo = map[string]groups.ResetTo{"earliest": groups.ToEarliest, "latest": groups.ToLatest, "time": groups.ToTime, "offset": groups.ToOffset}

func groupResetCommand(req GroupRequest) (module.Command, error) {
	to, ok := groupResetTo[req.To]
	if !ok {
		return module.Command{}, fmt.Errorf("To must be earliest, latest, time or offset, got %q", req.To)
	}
	p := groups.AllPartitions
	if req.Partition != nil {
		var err error
		if p, err = groupPartition(req); err != nil {
			return module.Command{}, err
		}
	}
	var value int64
	switch {
	case to == groups.ToOffset && (req.Offset == nil || *req.Offset < 0):
		return module.Command{}, errors.New("To offset needs Offset, a non-negative offset")
	case to == groups.ToOffset:
		value = *req.Offset
	case req.Offset != nil:
		return module.Command{}, errors.New("Offset is for To offset")
	case to == groups.ToTime:
		ns, err := groupMs("TimeMs", req.TimeMs)
		if err != nil {
			return module.Command{}, err
		}
		value = ns
	}
	if to != groups.ToTime && req.TimeMs != 0 {
		return module.Command{}, errors.New("TimeMs is for To time")
	}
	return groups.Reset(req.Name, p, to, value), nil
}

func groupSettleCommand(verb uint8) func(GroupRequest) (module.Command, error) {
	return func(req GroupRequest) (module.Command, error) {
		it, err := groupSettleItem(verb, req.Handle, req.DelayMs)
		if err != nil {
			return module.Command{}, err
		}
		return groups.Settle(req.Name, req.Member, it.Verb, it.Handle, it.DelayNs), nil
	}
}

// groupSettleItem reads one settle's handle and delay (a nak's only).
func groupSettleItem(verb uint8, handle string, delayMs int64) (groups.SettleItem, error) {
	h, err := parseGroupHandle(handle)
	if err != nil {
		return groups.SettleItem{}, err
	}
	if verb != groups.Nak && delayMs != 0 {
		return groups.SettleItem{}, errors.New("DelayMs is for nak")
	}
	delayNs, err := groupMs("DelayMs", delayMs)
	if err != nil {
		return groups.SettleItem{}, err
	}
	return groups.SettleItem{Verb: verb, Handle: h, DelayNs: delayNs}, nil
}

func groupDeadListCommand(req GroupRequest) (module.Command, error) {
	if req.Limit < 0 {
		return module.Command{}, fmt.Errorf("Limit must not be negative, got %d", req.Limit)
	}
	return groups.DeadLetters(req.Name, req.AfterSeq, req.Limit), nil
}

func groupDeadCommand(verb uint8) func(GroupRequest) (module.Command, error) {
	return func(req GroupRequest) (module.Command, error) {
		if len(req.Seqs) == 0 {
			return module.Command{}, errors.New("Seqs must name dead letters (dead/list shows them)")
		}
		return groups.Dead(req.Name, verb, req.Seqs...), nil
	}
}

func groupListCommand(req GroupRequest) (module.Command, error) {
	if req.Limit < 0 {
		return module.Command{}, fmt.Errorf("Limit must not be negative, got %d", req.Limit)
	}
	return groups.List(req.After, req.Limit), nil
}

// The handle's text: partition, offset and delivery, each in decimal,
// after a version letter. Clients treat it as opaque; the replica judges
// whether it names a current lease (a forged one does not).
const groupHandlePrefix = "h1."

func formatGroupHandle(h groups.Handle) string {
	return fmt.Sprintf("%s%d.%d.%d", groupHandlePrefix, h.P, h.Off, h.Delivery)
}

func parseGroupHandle(s string) (groups.Handle, error) {
	bad := fmt.Errorf("Handle %q is not a handle a fetch answered", s)
	rest, ok := strings.CutPrefix(s, groupHandlePrefix)
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 3 {
		return groups.Handle{}, bad
	}
	var v [3]uint64
	for i, f := range parts {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil || strconv.FormatUint(n, 10) != f {
			return groups.Handle{}, bad
		}
		v[i] = n
	}
	if v[0] > 1<<24 || v[2] == 0 || v[2] > 1<<31 {
		return groups.Handle{}, bad
	}
	return groups.Handle{P: int(v[0]), Off: v[1], Delivery: uint32(v[2])}, nil
}

func groupMsOf(ns int64) int64 { return ns / int64(time.Millisecond) }

func groupInfo(g *groups.Group) GroupInfo {
	st := g.Stats
	info := GroupInfo{Name: g.Name, Topic: g.Topic, Mode: g.Mode.String(), Start: "earliest", SessionMs: groupMsOf(g.SessionNs),
		AckWaitMs: groupMsOf(g.AckWaitNs), MaxDeliveries: g.DeliveriesMax, MaxInFlight: g.InFlightMax, CreatedMs: groupMsOf(g.CreatedNs),
		Partitions: g.Partitions, Generation: g.Generation, Pending: g.Pending, DeadLetters: g.DeadLetters,
		Stats: GroupStats{Rebalances: st.Rebalances, Expired: st.Expired, Redeliveries: st.Redeliveries, Expiries: st.Expiries,
			DeadLettered: st.DeadLettered, DeadEvicted: st.DeadEvicted, Trimmed: st.Trimmed}}
	if g.StartLatest {
		info.Start = "latest"
	}
	for _, m := range g.Members {
		info.Members = append(info.Members, GroupMember{ID: m.ID, Generation: m.Generation, DeadlineMs: groupMsOf(m.DeadlineNs),
			Assigned: m.Assigned, Revoking: m.Revoking, InFlight: m.InFlight})
	}
	for _, o := range g.Offsets {
		info.Offsets = append(info.Offsets, GroupPartition{Partition: o.P, Owner: o.Owner, Target: o.Target, Offset: o.Offset,
			First: o.First, End: o.End, Lag: o.Lag})
	}
	return info
}

func groupOne(_ GroupRequest, a groups.Answer) any {
	if len(a.Groups) != 1 {
		return GroupInfo{}
	}
	return groupInfo(&a.Groups[0])
}

func groupList(_ GroupRequest, a groups.Answer) any {
	out := GroupList{Groups: make([]GroupInfo, 0, len(a.Groups)), Next: a.Next}
	for i := range a.Groups {
		out.Groups = append(out.Groups, groupInfo(&a.Groups[i]))
	}
	return out
}

func groupDone(req GroupRequest, _ groups.Answer) any { return GroupDone{Name: req.Name} }

func groupAssignment(_ GroupRequest, a groups.Answer) any {
	s := a.Assignment
	if s == nil {
		return GroupAssignment{}
	}
	return GroupAssignment{Member: s.Member, Generation: s.Generation, Assigned: groupParts(s.Assigned), Revoking: groupParts(s.Revoking),
		DeadlineMs: groupMsOf(s.DeadlineNs)}
}

func groupParts(ps []int) []int {
	if ps == nil {
		return []int{}
	}
	return ps
}

func groupDeliveries(_ GroupRequest, a groups.Answer) any {
	out := GroupDeliveries{Messages: make([]GroupDelivery, 0, len(a.Deliveries))}
	for i := range a.Deliveries {
		d := &a.Deliveries[i]
		gd := GroupDelivery{Handle: formatGroupHandle(d.Handle), Delivery: d.Delivery, DeadlineMs: groupMsOf(d.DeadlineNs)}
		if d.Message.Topic != "" {
			gd.GroupMessage = groupMessage(&d.Message)
		} else {
			gd.Partition, gd.Offset = d.P, d.Off
		}
		out.Messages = append(out.Messages, gd)
	}
	return out
}

// groupDeadReasons names the dead-letter reasons as the API spells them.
var groupDeadReasons = map[uint8]string{groups.ReasonDeliveries: "deliveries", groups.ReasonTerminated: "terminated"}

func groupDeadLetters(_ GroupRequest, a groups.Answer) any {
	out := GroupDeadLetters{Letters: make([]GroupDeadLetter, 0, len(a.Dead)), Next: a.NextSeq}
	for _, d := range a.Dead {
		out.Letters = append(out.Letters, GroupDeadLetter{Seq: d.Seq, Partition: d.P, Offset: d.Off, Deliveries: d.Deliveries,
			Reason: groupDeadReasons[d.Reason], TimeMs: groupMsOf(d.AtNs)})
	}
	return out
}

// groupBytes renders bytes as text when they are UTF-8, else as base64.
func groupBytes(b []byte) (text, b64 string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return "", base64.StdEncoding.EncodeToString(b)
}

func groupMessage(m *topics.Message) GroupMessage {
	out := GroupMessage{Partition: m.Partition, Offset: m.Offset, Index: m.Index, TimeMs: groupMsOf(m.AtNs)}
	if m.Key != nil {
		k, k64 := groupBytes(m.Key)
		if k64 == "" {
			out.Key = &k
		}
		out.KeyBase64 = k64
	}
	out.Value, out.ValueBase64 = groupBytes(m.Value)
	for _, h := range m.Headers {
		gh := GroupHeader{Key: h.Key}
		gh.Value, gh.ValueBase64 = groupBytes(h.Value)
		out.Headers = append(out.Headers, gh)
	}
	return out
}

// handleGroupRead serves a partitioned member's read of one of its
// partitions: the group's describe says the topic, the committed offset
// and the owner; the topic's read (topics.Read, after its own ReadIndex)
// says the messages. A member reading a partition it does not own (any
// more) is told so (409): it stops reading it; its commits would be
// refused anyway.
func (s *Server) handleGroupRead(w http.ResponseWriter, r *http.Request) {
	req, ok := groupRequestOf(w, r, false)
	if !ok {
		return
	}
	p, err := groupPartition(req)
	switch {
	case err != nil:
	case req.Member == "":
		err = errors.New("Member is required: the member reading its partition")
	case req.Max < 0:
		err = fmt.Errorf("Max must not be negative, got %d", req.Max)
	case req.From != nil && *req.From < 0:
		err = fmt.Errorf("From must be an offset, got %d", *req.From)
	default:
		err = checkWaitMs(req.WaitMs)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out, code, err := s.groupRead(r.Context(), req, p)
	if err != nil {
		if code == 0 {
			writeCallError(w, err)
		} else {
			writeError(w, code, err.Error())
		}
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// groupRead reads for handleGroupRead; a refusal of its own comes with its
// status, the replica's with 0.
func (s *Server) groupRead(ctx context.Context, req GroupRequest, p int) (GroupMessages, int, error) {
	v, err := s.Query(ctx, groups.Describe(req.Name))
	if err != nil {
		return GroupMessages{}, 0, err
	}
	a, ok := v.(groups.Answer)
	if !ok || len(a.Groups) != 1 {
		return GroupMessages{}, http.StatusInternalServerError, fmt.Errorf("group describe: the replica answered %T", v)
	}
	g := &a.Groups[0]
	switch {
	case g.Mode != groups.Partitioned:
		return GroupMessages{}, http.StatusConflict, fmt.Errorf("group %q is %s: its members fetch, they do not read", g.Name, g.Mode)
	case p >= g.Partitions:
		return GroupMessages{}, http.StatusBadRequest, fmt.Errorf("partition %d of a group of %d", p, g.Partitions)
	case g.Offsets[p].Owner != req.Member:
		return GroupMessages{}, http.StatusConflict, fmt.Errorf("partition %d is not %q's (owner %q, generation %d): join or heartbeat for the assignment", p, req.Member, g.Offsets[p].Owner, g.Generation)
	}
	from := g.Offsets[p].Offset
	if req.From != nil {
		from = uint64(*req.From)
	}
	var ta topics.Answer
	err = s.longPoll(ctx, g.Topic, p, from, req.WaitMs, func() (int, error) {
		v, err := s.Query(ctx, topics.Read(g.Topic, p, from, req.Max))
		ta, _ = v.(topics.Answer)
		return len(ta.Messages), err
	})
	switch {
	case errors.Is(err, errReadersFull):
		return GroupMessages{}, http.StatusTooManyRequests, err
	case err != nil:
		return GroupMessages{}, 0, err
	}
	out := GroupMessages{Messages: make([]GroupMessage, 0, len(ta.Messages)), Next: max(from, g.Offsets[p].First), Committed: g.Offsets[p].Offset}
	for i := range ta.Messages {
		out.Messages = append(out.Messages, groupMessage(&ta.Messages[i]))
		out.Next = ta.Messages[i].Offset + 1
	}
	return out, 0, nil
}
