package server

import (
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

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/topics"
)

// The topic API: the replicated message log (core/topics) over JSON. Every
// endpoint takes a POST with a JSON body of its own type, decoded strictly
// (list also a GET, without one). create, delete and publish go through the
// log under a session like KV writes; get, list and read are served after a
// ReadIndex. A refusal changed nothing: 400 for a malformed request, a
// partition count of 0 or over the bound, a batch of 0 or over the batch
// bound, or a partition the topic does not have; 404 for an unknown topic;
// 409 for a create of a name held; 413 for a message over the size limit, a
// body over its bound, or a store full (its byte bound: a publish is refused whole,
// never made room for by dropping messages; the error says which); 429 when
// topicReadersMax reads already wait.
//
// Keys, values and header values are bytes. In a request each is given as
// a JSON string, stored as its UTF-8 bytes (Value), or as standard base64
// (ValueBase64), never both. In an answer each comes as Value when its
// bytes are UTF-8, else as ValueBase64 with Value empty. A message without
// Key or KeyBase64 has no key: it goes round-robin over the partitions;
// with a key (the empty one too) it goes to the key's hash
// (topics.KeyPartition); Partition, when given, names its partition.
//
// A read returns up to Max messages of one partition from From on: From is
// "beginning" (the default), "end" (the next message published), an offset
// ("42"), or a time, RFC 3339 ("2026-12-01T10:00:00Z") or Unix milliseconds
// after an @ ("@1764583200000"): the first message published at or after it
// (replicated time). A From older than retention reads from the oldest
// message held. With WaitMs and no message at From yet, the read waits until
// one is applied on this node or WaitMs passes (an empty answer); Next is
// the offset to read from next, so a follower loops on it.

// TopicCreate is the body of create.
type TopicCreate struct {
	Name           string
	Partitions     int
	RetainMessages int64 // per partition; 0: topics.RetainMessagesDefault
	RetainBytes    int64 // per partition, keys, values and headers; 0: topics.RetainBytesDefault
	RetainAgeMs    int64 // 0: no age limit
}

// TopicName is the body of get and delete.
type TopicName struct {
	Name string
}

// TopicListRequest is the body of list: a page of topics by name.
type TopicListRequest struct {
	After string // the Next of the page before
	Limit int    // 0: the module's page size
}

// TopicPublish is the body of publish: messages appended in order, all or
// none, in one log entry.
type TopicPublish struct {
	Topic    string
	Messages []TopicMessageIn
}

// TopicMessageIn is one message as published.
type TopicMessageIn struct {
	Key         *string `json:",omitempty"` // absent (and no KeyBase64): no key, round-robin
	KeyBase64   *string `json:",omitempty"`
	Value       string  `json:",omitempty"`
	ValueBase64 string  `json:",omitempty"`
	Headers     []TopicHeader
	Partition   *int `json:",omitempty"` // absent: by key, or round-robin
}

// TopicHeader is one message header; headers keep their order and may
// repeat a key.
type TopicHeader struct {
	Key         string
	Value       string `json:",omitempty"`
	ValueBase64 string `json:",omitempty"`
}

// TopicPublished answers publish: where each message went, in order, and
// the log index of the entry that committed them all.
type TopicPublished struct {
	Index    uint64
	Messages []TopicPlaced
}

// TopicPlaced is where one message went.
type TopicPlaced struct {
	Partition int
	Offset    uint64
}

// TopicReadRequest is the body of read.
type TopicReadRequest struct {
	Topic     string
	Partition int
	From      string // "beginning" (or absent), "end", an offset, an RFC 3339 time, or @ Unix ms
	Max       int    // 0: the module's bound (topics.Limits.ReadMax)
	WaitMs    int64  // 0: answer at once; at most topicWaitMsMax
}

// TopicMessages answers read: messages in offset order, and the offset to
// read from next.
type TopicMessages struct {
	Messages []TopicMessage
	Next     uint64
}

// TopicMessage is one message as read.
type TopicMessage struct {
	Partition   int
	Offset      uint64
	Key         *string       `json:",omitempty"` // a UTF-8 key; absent with no key or a binary one
	KeyBase64   string        `json:",omitempty"` // a key that is not UTF-8
	Value       string        // UTF-8 value, else empty and ValueBase64 holds it
	ValueBase64 string        `json:",omitempty"`
	Headers     []TopicHeader `json:",omitempty"`
	Index       uint64        // the log index that committed it
	TimeMs      int64         // Unix ms of replicated time when it committed
}

