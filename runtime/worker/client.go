package worker

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aspen-db/aspen/core/audit"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/runtime/server"
)

// Client speaks the job lease protocol (runtime/server/jobs.go) to a
// cluster over HTTP: the same calls for the pool inside a node and for a
// standalone worker. It tries its addresses in turn, moving to the next
// when one cannot be reached or has no quorum to offer.
type Client struct {
	addrs []string
	http  *http.Client
	key   []byte // the cluster key: signs audit appends (nil: none)

	mu   sync.Mutex
	next int // the address tried first
}

// ErrLost is a refusal that says the job is no longer this worker's: a
// stale token (409) or a job gone (404).
var ErrLost = errors.New("the job is no longer this worker's")

// StatusError is an answer the cluster gave that is not 200.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return fmt.Sprintf("server answered %d: %s", e.Code, e.Msg) }

// Is makes 409 and 404 match ErrLost.
func (e *StatusError) Is(target error) bool {
	return target == ErrLost && (e.Code == http.StatusConflict || e.Code == http.StatusNotFound)
}

// requestTimeoutMax bounds one call, so a node that accepts and then hangs
// cannot hold a heartbeat past the lease.
const requestTimeoutMax = 5 * time.Second

// NewClient makes a client for the nodes at addrs (host:port or URLs).
func NewClient(addrs []string, key []byte) (*Client, error) {
	if len(addrs) == 0 {
		return nil, errors.New("worker: no node address")
	}
	c := &Client{http: &http.Client{Timeout: requestTimeoutMax}, key: key}
	for _, a := range addrs {
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		u, err := url.Parse(a)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("worker: node address %q: want host:port or http://host:port", a)
		}
		c.addrs = append(c.addrs, strings.TrimRight(u.String(), "/"))
	}
	return c, nil
}

// Lease asks for at most max jobs of types.
func (c *Client) Lease(ctx context.Context, worker string, types []string, max int) ([]server.JobInfo, error) {
	var l server.JobLeased
	err := c.post(ctx, "/v1/aspen/job/lease", server.JobRequest{Worker: worker, Types: types, Max: max}, &l)
	return l.Jobs, err
}

// Heartbeat extends the lease of job id held under tok.
func (c *Client) Heartbeat(ctx context.Context, id, tok uint64) error {
	return c.post(ctx, "/v1/aspen/job/heartbeat", server.JobRequest{ID: id, Token: tok}, nil)
}

// Complete reports job id done.
func (c *Client) Complete(ctx context.Context, id, tok uint64, r server.JobResult) error {
	return c.post(ctx, "/v1/aspen/job/complete", server.JobRequest{ID: id, Token: tok, ExitCode: r.ExitCode, Output: r.Output, Detail: r.Detail}, nil)
}

// Fail reports an attempt at job id failed.
func (c *Client) Fail(ctx context.Context, id, tok uint64, reason string, retryable bool) error {
	return c.post(ctx, "/v1/aspen/job/fail", server.JobRequest{ID: id, Token: tok, Reason: reason, Retryable: retryable}, nil)
}

// Revoked asks the cluster whether token id is revoked.
func (c *Client) Revoked(ctx context.Context, id string) (bool, error) {
	var l server.TokenList
	err := c.do(ctx, http.MethodGet, "/v1/aspen/token/list?id="+url.QueryEscape(id), nil, &l)
	var se *StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
		return false, nil // never registered nor revoked
	case err != nil:
		return false, err
	}
	return len(l.Tokens) == 1 && l.Tokens[0].Revoked, nil
}

// AppendAudit appends an execution record, signed with the cluster key.
func (c *Client) AppendAudit(ctx context.Context, e audit.Exec) error {
	if c.key == nil {
		return errors.New("worker: no cluster key to sign audit records with")
	}
	const path = "/v1/aspen/audit/append"
	sig := hex.EncodeToString(token.RequestMAC(c.key, path, audit.Append(e).Body))
	return c.post(ctx, path, server.AuditAppend{Exec: e, Signature: sig}, nil)
}

func (c *Client) post(ctx context.Context, path string, req, v any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return c.do(ctx, http.MethodPost, path, body, v)
}

// do sends one request, trying each address once at most. A 4xx answer is
// final: another node would refuse it the same way. A transport error or a
// 5xx (no leader, no quorum) moves on to the next address.
func (c *Client) do(ctx context.Context, method, path string, body []byte, v any) error {
	c.mu.Lock()
	first := c.next
	c.mu.Unlock()
	var errs []error
	for i := range c.addrs {
		at := (first + i) % len(c.addrs)
		err := c.once(ctx, method, c.addrs[at]+path, body, v)
		var se *StatusError
		if err == nil || errors.As(err, &se) && se.Code < 500 || ctx.Err() != nil {
			c.mu.Lock()
			c.next = at
			c.mu.Unlock()
			return err
		}
		errs = append(errs, err)
	}
	c.mu.Lock()
	c.next = (first + 1) % len(c.addrs)
	c.mu.Unlock()
	return errors.Join(errs...)
}

func (c *Client) once(ctx context.Context, method, u string, body []byte, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, answerBytesMax))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return &StatusError{Code: resp.StatusCode, Msg: e.Error}
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: answer: %w", u, err)
	}
	return nil
}

// answerBytesMax bounds an answer read: a lease of the most jobs with the
// largest payloads, JSON-escaped.
const answerBytesMax = 16 << 20
