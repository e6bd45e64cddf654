package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/token"
)

// The hooks API: hooks on KV changes (core/hooks) over JSON. Each endpoint
// takes a POST with a HookRequest body (get, list and deliveries also a GET
// with the fields as query parameters name, after, state and limit) and
// answers with hooks as HookInfo: the definition as given (an http hook's
// secret only as SecretSet), the state (backlog, in flight, lagging) and the
// replicated counts. Writes (create, delete, enable, disable, trigger) go
// through the log under a session; get, list and deliveries are served
// after a ReadIndex. A refusal changed nothing: 400 for a malformed request
// (an invalid pattern, an unknown handler kind or event, a URL that is not
// http(s), fields of another handler kind), 401 for an http hook on a node
// without the cluster key (it could not seal the secret) or a forged token,
// 403 for a shell hook without a valid capability token (shell.go), 404 for
// an unknown hook, 409 for a name in use or a trigger of a disabled hook,
// 413 for a full table or a body over hookBodyBytesMax.
//
// Handlers:
//   - http: POST the event to URL, signed with Secret. The node seals the
//     secret under the cluster key (token.Seal) before it is proposed, so
//     only sealed bytes reach the log, and no answer shows it again.
//   - shell: run the command of the ShellCommand fields, allowed by the
//     capability token in Capability; the hook stores the grant the node
//     makes from them (token.Grant), never the token.
//   - job: enqueue a job of JobType with the event as its payload.
//   - topic: publish the event to Topic, keyed by the KV key, in the
//     change's own apply (change data capture with no window).
//
// Deliveries are jobs of the job queue (types hook.http, hook.shell, or a
// job hook's own) whose idempotency key is "NAME:revision:key"; deliveries
// lists them by state, and the job API's dead/retry and dead/drop retry or
// drop a dead one.

// Defaults of a hook's delivery jobs, for fields left out (0): those of a
// schedule's job template.
const (
	hookAttemptsDefault     = scheduleAttemptsDefault
	hookTimeoutMsDefault    = scheduleTimeoutMsDefault
	hookBackoffMsDefault    = scheduleBackoffMsDefault
	hookBackoffMaxMsDefault = scheduleBackoffMaxMsDefault
	// hookBodyBytesMax bounds a hook request: a shell command's grant or a
	// trigger's value at the module's limits (32 KiB, 4 KiB), escaped, and
	// short fields.
	hookBodyBytesMax = 256 << 10
	// hookDeliveryPagesMax bounds the pages deliveries reads for each state
	// when no State is named: each page is a bounded scan of the queue
	// (jobs.ListKeyed), so one answer costs a bounded number of them.
	hookDeliveryPagesMax = 8
)

// hookDeliveryStates are the states deliveries walks when none is named:
// every state but cancelled (no one cancels a delivery but an operator).
var hookDeliveryStates = []string{"pending", "leased", "succeeded", "failed", "dead"}

// HookRequest is the body of every hook endpoint; each reads the fields it
// needs (create the definition; trigger Name, Key and Value; list After and
// Limit; deliveries Name, State, After and Limit; the rest Name).
type HookRequest struct {
	Name    string
	Pattern string   `json:",omitempty"` // a prefix, or a glob: * one path segment, ** any number
	Events  []string `json:",omitempty"` // put, delete, expire; none: put and delete
	Filter  string   `json:",omitempty"` // puts: any (default), created, updated

	Handler      string `json:",omitempty"` // http, shell or job
	URL          string `json:",omitempty"` // http
	Secret       string `json:",omitempty"` // http: the key the body is signed with; sealed, never shown again
	JobType      string `json:",omitempty"` // job
	Topic        string `json:",omitempty"` // topic
	ShellCommand        // shell: the command and the token that allows it

	Mode         string `json:",omitempty"` // ordered (default) or parallel
	Parallel     int64  `json:",omitempty"` // parallel: deliveries in flight at most
	MaxAttempts  int64  `json:",omitempty"` // 0: hookAttemptsDefault
	TimeoutMs    int64  `json:",omitempty"` // a delivery's lease; 0: hookTimeoutMsDefault
	BackoffMs    int64  `json:",omitempty"` // the first retry's delay, doubled for each later one
	BackoffMaxMs int64  `json:",omitempty"` // the cap on that delay
	RatePerSec   int64  `json:",omitempty"` // deliveries started per second at most; 0: no limit
	Burst        int64  `json:",omitempty"` // with a rate: how many may start at once (0: 1)
	Disabled     bool   `json:",omitempty"` // create the hook disabled

	Key   string `json:",omitempty"` // trigger: the synthetic event's key
	Value string `json:",omitempty"` // trigger: its value

	After string `json:",omitempty"` // list: names after this; deliveries: a job id (with State)
	State string `json:",omitempty"` // deliveries: one state (default: pending, leased, succeeded, failed, dead)
	Limit int    `json:",omitempty"` // list, deliveries: at most this many (0: the cluster's page size)
}