// TopicInfo describes a topic (create, delete, get, list).
type TopicInfo struct {
	Name           string
	Partitions     int
	RetainMessages int64
	RetainBytes    int64
	RetainAgeMs    int64
	CreatedMs      int64  // Unix ms, replicated time
	Published      uint64 // messages ever published to it
	Bounds         []TopicBounds
}

// TopicBounds is one partition's offsets: First is the oldest held (older
// ones went to retention), End the one the next message will get.
type TopicBounds struct {
	Partition  int
	First, End uint64
	Bytes      int64
}

// TopicList answers list; pass Next as After for the next page ("" at the
// end).
type TopicList struct {
	Topics []TopicInfo
	Next   string
}

func (s *Server) topicRoutes(route func(pattern, name string, h http.HandlerFunc)) {
	for _, e := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"create", s.handleTopicCreate}, {"delete", s.handleTopicDelete}, {"get", s.handleTopicGet},
		{"list", s.handleTopicList}, {"publish", s.handleTopicPublish}, {"read", s.handleTopicRead},
	} {
		route("/v1/aspen/topic/"+e.name, "aspen_topic_"+e.name, e.h)
	}
}

// readTopicBody checks the method (POST, or GET where get is set) and
// decodes the body strictly into v, answering the refusal itself; it
// reports whether the request may go on.
func readTopicBody(w http.ResponseWriter, r *http.Request, get bool, v any, what string, bytesMax int) bool {
	if !allowMethods(w, r, get) {
		return false
	}
	if r.Method == http.MethodGet {
		return true
	}
	if code, err := readStrictJSON(r, v, what, bytesMax); err != nil {
		writeError(w, code, err.Error())
		return false
	}
	return true
}

func (s *Server) handleTopicCreate(w http.ResponseWriter, r *http.Request) {
	var req TopicCreate
	if !readTopicBody(w, r, false, &req, "TopicCreate", topicBodyBytesMax) {
		return
	}
	if req.RetainMessages == 0 {
		req.RetainMessages = topics.RetainMessagesDefault
	}
	if req.RetainBytes == 0 {
		req.RetainBytes = topics.RetainBytesDefault
	}
	// Ranges are the replica's to refuse (its limits); only what would
	// overflow nanoseconds is caught here.
	if req.RetainAgeMs < 0 || req.RetainAgeMs > math.MaxInt64/int64(time.Millisecond) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("RetainAgeMs must be a non-negative number of milliseconds, got %d", req.RetainAgeMs))
		return
	}
	d := topics.Def{Name: req.Name, Partitions: req.Partitions, RetainMessages: req.RetainMessages, RetainBytes: req.RetainBytes,
		RetainAgeNs: req.RetainAgeMs * int64(time.Millisecond)}
	answerCall(s, w, r, "topic create", true, topics.Create(d), topicOne)
}

func (s *Server) handleTopicDelete(w http.ResponseWriter, r *http.Request) {
	var req TopicName
	if readTopicBody(w, r, false, &req, "TopicName", topicBodyBytesMax) {
		answerCall(s, w, r, "topic delete", true, topics.Delete(req.Name), topicOne)
	}
}

func (s *Server) handleTopicGet(w http.ResponseWriter, r *http.Request) {
	var req TopicName
	if readTopicBody(w, r, false, &req, "TopicName", topicBodyBytesMax) {
		answerCall(s, w, r, "topic get", false, topics.Get(req.Name), topicOne)
	}
}

func (s *Server) handleTopicList(w http.ResponseWriter, r *http.Request) {
	var req TopicListRequest
	if !readTopicBody(w, r, true, &req, "TopicListRequest", topicBodyBytesMax) {
		return
	}
	if req.Limit < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Limit must not be negative, got %d", req.Limit))
		return
	}
	answerCall(s, w, r, "topic list", false, topics.List(req.After, req.Limit), func(a topics.Answer) any {
		out := TopicList{Topics: make([]TopicInfo, 0, len(a.Topics)), Next: a.Next}
		for i := range a.Topics {
			out.Topics = append(out.Topics, topicInfo(&a.Topics[i]))
		}
		return out
	})
}

func (s *Server) handleTopicPublish(w http.ResponseWriter, r *http.Request) {
	var req TopicPublish
	if !readTopicBody(w, r, false, &req, "TopicPublish", topicPublishBodyBytesMax) {
		return
	}
	msgs, err := topicMessagesIn(req.Messages)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Counts, sizes, partitions and the store's bound are the replica's to
	// refuse, whole (Validate, then Apply), so every replica agrees.
	answerCall(s, w, r, "topic publish", true, topics.Publish(req.Topic, msgs), func(a topics.Answer) any {
		out := TopicPublished{Index: a.Index, Messages: make([]TopicPlaced, len(a.Placed))}
		for i, p := range a.Placed {
			out.Messages[i] = TopicPlaced{Partition: p.Partition, Offset: p.Offset}
		}
		return out
	})
}

