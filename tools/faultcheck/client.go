package faultcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// outcome is what a write's answer tells about its effect.
type outcome uint8

const (
	applied    outcome = iota + 1 // answered 200: the body says what happened
	notApplied                    // the request never left, or was refused as invalid
	unknown                       // no answer: it may apply now, later, or never
)

// kvClient speaks the Consul KV API to one node per call.
type kvClient struct {
	http *http.Client
}

// responseBodyBytesMax bounds what is read of an answer; the workload's
// values are a few bytes.
const responseBodyBytesMax = 1 << 20

// entry is Consul's KVPair as JSON, reduced to what the checker uses.
type entry struct {
	Key         string
	Value       []byte
	ModifyIndex uint64
}

// get reads key with a consistent read. An absent key reads as "" at index 0,
// which is also what ?cas=0 compares against.
func (c kvClient) get(ctx context.Context, addr, key string) (value string, index uint64, err error) {
	u := kvURL(addr, key) + "?consistent"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, fmt.Errorf("get %s: %w", key, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("get %s via %s: %w", key, addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, responseBodyBytesMax))
	if err != nil {
		return "", 0, fmt.Errorf("get %s via %s: read answer: %w", key, addr, err)
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return "", 0, nil
	case http.StatusOK:
		return decodeEntry(key, body)
	}
	return "", 0, fmt.Errorf("get %s via %s: status %d: %s", key, addr, resp.StatusCode, strings.TrimSpace(string(body)))
}

func decodeEntry(key string, body []byte) (string, uint64, error) {
	var entries []entry
	if err := json.Unmarshal(body, &entries); err != nil {
		return "", 0, fmt.Errorf("get %s: decode %q: %w", key, body, err)
	}
	if len(entries) != 1 || entries[0].Key != key {
		return "", 0, fmt.Errorf("get %s: got %d entries (%q), want exactly that key", key, len(entries), body)
	}
	return string(entries[0].Value), entries[0].ModifyIndex, nil
}

// put writes value to key, only if the key's ModifyIndex is *cas when cas is
// set. ok is the compare's result (always true without cas); index is the
// X-Consul-Index answered, which for a write that happened is its revision.
func (c kvClient) put(ctx context.Context, addr, key, value string, cas *uint64) (ok bool, index uint64, out outcome, err error) {
	u := kvURL(addr, key)
	if cas != nil {
		u += "?cas=" + strconv.FormatUint(*cas, 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader(value))
	if err != nil {
		return false, 0, notApplied, fmt.Errorf("put %s: %w", key, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, 0, sentOutcome(err), fmt.Errorf("put %s via %s: %w", key, addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, responseBodyBytesMax))
	if err != nil {
		return false, 0, unknown, fmt.Errorf("put %s via %s: read answer: %w", key, addr, err)
	}
	return parsePutAnswer(resp, body)
}

// parsePutAnswer reads a write's answer. Only 400 and 413 say nothing was
// applied; 503 and every other failure leave the outcome unknown.
func parsePutAnswer(resp *http.Response, body []byte) (bool, uint64, outcome, error) {
	text := strings.TrimSpace(string(body))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return false, 0, notApplied, fmt.Errorf("refused: status %d: %s", resp.StatusCode, text)
	default:
		return false, 0, unknown, fmt.Errorf("status %d: %s", resp.StatusCode, text)
	}
	index, err := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	if err != nil {
		return false, 0, unknown, fmt.Errorf("answer %q has no X-Consul-Index: %w", text, err)
	}
	switch text {
	case "true":
		return true, index, applied, nil
	case "false":
		return false, index, applied, nil
	}
	return false, 0, unknown, fmt.Errorf("answer %q is neither true nor false", text)
}

// sentOutcome classifies a transport error. Only a failed dial proves the
// request never reached the node; anything later (a reset, a timeout, EOF)
// may come after the node received and proposed it.
func sentOutcome(err error) outcome {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return notApplied
	}
	return unknown
}

func kvURL(addr, key string) string {
	return "http://" + addr + "/v1/kv/" + url.PathEscape(key)
}