// HookInfo is one hook as every endpoint but deliveries shows it.
type HookInfo struct {
	Name      string
	Pattern   string
	Events    []string
	Filter    string
	Handler   string
	URL       string       `json:",omitempty"`
	SecretSet bool         `json:",omitempty"` // http: a secret is set (it is never shown)
	JobType   string       `json:",omitempty"`
	Topic     string       `json:",omitempty"`
	Command   *HookCommand `json:",omitempty"` // shell

	Mode         string
	Parallel     int64 `json:",omitempty"`
	MaxAttempts  int64
	TimeoutMs    int64
	BackoffMs    int64
	BackoffMaxMs int64
	RatePerSec   int64 `json:",omitempty"`
	Burst        int64 `json:",omitempty"`
	Disabled     bool
	Created      string // UTC, RFC 3339

	Stats    HookStats
	Backlog  int // deliveries waiting for the job queue
	InFlight int // deliveries in the queue, not yet seen finished
	Lagging  bool
	LagFrom  int64 `json:",omitempty"` // lagging: the revisions let pass, to be covered by one resync delivery
	LagTo    int64 `json:",omitempty"`
	// OldestRev is the revision of the oldest delivery not finished (0:
	// none); LagRevisions the KV revision minus it, LagSeconds how long ago
	// (this node's clock) its change was applied; both 0 when none.
	OldestRev    int64 `json:",omitempty"`
	LagRevisions int64
	LagSeconds   float64
}

// HookCommand is a shell hook's command as the grant holds it.
type HookCommand struct {
	Argv             []string
	Dir              string
	Env              map[string]string `json:",omitempty"`
	CommandTimeoutMs int64             `json:",omitempty"`
	TokenID          string            // the token that allowed it
	TokenExpires     string            // UTC: the worker refuses to run it after this
}

// HookStats are a hook's replicated counts (hooks.Stats).
type HookStats struct {
	Matched   uint64 // changes that matched
	Submitted uint64 // deliveries handed to the job queue
	Delivered uint64 // deliveries whose job succeeded
	Failed    uint64 // deliveries whose job failed for good
	Dead      uint64 // deliveries whose job ran out of attempts
	Retried   uint64 // attempts after the first, over finished deliveries
	Lagged    uint64 // changes covered by a resync instead of delivered one by one
	Resyncs   uint64 // resync deliveries made
}

// HookList answers list: a page of hooks by name.
type HookList struct {
	Hooks []HookInfo
	Next  string `json:",omitempty"` // pass as After for the next page; absent at the end
}

// HookDeliveries answers deliveries: the hook's delivery jobs, by state
// then id (without payloads; job get shows one). With a State, Next is the
// After of the next page (0: this was the last); without, each state is
// read up to the limit, and Truncated says that some state had more.
type HookDeliveries struct {
	Name      string
	Jobs      []JobInfo
	Next      uint64 `json:",omitempty"`
	Truncated bool   `json:",omitempty"`
}

// hookEndpoint is one hook operation.
type hookEndpoint struct {
	name  string
	write bool // through the log (Call), else a query after a ReadIndex
	// command builds the module command; it may refuse with a *shellError
	// carrying its status, else the refusal is a 400.
	command func(s *Server, ctx context.Context, req HookRequest) (module.Command, error)
	answer  func(s *Server, a hooks.Answer) any
}

