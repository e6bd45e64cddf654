package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/sched"
)

// The schedules API: each endpoint takes a POST with a ScheduleRequest body
// (get, list and history also a GET with the fields as query parameters)
// and answers with schedules as ScheduleInfo: the definition as given, the
// next tick in the schedule's zone and in UTC, the latest tick, and the
// counts of fired, missed and skipped ticks. Writes (add, pause, resume,
// remove) go through the log under a session; get, list and history are
// served after a ReadIndex. A refusal changed nothing: 400 for a malformed
// request (an invalid cron expression or zone, with the parser's message),
// 401 or 403 for a shell job template without a valid capability token
// (shell.go), 404 for an unknown schedule, 409 for a name
// in use, 413 for a full table or an oversized payload.

// Defaults of a schedule's job template, for fields left out (0).
const (
	scheduleAttemptsDefault  = 3
	scheduleTimeoutMsDefault = 60_000
	scheduleBackoffMsDefault = 1_000
	// scheduleBackoffMaxMsDefault caps retry backoff unless BackoffMaxMs
	// says otherwise (it is raised to BackoffMs when that is larger).
	scheduleBackoffMaxMsDefault = 300_000
	// scheduleCatchUpMaxDefault bounds catch-up run-all when CatchUpMax is 0.
	scheduleCatchUpMaxDefault = 10
	// scheduleBodyBytesMax bounds a schedule request: a payload of the job
	// queue's default limit (64 KiB), escaped, plus short fields.
	scheduleBodyBytesMax = 512 << 10
)

// ScheduleRequest is the body of every schedule endpoint; each reads the
// fields it needs (add all but After and Limit; list After and Limit; the
// rest Name).
type ScheduleRequest struct {
	Name  string
	Cron  string `json:",omitempty"` // 5 fields, or 6 with seconds first; or a macro such as @daily
	Every string `json:",omitempty"` // a Go duration in whole seconds ("90s", "1h"); instead of Cron
	Zone  string `json:",omitempty"` // IANA name cron ticks follow; "" is UTC

	// The job each tick creates.
	Type         string `json:",omitempty"`
	Payload      string `json:",omitempty"`
	Priority     int64  `json:",omitempty"`
	MaxAttempts  int64  `json:",omitempty"`
	TimeoutMs    int64  `json:",omitempty"`
	BackoffMs    int64  `json:",omitempty"`
	BackoffMaxMs int64  `json:",omitempty"`
	ShellCommand        // shell jobs: the command and the token that allows it

	Overlap    string `json:",omitempty"` // skip (default), buffer-one, allow
	CatchUp    string `json:",omitempty"` // skip, run-once (default), run-all
	CatchUpMax int    `json:",omitempty"` // run-all: the most ticks fired at once

	After string `json:",omitempty"` // list: names after this
	Limit int    `json:",omitempty"` // list: at most this many (0: the cluster's page size)

	grant []byte // add of a shell schedule: the payload shellPayload made
}

// ScheduleInfo is one schedule as every endpoint but history shows it.
// Times are RFC 3339; a tick is given in the schedule's zone and in UTC.
type ScheduleInfo struct {
	Name         string
	Cron         string `json:",omitempty"`
	Every        string `json:",omitempty"`
	Zone         string
	Type         string
	Payload      string
	Priority     int64
	MaxAttempts  int64
	TimeoutMs    int64
	BackoffMs    int64
	BackoffMaxMs int64
	Overlap      string
	CatchUp      string
	CatchUpMax   int `json:",omitempty"`

	Paused       bool
	Created      string // UTC
	NextTick     string `json:",omitempty"` // in the zone; absent while paused
	NextTickUTC  string `json:",omitempty"`
	LastTick     string `json:",omitempty"` // the latest tick fired or passed over, in the zone; absent before any
	LastTickUTC  string `json:",omitempty"`
	LastJob      uint64 `json:",omitempty"` // the job the latest created tick made
	Fired        uint64
	Missed       uint64
	MissedCapped bool `json:",omitempty"` // Missed is a lower bound
	Skipped      uint64
}

