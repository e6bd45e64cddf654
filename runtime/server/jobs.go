package server

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
)

// The job API: the job queue (core/jobs) over JSON. Each endpoint takes a
// POST with a JobRequest body (dead/list also a GET, without one) and reads
// the fields it needs. Writes (submit, lease, heartbeat, complete, fail,
// cancel, dead/retry, dead/drop) go through the log under a session like KV
// writes; get, list and dead/list are served after a ReadIndex. A refusal
// changed nothing: 400 for a malformed request, 401 or 403 for a shell job
// without a valid capability token (see shell.go), 404 for
// an unknown job, 409 for a job not in a state for the call (a stale token
// among them: the job is someone else's now), 413 for a payload, output or
// text over the module's limit, a full table, or a body over
// jobBodyBytesMax. Nothing is cut to fit: a worker keeps the head and tail
// of a long output itself.
//
// Payload and Output are JSON strings, stored as their UTF-8 bytes; a client
// with binary data encodes it (base64, say) inside the string. Invalid
// UTF-8 in a body reads as U+FFFD, as encoding/json does everywhere. Times
// are Unix milliseconds of replicated time (the leaders' clocks), durations
// milliseconds.
//
// POST /v1/aspen/job/complete/batch completes several leased jobs in one
// write (a worker that leased several with Max): a JobCompleteBatch body of
// at most the module's jobs per lease (16 by default) items, each the
// fields of a complete. Each item is judged alone under complete's fencing
// rules and answered alone in JobBatchAnswer, in order, with the status a
// single complete would have got (200, 404, 409): a stale token refuses its
// own item only. The batch is refused whole (400, 413), with nothing
// applied, only when malformed or over a limit (jobbatch.go).
//
// A shell job (Type "shell") names its command in the ShellCommand fields
// and carries a capability token in Capability; its payload is the grant
// the node makes from them (shell.go), never the token.

// JobRequest is the body of every job endpoint; each reads the fields it
// needs.
type JobRequest struct {
	// submit
	Type          string
	Payload       string // UTF-8 text, stored as its bytes
	Priority      int64  // higher leases first
	MaxAttempts   int64  // 0: jobAttemptsDefault
	BackoffBaseMs int64  // the delay before the first retry, doubled for each later one; 0: retry at once
	BackoffMaxMs  int64  // the cap on that delay
	TimeoutMs     int64  // a lease not heartbeaten for this long expires; 0: jobTimeoutMsDefault
	Key           string // idempotency key: a second submit with it answers the first job
	ShellCommand         // shell jobs: the command and the token that allows it
	// lease
	Worker string
	Types  []string
	Max    int // jobs wanted; 0: one
	// heartbeat, complete, fail, cancel, get, dead/retry, dead/drop
	ID    uint64
	Token uint64 // heartbeat, complete, fail: the token the lease gave
	// complete
	ExitCode int64
	Output   string // at most the module's output cap, else 413
	Detail   string
	// fail
	Reason    string
	Retryable bool
	// list, dead/list
	State string // list: pending, leased, succeeded, failed, dead or cancelled
	After uint64 // the Next of the page before
	Limit int    // 0: the module's page size

	grant []byte // submit of a shell job: the payload shellPayload made
}

// JobInfo answers every endpoint that names one job, and is one job in a
// lease or a list (lists leave Payload and Result.Output out).
type JobInfo struct {
	ID            uint64
	Type          string
	Payload       string `json:",omitempty"`
	Priority      int64
	MaxAttempts   int64
	BackoffBaseMs int64
	BackoffMaxMs  int64
	TimeoutMs     int64
	Key           string `json:",omitempty"`
	State         string
	Attempts      int64      // leases given so far (an expired one counts)
	SubmittedMs   int64      // Unix ms, replicated time
	NotBeforeMs   int64      `json:",omitempty"` // pending: not leased before this (a retry's backoff)
	Token         uint64     `json:",omitempty"` // the last lease's fencing token
	Worker        string     `json:",omitempty"` // who holds or held the last lease
	DeadlineMs    int64      `json:",omitempty"` // leased: the lease expires then
	FinishedMs    int64      `json:",omitempty"`
	Result        *JobResult `json:",omitempty"` // succeeded jobs
	Reason        string     `json:",omitempty"` // why the last attempt failed
	Existing      bool       `json:",omitempty"` // submit: the key named a job already held
}

// JobResult is what the worker that completed a job reported.
type JobResult struct {
	ExitCode int64
	Output   string
	Detail   string `json:",omitempty"`
}