var hookEndpoints = []hookEndpoint{
	{name: "create", write: true, command: (*Server).hookCreateCommand, answer: (*Server).hookOne},
	{name: "delete", write: true, command: hookNameCommand(hooks.Delete), answer: (*Server).hookOne},
	{name: "enable", write: true, command: hookNameCommand(hooks.Enable), answer: (*Server).hookOne},
	{name: "disable", write: true, command: hookNameCommand(hooks.Disable), answer: (*Server).hookOne},
	{name: "trigger", write: true, command: hookTriggerCommand, answer: (*Server).hookOne},
	{name: "get", command: hookNameCommand(hooks.Get), answer: (*Server).hookOne},
	{name: "list", command: hookListCommand, answer: (*Server).hookPage},
}

func (s *Server) hookRoutes(route func(pattern, name string, h http.HandlerFunc)) {
	for _, e := range hookEndpoints {
		route("/v1/aspen/hook/"+e.name, "aspen_hook_"+e.name, s.hookHandler(e))
	}
	route("/v1/aspen/hook/deliveries", "aspen_hook_deliveries", s.hookDeliveries)
}

func (s *Server) hookHandler(e hookEndpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allowMethods(w, r, !e.write) {
			return
		}
		req, code, err := readHookRequest(r)
		if err != nil {
			writeError(w, code, err.Error())
			return
		}
		cmd, err := e.command(s, r.Context(), req)
		if err != nil {
			writeHookRefusal(w, err)
			return
		}
		answerCall(s, w, r, "hook "+e.name, e.write, cmd, func(a hooks.Answer) any { return e.answer(s, a) })
	}
}

// writeHookRefusal answers a request refused before it reached the log.
func writeHookRefusal(w http.ResponseWriter, err error) {
	var se *shellError
	switch {
	case errors.As(err, &se):
		writeError(w, se.status, se.Error())
	case errors.Is(err, errUnchecked):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusBadRequest, err.Error())
	}
}

// errUnchecked marks a request that could not be judged (the revocation
// registry was out of reach): 503, not the request's fault.
var errUnchecked = errors.New("cannot check the request now")

// readHookRequest decodes one JSON object strictly, or for a GET the query
// parameters name, after, state and limit.
func readHookRequest(r *http.Request) (HookRequest, int, error) {
	var req HookRequest
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		req.Name, req.After, req.State = q.Get("name"), q.Get("after"), q.Get("state")
		limit, _, err := uintParam(r, "limit")
		if err != nil || limit > 1<<20 {
			return req, http.StatusBadRequest, fmt.Errorf("query parameter limit=%q: want a page size", q.Get("limit"))
		}
		req.Limit = int(limit)
		return req, 0, nil
	}
	code, err := readStrictJSON(r, &req, "HookRequest", hookBodyBytesMax)
	return req, code, err
}

// hookCreateCommand checks what only the node knows or holds (the cluster
// key that seals an http secret, a shell hook's token, the names of events
// and modes) and fills defaults; the replica checks the rest (pattern,
// limits, handler fields) and answers with its own message.
func (s *Server) hookCreateCommand(ctx context.Context, req HookRequest) (module.Command, error) {
	if req.Name == "" {
		return module.Command{}, errors.New("Name is required")
	}
	if req.Key != "" || req.Value != "" || req.After != "" || req.State != "" || req.Limit != 0 {
		return module.Command{}, errors.New("Key, Value, After, State and Limit are not fields of a hook's definition")
	}
	d := hooks.Def{Name: req.Name, Pattern: req.Pattern, Disabled: req.Disabled, Mode: req.Mode, Parallel: req.Parallel,
		RatePerSec: req.RatePerSec, Burst: req.Burst}
	var err error
	if d.Events, err = parseHookEvents(req.Events); err != nil {
		return module.Command{}, err
	}
	if d.Filter, err = parseHookFilter(req.Filter); err != nil {
		return module.Command{}, err
	}
	if d.Mode == "" {
		d.Mode = hooks.Ordered
	}
	if d.RatePerSec > 0 && d.Burst == 0 {
		d.Burst = 1
	}
	if d.AttemptsMax, d.TimeoutNs, d.BackoffBaseNs, d.BackoffMaxNs, err = hookJobBounds(req); err != nil {
		return module.Command{}, err
	}
	if d.Handler, err = s.hookHandlerOf(ctx, req); err != nil {
		return module.Command{}, err
	}
	return hooks.Create(d), nil
}