// topicMessagesIn turns published messages into the module's, decoding
// base64; it refuses a field given both ways.
func topicMessagesIn(in []TopicMessageIn) ([]topics.In, error) {
	out := make([]topics.In, len(in))
	for i := range in {
		m, err := topicMessageIn(&in[i])
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		out[i] = m
	}
	return out, nil
}

func topicMessageIn(m *TopicMessageIn) (topics.In, error) {
	in := topics.In{Partition: -1}
	var err error
	switch {
	case m.Key != nil && m.KeyBase64 != nil:
		return in, errors.New("give Key or KeyBase64, not both")
	case m.Key != nil:
		in.Key = []byte(*m.Key)
	case m.KeyBase64 != nil:
		if in.Key, err = decodeBase64("KeyBase64", *m.KeyBase64); err != nil {
			return in, err
		}
	}
	if in.Value, err = bytesField("Value", m.Value, m.ValueBase64); err != nil {
		return in, err
	}
	for j, h := range m.Headers {
		v, err := bytesField("Value", h.Value, h.ValueBase64)
		if err != nil {
			return in, fmt.Errorf("header %d: %w", j, err)
		}
		in.Headers = append(in.Headers, topics.Header{Key: h.Key, Value: v})
	}
	if m.Partition != nil {
		if *m.Partition < 0 {
			return in, fmt.Errorf("Partition must not be negative, got %d (leave it out to choose by key)", *m.Partition)
		}
		in.Partition = *m.Partition
	}
	return in, nil
}

// bytesField reads a bytes field given as text or as base64, not both.
func bytesField(name, text, b64 string) ([]byte, error) {
	switch {
	case text != "" && b64 != "":
		return nil, fmt.Errorf("give %s or %sBase64, not both", name, name)
	case b64 != "":
		return decodeBase64(name+"Base64", b64)
	}
	return []byte(text), nil
}

func decodeBase64(name, s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s is not standard base64: %v", name, err)
	}
	return b, nil
}

func (s *Server) handleTopicRead(w http.ResponseWriter, r *http.Request) {
	var req TopicReadRequest
	if !readTopicBody(w, r, false, &req, "TopicReadRequest", topicBodyBytesMax) {
		return
	}
	switch {
	case req.Partition < 0:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Partition must not be negative, got %d", req.Partition))
		return
	case req.Max < 0:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Max must not be negative, got %d", req.Max))
		return
	case req.WaitMs < 0 || req.WaitMs > topicWaitMsMax:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("WaitMs must be 0 to %d, got %d", topicWaitMsMax, req.WaitMs))
		return
	}
	from, err := s.topicFrom(r.Context(), &req)
	if err != nil {
		writeReadError(w, err)
		return
	}
	out, err := s.readTopic(r.Context(), &req, from)
	if err != nil {
		writeReadError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// errReadersFull refuses a waiting read when topicReadersMax already wait.
var errReadersFull = fmt.Errorf("%d topic reads are waiting already; read again later or without WaitMs", topicReadersMax)

// errBadFrom marks a From that does not parse.
var errBadFrom = errors.New(`From must be "beginning", "end", an offset, an RFC 3339 time, or @ and Unix milliseconds`)

func writeReadError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errBadFrom):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, errReadersFull):
		writeError(w, http.StatusTooManyRequests, err.Error())
	default:
		writeCallError(w, err)
	}
}

// topicFrom resolves From to an offset: "end" and times through the
// module's OffsetAt (after a ReadIndex), so the answer is as of now.
func (s *Server) topicFrom(ctx context.Context, req *TopicReadRequest) (uint64, error) {
	f := req.From
	var atNs int64
	switch {
	case f == "" || f == "beginning":
		return 0, nil
	case f == "end":
		atNs = math.MaxInt64
	case f[0] >= '0' && f[0] <= '9' && !strings.ContainsAny(f, "-:T"):
		off, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w; got %q", errBadFrom, f)
		}
		return off, nil
	case f[0] == '@':
		ms, err := strconv.ParseInt(f[1:], 10, 64)
		if err != nil || ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
			return 0, fmt.Errorf("%w; got %q", errBadFrom, f)
		}
		atNs = ms * int64(time.Millisecond)
	default:
		t, err := time.Parse(time.RFC3339Nano, f)
		if err != nil {
			return 0, fmt.Errorf("%w; got %q", errBadFrom, f)
		}
		atNs = t.UnixNano()
	}
	v, err := s.Query(ctx, topics.OffsetAt(req.Topic, req.Partition, atNs))
	if err != nil {
		return 0, err
	}
	a, ok := v.(topics.Answer)
	if !ok || len(a.Placed) != 1 {
		return 0, fmt.Errorf("topic offset at: the replica answered %T", v)
	}
	return a.Placed[0].Offset, nil
}