// JobLeased answers lease: the jobs leased, each with its payload and token;
// none when no job of the types asked is due.
type JobLeased struct {
	Jobs []JobInfo
}

// JobList answers list and dead/list: a page by id; pass Next as After for
// the next one (0: this was the last).
type JobList struct {
	Jobs []JobInfo
	Next uint64
}

// jobEndpoint is one job operation: how a request becomes a module command,
// and how the module's answer becomes JSON.
type jobEndpoint struct {
	name    string
	write   bool // through the log (Call), else a query after a ReadIndex
	get     bool // also served on GET, for endpoints that need no body
	shell   bool // the request may name a shell command (submit)
	command func(JobRequest) (module.Command, error)
	answer  func(jobs.Answer) any
}

var jobEndpoints = []jobEndpoint{
	{name: "submit", write: true, shell: true, command: submitCommand, answer: jobAnswer},
	{name: "lease", write: true, command: jobLeaseCommand, answer: jobLeased},
	{name: "heartbeat", write: true, command: tokenCommand(jobHeartbeat), answer: jobAnswer},
	{name: "complete", write: true, command: tokenCommand(jobComplete), answer: jobAnswer},
	{name: "fail", write: true, command: tokenCommand(jobFail), answer: jobAnswer},
	{name: "cancel", write: true, command: jobIDCommand(jobs.Cancel), answer: jobAnswer},
	{name: "get", command: jobIDCommand(jobs.Get), answer: jobAnswer},
	{name: "list", command: jobListCommand, answer: jobList},
	{name: "dead/list", get: true, command: deadListCommand, answer: jobList},
	{name: "dead/retry", write: true, command: jobIDCommand(jobs.RetryDead), answer: jobAnswer},
	{name: "dead/drop", write: true, command: jobIDCommand(jobs.DropDead), answer: jobAnswer},
}

func (s *Server) jobRoutes(route func(pattern, name string, h http.HandlerFunc)) {
	for _, e := range jobEndpoints {
		route("/v1/aspen/job/"+e.name, "aspen_job_"+strings.ReplaceAll(e.name, "/", "_"), s.jobHandler(e))
	}
}

func (s *Server) jobHandler(e jobEndpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allowMethods(w, r, e.get) {
			return
		}
		req, code, err := readJobRequest(r)
		if err != nil {
			writeError(w, code, err.Error())
			return
		}
		if e.shell && !s.grantOrRefuse(w, r, req.Type, req.Payload, req.ShellCommand, &req.grant) {
			return
		}
		cmd, err := e.command(req)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		answerCall(s, w, r, "job "+e.name, e.write, cmd, e.answer)
	}
}

// readJobRequest decodes one JSON object, strictly: a misspelt field would
// otherwise read as absent. No body at all is a request with every field
// absent. A body over jobBodyBytesMax is refused whole (413), never read in
// part. On error it returns the status to answer with.
func readJobRequest(r *http.Request) (JobRequest, int, error) {
	var req JobRequest
	code, err := readStrictJSON(r, &req, "JobRequest", jobBodyBytesMax)
	return req, code, err
}

// submitCommand builds a submit; a shell job only with the grant
// shellPayload made, so no request reaches the log as a shell job unchecked.
func submitCommand(req JobRequest) (module.Command, error) {
	payload := []byte(req.Payload)
	if isShell(req.Type) {
		if req.grant == nil {
			return module.Command{}, errShellJob
		}
		payload = req.grant
	}
	if req.MaxAttempts == 0 {
		req.MaxAttempts = jobAttemptsDefault
	}
	if req.TimeoutMs == 0 {
		req.TimeoutMs = jobTimeoutMsDefault
	}
	// Ranges are the replica's to refuse (they are its configuration); only
	// what is negative or would overflow nanoseconds is caught here.
	spec := jobs.Spec{Type: req.Type, Payload: payload, Priority: req.Priority, AttemptsMax: req.MaxAttempts, Key: req.Key}
	for _, d := range []struct {
		name string
		ms   int64
		ns   *int64
	}{
		{"TimeoutMs", req.TimeoutMs, &spec.TimeoutNs},
		{"BackoffBaseMs", req.BackoffBaseMs, &spec.BackoffBaseNs},
		{"BackoffMaxMs", req.BackoffMaxMs, &spec.BackoffMaxNs},
	} {
		if d.ms < 0 || d.ms > math.MaxInt64/int64(time.Millisecond) {
			return module.Command{}, fmt.Errorf("%s must be a non-negative number of milliseconds, got %d", d.name, d.ms)
		}
		*d.ns = d.ms * int64(time.Millisecond)
	}
	return jobs.Submit(spec), nil
}

