package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/aspen-db/aspen/runtime/worker/hooksig"
)

// HookHTTPType is the job type of http hooks' deliveries.
const HookHTTPType = hooks.JobHTTP

// HookHTTPHandler delivers the events of http hooks: one POST of the event
// as JSON per attempt, signed with the hook's secret (package hooksig has
// the scheme). The receiver's answer decides the attempt:
//
//   - 2xx: delivered, the job completes;
//   - 408, 429, 5xx, a network error or no answer in time: the attempt
//     fails and is retried after the job's backoff, until its attempts run
//     out and it goes dead;
//   - any other answer (4xx, and 3xx: redirects are not followed, as a
//     signed POST must not be turned into a GET elsewhere): the delivery
//     fails for good, with no retry.
//
// A payload whose secret does not open under this worker's cluster key
// fails for good too: the worker signs only with secrets a node sealed.
type HookHTTPHandler struct {
	key     []byte
	client  *http.Client
	log     *slog.Logger
	metrics *Metrics
}

// Bounds of a delivery, each with its reason.
const (
	// hookAnswerBytesMax is what is kept of a receiver's answer, for the
	// job's result or failure reason: a receiver says why in a line, not
	// in a page.
	hookAnswerBytesMax = 4 << 10
	// hookDrainBytesMax is read past it and thrown away, so that a short
	// answer leaves its connection reusable; a longer one closes it.
	hookDrainBytesMax = 64 << 10
	// hookTimeoutMin keeps a tiny lease from making every attempt time out
	// before a local receiver could answer.
	hookTimeoutMin = 100 * time.Millisecond
	// hookIdleConnsPerHost lets a pool's concurrent deliveries to one
	// receiver reuse their connections.
	hookIdleConnsPerHost = 64
)

// NewHookHTTPHandler makes the handler; key is the cluster key, which
// opens the hooks' sealed secrets.
func NewHookHTTPHandler(key []byte, log *slog.Logger, m *Metrics) (*HookHTTPHandler, error) {
	if len(key) != token.KeyBytes {
		return nil, errors.New("worker: an http hook worker needs the cluster key (key_file) to open the hooks' secrets")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = hookIdleConnsPerHost
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &HookHTTPHandler{key: key, client: client, log: log, metrics: m}, nil
}

// hookTimeout is one attempt's bound: half the job's lease timeout, so
// that an attempt that gets no answer ends, and is reported, well before
// the pool stops a job whose lease it could not renew (at three quarters).
func hookTimeout(job server.JobInfo) time.Duration {
	return max(time.Duration(job.TimeoutMs)*time.Millisecond/2, hookTimeoutMin)
}

// Run sends the delivery and judges the answer.
func (h *HookHTTPHandler) Run(ctx context.Context, job server.JobInfo) Outcome {
	p, err := decodeHookPayload(job.Payload)
	if err != nil {
		return h.refuse(job, err.Error())
	}
	secret, err := token.Open(h.key, p.Secret)
	if err != nil {
		return h.refuse(job, fmt.Sprintf("the hook's secret: %v", err))
	}
	body, err := json.Marshal(p.Event)
	if err != nil { // strings, ints and bytes: cannot fail
		return h.refuse(job, "encode the event: "+err.Error())
	}
	actx, cancel := context.WithTimeout(ctx, hookTimeout(job))
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return h.refuse(job, fmt.Sprintf("url %q: %v", p.URL, err))
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "aspen-hook/1")
	req.Header.Set(hooksig.HeaderHook, p.Event.Hook)
	req.Header.Set(hooksig.HeaderIdempotencyKey, p.Event.IdempotencyKey)
	req.Header.Set(hooksig.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(hooksig.HeaderSignature, hooksig.Sign(secret, ts, body))
	req.Header.Set(hooksig.HeaderAttempt, strconv.FormatInt(job.Attempts, 10))
	start := time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		h.metrics.hookAnswer("network")
		if actx.Err() != nil && ctx.Err() == nil {
			return Outcome{Reason: fmt.Sprintf("POST %s: no answer within %v", p.URL, hookTimeout(job)), Retryable: true}
		}
		return Outcome{Reason: fmt.Sprintf("POST %s: %v", p.URL, err), Retryable: true}
	}
	answer := readAnswer(resp)
	return h.judge(p.URL, resp.StatusCode, answer, time.Since(start))
}

// readAnswer keeps the head of the answer's body and drains a little more.
func readAnswer(resp *http.Response) string {
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, hookAnswerBytesMax))
	_, _ = io.CopyN(io.Discard, resp.Body, hookDrainBytesMax)
	return string(head)
}

// judge turns the receiver's status into the attempt's outcome.
func (h *HookHTTPHandler) judge(url string, code int, answer string, took time.Duration) Outcome {
	detail := fmt.Sprintf(`{"Status":%d,"DurationMs":%d}`, code, took.Milliseconds())
	why := fmt.Sprintf("POST %s: %d %s: %s", url, code, http.StatusText(code), answer)
	switch {
	case code >= 200 && code < 300:
		h.metrics.hookAnswer("2xx")
		return Outcome{Complete: true, Result: server.JobResult{Output: answer, Detail: detail}}
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		h.metrics.hookAnswer(strconv.Itoa(code/100) + "xx")
		return Outcome{Reason: why, Retryable: true}
	}
	h.metrics.hookAnswer(strconv.Itoa(code/100) + "xx")
	return Outcome{Reason: why}
}

// refuse fails a delivery for good: another attempt would be refused the
// same way.
func (h *HookHTTPHandler) refuse(job server.JobInfo, why string) Outcome {
	h.metrics.hookAnswer("refused")
	h.log.Warn("hook delivery refused", "job", job.ID, "reason", why)
	return Outcome{Reason: "refused: " + why}
}