// ScheduleList answers list: a page of schedules by name.
type ScheduleList struct {
	Schedules []ScheduleInfo
	Next      string `json:",omitempty"` // pass as After for the next page; absent at the end
}

// ScheduleHistory answers history: the schedule's recent fires, oldest first.
type ScheduleHistory struct {
	Name  string
	Fires []ScheduleFire
}

// ScheduleFire is one history entry.
type ScheduleFire struct {
	Tick    string // UTC
	At      string // UTC: when the fire was applied
	LagMs   int64  // At - Tick
	Outcome string // created, buffered, skipped, refused, missed
	Job     uint64 `json:",omitempty"` // created: the tick's job; buffered, skipped: the one still running
	Missed  uint64 `json:",omitempty"` // missed: how many ticks
}

// scheduleEndpoint is one schedule operation: how a request becomes a
// module command, and how the module's answer becomes JSON.
type scheduleEndpoint struct {
	name    string
	write   bool // through the log (Call), else a query after a ReadIndex
	command func(ScheduleRequest) (module.Command, error)
	answer  func(ScheduleRequest, sched.Answer) any
}

var scheduleEndpoints = []scheduleEndpoint{
	{name: "add", write: true, command: addScheduleCommand, answer: scheduleOne},
	{name: "pause", write: true, command: scheduleNameCommand(sched.Pause), answer: scheduleOne},
	{name: "resume", write: true, command: scheduleNameCommand(sched.Resume), answer: scheduleOne},
	{name: "remove", write: true, command: scheduleNameCommand(sched.Remove), answer: scheduleOne},
	{name: "get", command: scheduleNameCommand(sched.Get), answer: scheduleOne},
	{name: "list", command: listSchedulesCommand, answer: scheduleList},
	{name: "history", command: scheduleNameCommand(sched.History), answer: scheduleHistory},
}

func (s *Server) scheduleRoutes(route func(pattern, name string, h http.HandlerFunc)) {
	for _, e := range scheduleEndpoints {
		route("/v1/aspen/schedule/"+e.name, "aspen_schedule_"+e.name, s.scheduleHandler(e))
	}
}

func (s *Server) scheduleHandler(e scheduleEndpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allowMethods(w, r, !e.write) { // queries take a GET with query parameters too
			return
		}
		req, err := readScheduleRequest(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if e.name == "add" && !s.grantOrRefuse(w, r, req.Type, req.Payload, req.ShellCommand, &req.grant) {
			return
		}
		cmd, err := e.command(req)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		answerCall(s, w, r, "schedule "+e.name, e.write, cmd, func(a sched.Answer) any { return e.answer(req, a) })
	}
}

// readScheduleRequest decodes one JSON object strictly, or for a GET the
// query parameters name, after and limit.
func readScheduleRequest(r *http.Request) (ScheduleRequest, error) {
	var req ScheduleRequest
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		req.Name, req.After = q.Get("name"), q.Get("after")
		limit, _, err := uintParam(r, "limit")
		if err != nil || limit > uint64(sched.DefaultLimits().ListMax) {
			return req, fmt.Errorf("query parameter limit=%q: want 0 to %d", q.Get("limit"), sched.DefaultLimits().ListMax)
		}
		req.Limit = int(limit)
		return req, nil
	}
	if err := decodeStrict(r.Body, scheduleBodyBytesMax, &req); err != nil && !errors.Is(err, errEmptyBody) {
		return req, err
	}
	return req, nil
}

