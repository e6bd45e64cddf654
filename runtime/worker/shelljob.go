package worker

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aspen-db/aspen/core/audit"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/aspen-db/aspen/runtime/worker/shell"
)

// ShellHandler runs shell jobs. Before anything starts it checks, in turn:
// the grant's MAC under the cluster key (a node verified a token for
// exactly this command), the token's expiry on this worker's clock, the
// token's revocation on the cluster, the token's scope, and this worker's
// own policy (shell.Config: allowlists, roots, environment). Every command
// run or refused leaves an audit record.
type ShellHandler struct {
	name      string
	key       []byte
	exec      *shell.Executor
	client    *Client
	outputMax int
	log       *slog.Logger
	metrics   *Metrics
}

// auditPatience bounds the retries of an audit append. A command that ran
// is reported only after its record is appended, so a job whose record
// could not be written is retried (and its second run audited) rather than
// completed without a record.
const auditPatience = 30 * time.Second

// NewShellHandler makes the handler for worker name. outputMax is the
// most output a job result may hold (the cluster's limit).
func NewShellHandler(name string, key []byte, cfg shell.Config, client *Client, outputMax int, log *slog.Logger, m *Metrics) (*ShellHandler, error) {
	if len(key) != token.KeyBytes {
		return nil, errors.New("worker: a shell worker needs the cluster key (key_file) to check grants and sign audit records")
	}
	ex, err := shell.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("worker: shell policy: %w", err)
	}
	return &ShellHandler{name: name, key: key, exec: ex, client: client, outputMax: outputMax, log: log, metrics: m}, nil
}

// Run checks the job's grant and runs its command.
func (h *ShellHandler) Run(ctx context.Context, job server.JobInfo) Outcome {
	return h.runGrant(ctx, job, []byte(job.Payload), feed{})
}

// feed is what the worker itself hands a granted command besides what the
// grant says: a hook delivery's event on stdin and in variables
// (hookshell.go). A plain shell job has none.
type feed struct {
	stdin []byte
	env   map[string]string
}

// runGrant checks grant, the payload a node made from a capability token,
// and runs its command with f: the checks, audit and outcome every granted
// command gets, whatever job carried it.
func (h *ShellHandler) runGrant(ctx context.Context, job server.JobInfo, grant []byte, f feed) Outcome {
	start := time.Now()
	g, err := token.CheckGrant(h.key, grant, start.UnixNano(), nil)
	if err == nil {
		var revoked bool
		if revoked, err = h.client.Revoked(ctx, g.Claims.ID); err != nil {
			// Unchecked is not run: the attempt fails and is retried.
			return Outcome{Reason: fmt.Sprintf("could not check token %s against revocations: %v", g.Claims.ID, err), Retryable: true}
		}
		if revoked {
			err = fmt.Errorf("%w: token %s", token.ErrRevoked, g.Claims.ID)
		}
	}
	if err != nil {
		return h.refuse(ctx, job, g, start, err)
	}
	res, err := h.exec.Run(ctx, shell.Request{Argv: g.Argv, Dir: g.Dir, Env: g.Env, Timeout: time.Duration(g.TimeoutMs) * time.Millisecond,
		Stdin: f.stdin, WorkerEnv: f.env})
	switch {
	case errors.Is(err, shell.ErrRefused):
		return h.refuse(ctx, job, g, start, err)
	case err != nil: // could not start (or wait for) it
		h.metrics.execution("start_failed")
		h.audit(ctx, job, g, audit.Exec{StartNs: start.UnixNano(), EndNs: time.Now().UnixNano(), Exit: -1, Refused: err.Error()})
		return Outcome{Reason: err.Error()}
	}
	output := combineOutput(res, h.outputMax)
	e := audit.Exec{StartNs: start.UnixNano(), EndNs: start.Add(res.Duration).UnixNano(), Exit: int64(res.ExitCode), OutputSHA: digest(output)}
	if res.Signal != 0 {
		e.Signal = res.Signal.String()
	}
	h.metrics.execution(execStatus(res))
	if err := h.audit(ctx, job, g, e); err != nil {
		return Outcome{Reason: "ran, but its audit record could not be appended: " + err.Error(), Retryable: true}
	}
	detail := resultDetail(res)
	if res.ExitCode == 0 && !res.TimedOut && res.Signal == 0 {
		return Outcome{Complete: true, Result: server.JobResult{ExitCode: 0, Output: output, Detail: detail}}
	}
	return Outcome{Reason: failure(res, detail), Retryable: true}
}