// hookHandlerOf builds the handler, refusing fields of another kind.
func (s *Server) hookHandlerOf(ctx context.Context, req HookRequest) (hooks.Handler, error) {
	h := hooks.Handler{Kind: req.Handler}
	switch {
	case req.Handler != hooks.HandlerShell && !req.ShellCommand.empty():
		return h, fmt.Errorf("Argv, Dir, Env, CommandTimeoutMs and Capability are for shell hooks, not %q", req.Handler)
	case req.Handler != hooks.HandlerHTTP && (req.URL != "" || req.Secret != ""):
		return h, fmt.Errorf("URL and Secret are for http hooks, not %q", req.Handler)
	case req.Handler != hooks.HandlerJob && req.JobType != "":
		return h, fmt.Errorf("JobType is for job hooks, not %q", req.Handler)
	case req.Handler != hooks.HandlerTopic && req.Topic != "":
		return h, fmt.Errorf("Topic is for topic hooks, not %q", req.Handler)
	}
	switch req.Handler {
	case hooks.HandlerHTTP:
		if err := checkHookURL(req.URL); err != nil {
			return h, err
		}
		if req.Secret == "" {
			return h, errors.New("an http hook needs Secret, the key its deliveries are signed with")
		}
		if s.key == nil {
			return h, shellRefusal(http.StatusUnauthorized, "this node has no cluster key (set token_key_file) to seal an http hook's secret with: http hooks are refused")
		}
		sealed, err := token.Seal(s.key, []byte(req.Secret))
		if err != nil {
			return h, fmt.Errorf("seal the secret: %w", err)
		}
		h.URL, h.Secret = req.URL, sealed
	case hooks.HandlerShell:
		grant, err := s.shellPayload(ctx, shellJobType, "", req.ShellCommand)
		var se *shellError
		switch {
		case errors.As(err, &se):
			return h, err
		case err != nil:
			return h, fmt.Errorf("%w: %v", errUnchecked, err)
		}
		h.Grant = grant
	case hooks.HandlerJob:
		h.JobType = req.JobType
	case hooks.HandlerTopic:
		h.Topic = req.Topic
	case "":
		return h, errors.New("Handler is required: http, shell, job or topic")
	default:
		return h, fmt.Errorf("Handler %q: want http, shell, job or topic", req.Handler)
	}
	return h, nil
}

// checkHookURL refuses what is not an absolute http(s) URL with a host.
func checkHookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("URL %q: want an absolute http:// or https:// URL", raw)
	}
	return nil
}

// hookJobBounds converts the delivery jobs' bounds, filling defaults.
func hookJobBounds(req HookRequest) (attempts, timeoutNs, backoffNs, backoffMaxNs int64, err error) {
	const msMax = int64(1<<63-1) / int64(time.Millisecond)
	for _, f := range []struct {
		name string
		v    int64
	}{{"MaxAttempts", req.MaxAttempts}, {"TimeoutMs", req.TimeoutMs}, {"BackoffMs", req.BackoffMs}, {"BackoffMaxMs", req.BackoffMaxMs}} {
		if f.v < 0 || f.v > msMax {
			return 0, 0, 0, 0, fmt.Errorf("%s must not be negative, got %d", f.name, f.v)
		}
	}
	orDefault := func(v, def int64) int64 {
		if v == 0 {
			return def
		}
		return v
	}
	ms := int64(time.Millisecond)
	backoffMs := orDefault(req.BackoffMs, hookBackoffMsDefault)
	return orDefault(req.MaxAttempts, hookAttemptsDefault), orDefault(req.TimeoutMs, hookTimeoutMsDefault) * ms,
		backoffMs * ms, orDefault(req.BackoffMaxMs, max(hookBackoffMaxMsDefault, backoffMs)) * ms, nil
}