func jobLeaseCommand(req JobRequest) (module.Command, error) {
	if req.Max < 0 {
		return module.Command{}, fmt.Errorf("Max must be a positive number of jobs, got %d", req.Max)
	}
	if req.Max == 0 {
		req.Max = 1
	}
	return jobs.Lease(req.Worker, req.Types, req.Max), nil
}

// jobIDCommand builds the command of a call that names one job.
func jobIDCommand(cmd func(jobs.ID) module.Command) func(JobRequest) (module.Command, error) {
	return func(req JobRequest) (module.Command, error) {
		if req.ID == 0 {
			return module.Command{}, errors.New("ID must be a positive job id, got 0")
		}
		return cmd(jobs.ID(req.ID)), nil
	}
}

// tokenCommand builds the command of a worker's call about a job it leased.
func tokenCommand(cmd func(JobRequest) module.Command) func(JobRequest) (module.Command, error) {
	return func(req JobRequest) (module.Command, error) {
		switch {
		case req.ID == 0:
			return module.Command{}, errors.New("ID must be a positive job id, got 0")
		case req.Token == 0:
			return module.Command{}, errors.New("Token must be the token the lease gave, got 0")
		}
		return cmd(req), nil
	}
}

func jobHeartbeat(req JobRequest) module.Command {
	return jobs.Heartbeat(jobs.ID(req.ID), req.Token)
}

func jobComplete(req JobRequest) module.Command {
	return jobs.Complete(jobs.ID(req.ID), req.Token, jobs.Result{ExitCode: req.ExitCode, Output: []byte(req.Output), Detail: req.Detail})
}

func jobFail(req JobRequest) module.Command {
	return jobs.Fail(jobs.ID(req.ID), req.Token, req.Reason, req.Retryable)
}

// jobStates names the states as the API spells them.
var jobStates = func() map[string]jobs.State {
	m := map[string]jobs.State{}
	for s := jobs.Pending; s <= jobs.Cancelled; s++ {
		m[s.String()] = s
	}
	return m
}()

func jobListCommand(req JobRequest) (module.Command, error) {
	state, ok := jobStates[req.State]
	if !ok {
		return module.Command{}, fmt.Errorf("State must be one of pending, leased, succeeded, failed, dead, cancelled; got %q", req.State)
	}
	if req.Limit < 0 {
		return module.Command{}, fmt.Errorf("Limit must not be negative, got %d", req.Limit)
	}
	return jobs.List(state, jobs.ID(req.After), req.Limit), nil
}

func deadListCommand(req JobRequest) (module.Command, error) {
	if req.Limit < 0 {
		return module.Command{}, fmt.Errorf("Limit must not be negative, got %d", req.Limit)
	}
	return jobs.ListDead(jobs.ID(req.After), req.Limit), nil
}

func jobAnswer(a jobs.Answer) any {
	info := jobInfo(a.Job)
	info.Existing = a.Existing
	return info
}

func jobLeased(a jobs.Answer) any {
	out := JobLeased{Jobs: []JobInfo{}}
	for _, j := range a.Jobs {
		out.Jobs = append(out.Jobs, jobInfo(j))
	}
	return out
}

func jobList(a jobs.Answer) any {
	out := JobList{Jobs: []JobInfo{}, Next: uint64(a.Next)}
	for _, j := range a.Jobs {
		out.Jobs = append(out.Jobs, jobInfo(j))
	}
	return out
}

func jobInfo(j jobs.Job) JobInfo {
	ms := func(ns int64) int64 { return ns / int64(time.Millisecond) }
	info := JobInfo{
		ID: uint64(j.ID), Type: j.Type, Payload: string(j.Payload), Priority: j.Priority, MaxAttempts: j.AttemptsMax,
		BackoffBaseMs: ms(j.BackoffBaseNs), BackoffMaxMs: ms(j.BackoffMaxNs), TimeoutMs: ms(j.TimeoutNs), Key: j.Key,
		State: j.State.String(), Attempts: j.Attempts, SubmittedMs: ms(j.SubmittedNs), NotBeforeMs: ms(j.NotBeforeNs),
		Token: j.Token, Worker: j.Worker, DeadlineMs: ms(j.DeadlineNs), FinishedMs: ms(j.FinishedNs), Reason: j.Reason,
	}
	if j.State == jobs.Succeeded {
		info.Result = &JobResult{ExitCode: j.Result.ExitCode, Output: string(j.Result.Output), Detail: j.Result.Detail}
	}
	return info
}