// addScheduleCommand checks what only the HTTP layer knows (one of Cron
// and Every, policy names, a shell template's grant) and fills defaults; the
// replica checks the rest (expression, zone, limits) and answers with the
// parser's message.
func addScheduleCommand(req ScheduleRequest) (module.Command, error) {
	if isShell(req.Type) && req.grant == nil {
		return module.Command{}, errShellJob
	}
	if req.Name == "" {
		return module.Command{}, errors.New("Name is required")
	}
	d := sched.Def{Name: req.Name, Zone: req.Zone}
	switch {
	case req.Cron != "" && req.Every != "":
		return module.Command{}, errors.New("give Cron or Every, not both")
	case req.Cron != "":
		d.Spec = req.Cron
	case req.Every != "":
		d.Spec = "every " + req.Every
	default:
		return module.Command{}, errors.New("Cron or Every is required")
	}
	if req.Type == "" {
		return module.Command{}, errors.New("Type is required: the job type each tick submits")
	}
	var err error
	if d.Overlap, err = parseOverlap(req.Overlap); err != nil {
		return module.Command{}, err
	}
	if d.CatchUp, err = parseCatchUp(req.CatchUp); err != nil {
		return module.Command{}, err
	}
	if d.RunAllMax = req.CatchUpMax; d.CatchUp == sched.CatchUpRunAll && d.RunAllMax == 0 {
		d.RunAllMax = scheduleCatchUpMaxDefault
	}
	d.Job, err = jobTemplate(req)
	if err != nil {
		return module.Command{}, err
	}
	return sched.Add(d), nil
}

// jobTemplate builds the job spec of every tick, with defaults for fields
// left out.
func jobTemplate(req ScheduleRequest) (jobs.Spec, error) {
	orDefault := func(v, def int64) int64 {
		if v == 0 {
			return def
		}
		return v
	}
	const msMax = int64(1<<63-1) / int64(time.Millisecond)
	for _, f := range []struct {
		name string
		ms   int64
	}{{"TimeoutMs", req.TimeoutMs}, {"BackoffMs", req.BackoffMs}, {"BackoffMaxMs", req.BackoffMaxMs}} {
		if f.ms < 0 || f.ms > msMax {
			return jobs.Spec{}, fmt.Errorf("%s must be a non-negative number of milliseconds, got %d", f.name, f.ms)
		}
	}
	backoffMs := orDefault(req.BackoffMs, scheduleBackoffMsDefault)
	backoffMaxMs := orDefault(req.BackoffMaxMs, max(scheduleBackoffMaxMsDefault, backoffMs))
	ms := int64(time.Millisecond)
	payload := []byte(req.Payload)
	if req.grant != nil {
		payload = req.grant
	}
	return jobs.Spec{Type: req.Type, Payload: payload, Priority: req.Priority,
		AttemptsMax:   orDefault(req.MaxAttempts, scheduleAttemptsDefault),
		TimeoutNs:     orDefault(req.TimeoutMs, scheduleTimeoutMsDefault) * ms,
		BackoffBaseNs: backoffMs * ms, BackoffMaxNs: backoffMaxMs * ms}, nil
}

func parseOverlap(s string) (sched.Overlap, error) {
	for _, o := range []sched.Overlap{sched.OverlapSkip, sched.OverlapBufferOne, sched.OverlapAllow} {
		if s == o.String() {
			return o, nil
		}
	}
	if s == "" {
		return sched.OverlapSkip, nil
	}
	return 0, fmt.Errorf("Overlap %q: want skip, buffer-one or allow", s)
}

func parseCatchUp(s string) (sched.CatchUp, error) {
	for _, c := range []sched.CatchUp{sched.CatchUpSkip, sched.CatchUpRunOnce, sched.CatchUpRunAll} {
		if s == c.String() {
			return c, nil
		}
	}
	if s == "" {
		return sched.CatchUpRunOnce, nil
	}
	return 0, fmt.Errorf("CatchUp %q: want skip, run-once or run-all", s)
}