// hookEventNames name the event bits as the API spells them, in order.
var hookEventNames = []struct {
	name string
	bit  uint8
}{{"put", hooks.OnPut}, {"delete", hooks.OnDelete}, {"expire", hooks.OnExpire}}

func parseHookEvents(names []string) (uint8, error) {
	var events uint8
	for _, n := range names {
		i := slices.IndexFunc(hookEventNames, func(e struct {
			name string
			bit  uint8
		}) bool {
			return e.name == n
		})
		if i < 0 {
			return 0, fmt.Errorf("event %q: want put, delete or expire", n)
		}
		events |= hookEventNames[i].bit
	}
	return events, nil
}

func hookEvents(events uint8) []string {
	if events == 0 {
		events = hooks.OnPut | hooks.OnDelete
	}
	out := []string{}
	for _, e := range hookEventNames {
		if events&e.bit != 0 {
			out = append(out, e.name)
		}
	}
	return out
}

var hookFilterNames = []string{hooks.FilterAny: "any", hooks.FilterCreated: "created", hooks.FilterUpdated: "updated"}

func parseHookFilter(name string) (uint8, error) {
	if name == "" {
		return hooks.FilterAny, nil
	}
	if i := slices.Index(hookFilterNames, name); i >= 0 {
		return uint8(i), nil
	}
	return 0, fmt.Errorf("Filter %q: want any, created or updated", name)
}

// hookNameCommand builds the command of an operation on one hook.
func hookNameCommand(cmd func(string) module.Command) func(*Server, context.Context, HookRequest) (module.Command, error) {
	return func(_ *Server, _ context.Context, req HookRequest) (module.Command, error) {
		if req.Name == "" {
			return module.Command{}, errors.New("Name is required")
		}
		return cmd(req.Name), nil
	}
}

func hookTriggerCommand(_ *Server, _ context.Context, req HookRequest) (module.Command, error) {
	if req.Name == "" {
		return module.Command{}, errors.New("Name is required")
	}
	return hooks.Trigger(req.Name, []byte(req.Key), []byte(req.Value)), nil
}

func hookListCommand(_ *Server, _ context.Context, req HookRequest) (module.Command, error) {
	if req.Limit < 0 {
		return module.Command{}, fmt.Errorf("Limit must not be negative, got %d", req.Limit)
	}
	return hooks.List(req.After, req.Limit), nil
}

// hookOne shows the hook a command or get answered with.
func (s *Server) hookOne(a hooks.Answer) any {
	if len(a.Hooks) != 1 {
		return HookInfo{}
	}
	return hookInfo(&a.Hooks[0], s.status.Load().Revision, time.Now().UnixNano())
}

// hookPage shows a page of the list.
func (s *Server) hookPage(a hooks.Answer) any {
	rev, nowNs := s.status.Load().Revision, time.Now().UnixNano()
	out := HookList{Hooks: []HookInfo{}, Next: a.Next}
	for i := range a.Hooks {
		out.Hooks = append(out.Hooks, hookInfo(&a.Hooks[i], rev, nowNs))
	}
	return out
}

func hookInfo(h *hooks.Hook, revision, nowNs int64) HookInfo {
	ms := int64(time.Millisecond)
	info := HookInfo{Name: h.Name, Pattern: h.Pattern, Events: hookEvents(h.Events), Filter: hookFilterNames[min(int(h.Filter), len(hookFilterNames)-1)],
		Handler: h.Handler.Kind, URL: h.Handler.URL, SecretSet: len(h.Handler.Secret) > 0, JobType: h.Handler.JobType, Topic: h.Handler.Topic,
		Mode: h.Mode, Parallel: h.Parallel, MaxAttempts: h.AttemptsMax, TimeoutMs: h.TimeoutNs / ms,
		BackoffMs: h.BackoffBaseNs / ms, BackoffMaxMs: h.BackoffMaxNs / ms, RatePerSec: h.RatePerSec, Burst: h.Burst,
		Disabled: h.Disabled, Created: stamp(h.CreatedNs, time.UTC), Stats: HookStats(h.Stats),
		Backlog: h.Backlog, InFlight: h.InFlight, Lagging: h.Lagging, LagFrom: h.LagFrom, LagTo: h.LagTo, OldestRev: h.OldestRev}
	info.LagRevisions, info.LagSeconds = hookLag(h, revision, nowNs)
	if len(h.Handler.Grant) > 0 {
		var g token.Grant
		if json.Unmarshal(h.Handler.Grant, &g) == nil {
			info.Command = &HookCommand{Argv: g.Argv, Dir: g.Dir, Env: g.Env, CommandTimeoutMs: g.TimeoutMs,
				TokenID: g.Claims.ID, TokenExpires: stamp(g.Claims.ExpiresNs, time.UTC)}
		}
	}
	return info
}

