package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

const (
	addrEnv     = "ASPEN_HTTP_ADDR"
	defaultAddr = "127.0.0.1:8500"

	// errorBodyBytesMax bounds how much of an error answer is read: enough for
	// any message the server writes, not a whole misdirected page.
	errorBodyBytesMax = 4 << 10
)

// errNotFound is a 404 without a message: the key is not there. A 404 with a
// message is something else (a wrong path), and stays a statusError.
var errNotFound = errors.New("key not found")

// addrFlag is the node every client command talks to.
func addrFlag() cli.Flag {
	return &cli.StringFlag{Name: "addr", Usage: "HTTP address of any node", EnvVars: []string{addrEnv}, Value: defaultAddr}
}

// client talks to one node's HTTP API.
type client struct {
	addr string // as the user gave it, for messages
	base string // scheme and host, no trailing slash
	hc   *http.Client
}

// newClient wraps hc, whose default redirect policy already follows 307 and
// 308 with the body resent, so a node that redirects costs nothing here.
func newClient(addr string, hc *http.Client) *client {
	return &client{addr: addr, base: baseURL(addr), hc: hc}
}

// baseURL accepts host:port or a full http(s) URL.
func baseURL(addr string) string {
	addr = strings.TrimRight(addr, "/")
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return addr
	}
	return "http://" + addr
}

// statusError is an answer with an error status; Msg is the server's own
// message when it sent one.
type statusError struct {
	Code int
	Msg  string
}

func (e *statusError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("server answered %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("server answered %d: %s", e.Code, e.Msg)
}

// do sends one request and returns the response when its status is 2xx; the
// caller closes the body. Any other status becomes an error and the body is
// closed here.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Response, error) {
	return c.doWith(ctx, method, path, query, nil, body)
}

// doWith is do with header's fields added to the request.
func (c *client) doWith(ctx context.Context, method, path string, query url.Values, header http.Header, body []byte) (*http.Response, error) {
	u := c.base + (&url.URL{Path: path}).EscapedPath()
	if len(query) > 0 {
		u += "?" + encodeQuery(query)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readStatusError(resp)
}

// encodeQuery writes flags such as ?recurse without "=", as Consul's docs
// show them; the server only asks whether they are present.
func encodeQuery(q url.Values) string {
	parts := make([]string, 0, len(q))
	for _, k := range slices.Sorted(maps.Keys(q)) {
		v := q.Get(k)
		if v == "" {
			parts = append(parts, url.QueryEscape(k))
			continue
		}
		parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
	}
	return strings.Join(parts, "&")
}

func readStatusError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyBytesMax))
	var body struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		msg = body.Error
	}
	if resp.StatusCode == http.StatusNotFound && msg == "" {
		return errNotFound
	}
	return &statusError{Code: resp.StatusCode, Msg: msg}
}

// transportError says which address failed, and for a refused connection
// how to get a node running there.
func (c *client) transportError(err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot reach Aspen at %s: connection refused (is a node running there? start a local cluster with `aspen dev`, or set --addr or %s)", c.addr, addrEnv)
	}
	return fmt.Errorf("request to %s: %w", c.addr, err)
}

// getJSON decodes a 2xx answer into v.
func (c *client) getJSON(ctx context.Context, path string, query url.Values, v any) (http.Header, error) {
	return c.sendJSON(ctx, http.MethodGet, path, query, nil, v)
}

// sendJSON sends body with method and decodes the 2xx answer into v.
// postAspen POSTs req as JSON to Aspen's own API at /v1/aspen/PATH and
// decodes the answer into v: every module's endpoints take this shape.
func (c *client) postAspen(ctx context.Context, path string, req, v any) error {
	return c.postAspenWith(ctx, path, nil, req, v)
}

// postAspenWith is postAspen with header's fields added to the request.
func (c *client) postAspenWith(ctx context.Context, path string, header http.Header, req, v any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	_, err = c.sendJSONWith(ctx, http.MethodPost, "/v1/aspen/"+path, nil, header, body, v)
	return err
}

func (c *client) sendJSON(ctx context.Context, method, path string, query url.Values, body []byte, v any) (http.Header, error) {
	return c.sendJSONWith(ctx, method, path, query, nil, body, v)
}

func (c *client) sendJSONWith(ctx context.Context, method, path string, query url.Values, header http.Header, body []byte, v any) (http.Header, error) {
	resp, err := c.doWith(ctx, method, path, query, header, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return nil, fmt.Errorf("decode answer from %s: %w", c.addr, err)
	}
	return resp.Header, nil
}