// scheduleNameCommand builds the command of an operation on one schedule.
func scheduleNameCommand(cmd func(string) module.Command) func(ScheduleRequest) (module.Command, error) {
	return func(req ScheduleRequest) (module.Command, error) {
		if req.Name == "" {
			return module.Command{}, errors.New("Name is required")
		}
		return cmd(req.Name), nil
	}
}

func listSchedulesCommand(req ScheduleRequest) (module.Command, error) {
	if req.Limit < 0 {
		return module.Command{}, fmt.Errorf("Limit must not be negative, got %d", req.Limit)
	}
	return sched.List(req.After, req.Limit), nil
}

func scheduleOne(_ ScheduleRequest, a sched.Answer) any { return scheduleInfo(a.Schedule) }

func scheduleList(_ ScheduleRequest, a sched.Answer) any {
	out := ScheduleList{Schedules: []ScheduleInfo{}, Next: a.Next}
	for _, s := range a.Schedules {
		out.Schedules = append(out.Schedules, scheduleInfo(s))
	}
	return out
}

// scheduleHistory gives ticks in UTC: the history query does not name the
// schedule's zone (get does).
func scheduleHistory(req ScheduleRequest, a sched.Answer) any {
	out := ScheduleHistory{Name: req.Name, Fires: []ScheduleFire{}}
	for _, f := range a.History {
		out.Fires = append(out.Fires, ScheduleFire{Tick: stamp(f.TickNs, time.UTC),
			At: stamp(f.AtNs, time.UTC), LagMs: (f.AtNs - f.TickNs) / int64(time.Millisecond),
			Outcome: f.Outcome.String(), Job: uint64(f.Job), Missed: f.Missed})
	}
	return out
}

func scheduleInfo(s sched.Schedule) ScheduleInfo {
	loc := zoneOf(s.Zone)
	ms := int64(time.Millisecond)
	info := ScheduleInfo{Name: s.Name, Zone: s.Zone, Type: s.Job.Type, Payload: string(s.Job.Payload),
		Priority: s.Job.Priority, MaxAttempts: s.Job.AttemptsMax, TimeoutMs: s.Job.TimeoutNs / ms,
		BackoffMs: s.Job.BackoffBaseNs / ms, BackoffMaxMs: s.Job.BackoffMaxNs / ms,
		Overlap: s.Overlap.String(), CatchUp: s.CatchUp.String(), CatchUpMax: s.RunAllMax,
		Paused: s.Paused, Created: stamp(s.CreatedNs, time.UTC), LastJob: uint64(s.LastJob),
		Fired: s.Fired, Missed: s.Missed, MissedCapped: s.MissedCapped, Skipped: s.Skipped}
	info.Cron, info.Every = splitSpec(s.Spec)
	if !s.Paused && s.NextTickNs != 0 {
		info.NextTick, info.NextTickUTC = stamp(s.NextTickNs, loc), stamp(s.NextTickNs, time.UTC)
	}
	if s.Fired+s.Missed+s.Skipped > 0 {
		info.LastTick, info.LastTickUTC = stamp(s.LastTickNs, loc), stamp(s.LastTickNs, time.UTC)
	}
	return info
}

// splitSpec tells an interval ("every 90s", "@every 90s") from a cron
// expression.
func splitSpec(spec string) (cron, every string) {
	lower := strings.ToLower(strings.TrimSpace(spec))
	for _, p := range []string{"every ", "@every "} {
		if strings.HasPrefix(lower, p) {
			return "", strings.TrimSpace(strings.TrimSpace(spec)[len(p):])
		}
	}
	return spec, ""
}

// zoneOf loads a schedule's zone from the embedded database; the replica
// accepted it, so failing here is a broken build, shown as UTC.
func zoneOf(name string) *time.Location {
	loc, err := sched.LoadZone(name)
	if err != nil {
		return time.UTC
	}
	return loc
}

func stamp(ns int64, loc *time.Location) string {
	return time.Unix(0, ns).In(loc).Format(time.RFC3339)
}