// hookLag is how far a hook is behind: the revisions and the time since
// the change of its oldest unfinished delivery (0, 0 with none).
func hookLag(h *hooks.Hook, revision, nowNs int64) (revs int64, seconds float64) {
	if h.OldestRev == 0 {
		return 0, 0
	}
	return max(0, revision-h.OldestRev), max(0, time.Duration(nowNs-h.OldestNs).Seconds())
}

// hookDeliveries answers a hook's delivery jobs: those whose idempotency
// key starts with "NAME:" (a hook's name holds no ':'), by state.
func (s *Server) hookDeliveries(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, true) {
		return
	}
	req, code, err := readHookRequest(r)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	states, after, err := deliveryQuery(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The hook must exist; deliveries of a deleted hook are plain jobs now.
	if _, err := s.Query(r.Context(), hooks.Get(req.Name)); err != nil {
		writeCallError(w, err)
		return
	}
	out := HookDeliveries{Name: req.Name, Jobs: []JobInfo{}}
	prefix := req.Name + ":"
	for _, state := range states {
		got, next, err := s.deliveriesIn(r.Context(), jobStates[state], after, req.Limit, prefix, len(states) > 1)
		if err != nil {
			writeCallError(w, err)
			return
		}
		out.Jobs = append(out.Jobs, got...)
		if len(states) == 1 {
			out.Next = next
		} else if next != 0 {
			out.Truncated = true
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func deliveryQuery(req HookRequest) (states []string, after jobs.ID, err error) {
	switch {
	case req.Name == "":
		return nil, 0, errors.New("Name is required")
	case req.Limit < 0:
		return nil, 0, fmt.Errorf("Limit must not be negative, got %d", req.Limit)
	case req.State == "" && req.After != "":
		return nil, 0, errors.New("After pages through one State: name it")
	case req.State == "":
		return hookDeliveryStates, 0, nil
	}
	if _, ok := jobStates[req.State]; !ok {
		return nil, 0, fmt.Errorf("State must be one of pending, leased, succeeded, failed, dead, cancelled; got %q", req.State)
	}
	if req.After != "" {
		var id uint64
		if _, err := fmt.Sscan(req.After, &id); err != nil {
			return nil, 0, fmt.Errorf("After %q: want the job id Next gave", req.After)
		}
		after = jobs.ID(id)
	}
	return []string{req.State}, after, nil
}

// deliveriesIn reads the hook's jobs in one state: one page, or with fill
// (every state at once) up to limit jobs over at most hookDeliveryPagesMax
// pages. It returns the next page's After (0: no more).
func (s *Server) deliveriesIn(ctx context.Context, state jobs.State, after jobs.ID, limit int, prefix string, fill bool) ([]JobInfo, uint64, error) {
	var out []JobInfo
	for page := 0; page < hookDeliveryPagesMax; page++ {
		n := 0 // the cluster's page size
		if limit > 0 {
			n = limit - len(out)
		}
		v, err := s.Query(ctx, jobs.ListKeyed(state, after, n, prefix))
		if err != nil {
			return nil, 0, err
		}
		a, ok := v.(jobs.Answer)
		if !ok {
			return nil, 0, fmt.Errorf("hook deliveries: the replica answered %T", v)
		}
		for _, j := range a.Jobs {
			out = append(out, jobInfo(j))
		}
		after = a.Next
		if !fill || after == 0 || limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, uint64(after), nil
}