// readTopic reads from offset from on; with WaitMs, while there is nothing
// there it waits for the loop to see the partition reach from (longPoll).
func (s *Server) readTopic(ctx context.Context, req *TopicReadRequest, from uint64) (TopicMessages, error) {
	var out TopicMessages
	err := s.longPoll(ctx, req.Topic, req.Partition, from, req.WaitMs, func() (int, error) {
		v, err := s.Query(ctx, topics.Read(req.Topic, req.Partition, from, req.Max))
		out = topicMessages(v, from)
		return len(out.Messages), err
	})
	return out, err
}

// longPoll runs read, which reports how many messages it found at offset
// from of partition p; with waitMs, while it finds none, it waits for the
// loop to see the partition reach from (topicwait.go) and reads again, for
// at most waitMs in all. The wait is registered before each read, so
// nothing applied between a read and its wait is missed.
func (s *Server) longPoll(ctx context.Context, topic string, p int, from uint64, waitMs int64, read func() (int, error)) error {
	deadline := time.NewTimer(time.Duration(waitMs) * time.Millisecond)
	defer deadline.Stop()
	for {
		var wait *topicWait
		if waitMs > 0 {
			var ok bool
			if wait, ok = s.topicReaders.add(topic, p, from); !ok {
				return errReadersFull
			}
		}
		n, err := read()
		if err != nil || wait == nil {
			if wait != nil {
				s.topicReaders.remove(wait)
			}
			return err
		}
		if n > 0 {
			s.topicReaders.remove(wait)
			return nil
		}
		select {
		case <-wait.ready:
			continue // removed by wake
		case <-deadline.C:
		case <-ctx.Done():
		case <-s.stop:
		}
		s.topicReaders.remove(wait)
		return nil
	}
}

// topicMessages renders a read's answer; Next is after the last message,
// or from when there is none.
func topicMessages(v any, from uint64) TopicMessages {
	a, _ := v.(topics.Answer)
	out := TopicMessages{Messages: make([]TopicMessage, len(a.Messages)), Next: from}
	for i := range a.Messages {
		m := &a.Messages[i]
		out.Messages[i] = TopicMessage{Partition: m.Partition, Offset: m.Offset, Index: m.Index, TimeMs: m.AtNs / int64(time.Millisecond)}
		if m.Key != nil {
			key, b64 := textOrBase64(m.Key)
			if b64 == "" {
				out.Messages[i].Key = &key
			}
			out.Messages[i].KeyBase64 = b64
		}
		out.Messages[i].Value, out.Messages[i].ValueBase64 = textOrBase64(m.Value)
		for _, h := range m.Headers {
			th := TopicHeader{Key: h.Key}
			th.Value, th.ValueBase64 = textOrBase64(h.Value)
			out.Messages[i].Headers = append(out.Messages[i].Headers, th)
		}
		out.Next = m.Offset + 1
	}
	return out
}

// textOrBase64 gives b as text when it is UTF-8, else as base64.
func textOrBase64(b []byte) (text, b64 string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return "", base64.StdEncoding.EncodeToString(b)
}

// topicOne renders the answer of create, delete and get: one topic.
func topicOne(a topics.Answer) any {
	assert.That(len(a.Topics) == 1, "a topic call answered %d topics", len(a.Topics))
	return topicInfo(&a.Topics[0])
}

func topicInfo(in *topics.Info) TopicInfo {
	ms := func(ns int64) int64 { return ns / int64(time.Millisecond) }
	out := TopicInfo{Name: in.Name, Partitions: in.Def.Partitions, RetainMessages: in.RetainMessages, RetainBytes: in.RetainBytes,
		RetainAgeMs: ms(in.RetainAgeNs), CreatedMs: ms(in.CreatedNs), Published: in.Published,
		Bounds: make([]TopicBounds, len(in.Partitions))}
	for p, b := range in.Partitions {
		out.Bounds[p] = TopicBounds{Partition: p, First: b.First, End: b.End, Bytes: b.Bytes}
	}
	return out
}