// refuse audits a command that was not started and fails the job for
// good: retrying the same grant cannot succeed.
func (h *ShellHandler) refuse(ctx context.Context, job server.JobInfo, g token.Grant, start time.Time, why error) Outcome {
	h.metrics.execution("refused")
	reason := why.Error()
	if !errors.Is(why, shell.ErrRefused) { // the executor's refusals say so already
		reason = "refused: " + reason
	}
	h.audit(ctx, job, g, audit.Exec{StartNs: start.UnixNano(), EndNs: time.Now().UnixNano(), Exit: -1, Refused: reason})
	h.log.Warn("command refused", "job", job.ID, "type", job.Type, "reason", reason)
	return Outcome{Reason: reason}
}

// audit appends e, filled in from the grant, retrying for auditPatience.
func (h *ShellHandler) audit(ctx context.Context, job server.JobInfo, g token.Grant, e audit.Exec) error {
	e.TokenID, e.Subject, e.Worker, e.Argv, e.Dir = g.Claims.ID, g.Claims.Subject, h.name, g.Argv, g.Dir
	if len(e.Argv) == 0 { // a payload that is no grant at all: record what job it was
		e.Argv = []string{fmt.Sprintf("(job %d: no command)", job.ID)}
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditPatience)
	defer cancel()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, pollErrorMax) {
		err := h.client.AppendAudit(actx, e)
		var se *StatusError
		if err == nil || errors.As(err, &se) && se.Code < 500 {
			if err != nil {
				h.log.Error("audit record refused", "job", job.ID, "err", err)
			}
			return err
		}
		select {
		case <-time.After(wait):
		case <-actx.Done():
			h.log.Error("audit record not appended", "job", job.ID, "err", err)
			return err
		}
	}
}

// combineOutput is stdout, then stderr after a marker line, cut to max
// bytes keeping head and tail (the executor already kept head and tail of
// each stream).
func combineOutput(res shell.Result, max int) string {
	out := res.Stdout
	if res.Stderr != "" {
		out += "\n--- stderr ---\n" + res.Stderr
	}
	if len(out) <= max {
		return out
	}
	const mark = "\n[... output cut to fit the job result ...]\n"
	half := (max - len(mark)) / 2
	head, tail := half, len(out)-half
	for head > 0 && !utf8RuneStart(out[head]) {
		head--
	}
	for tail < len(out) && !utf8RuneStart(out[tail]) {
		tail++
	}
	return out[:head] + mark + out[tail:]
}

func digest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

func execStatus(res shell.Result) string {
	switch {
	case res.TimedOut:
		return "timeout"
	case res.Signal != 0:
		return "signal"
	case res.ExitCode == 0:
		return "exit_0"
	}
	return "exit_nonzero"
}

// resultDetail is what a result holds besides exit code and output: how
// it ended and what it used, as JSON.
func resultDetail(res shell.Result) string {
	d := struct {
		Signal                            string `json:",omitempty"`
		TimedOut, Cancelled, OutputCutOff bool   `json:",omitempty"`
		DurationMs                        int64
		StdoutBytes, StderrBytes          int64
		StdoutTruncated, StderrTruncated  bool `json:",omitempty"`
		UserCPUMs, SysCPUMs               int64
		MaxRSSBytes                       int64
	}{TimedOut: res.TimedOut, Cancelled: res.Cancelled, OutputCutOff: res.OutputCutOff, DurationMs: res.Duration.Milliseconds(),
		StdoutBytes: res.StdoutBytes, StderrBytes: res.StderrBytes, StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated,
		UserCPUMs: res.UserCPU.Milliseconds(), SysCPUMs: res.SysCPU.Milliseconds(), MaxRSSBytes: res.MaxRSSBytes}
	if res.Signal != 0 {
		d.Signal = res.Signal.String()
	}
	b, _ := json.Marshal(d) // plain fields: cannot fail
	return string(b)
}

// failure says why a command that ran failed, with the tail of its stderr.
func failure(res shell.Result, detail string) string {
	var why string
	switch {
	case res.TimedOut:
		why = fmt.Sprintf("timed out after %v", res.Duration.Round(time.Millisecond))
	case res.Signal != 0:
		why = "killed by signal " + res.Signal.String()
	default:
		why = fmt.Sprintf("exit status %d", res.ExitCode)
	}
	why += "; " + detail
	if res.Stderr != "" {
		tail := res.Stderr
		if n := 300; len(tail) > n {
			tail = tail[len(tail)-n:]
		}
		why += "; stderr: " + tail
	}
	return why
}
