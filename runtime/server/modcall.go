package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/aspen-db/aspen/core/module"
)

// What every module's HTTP API (leases, jobs, schedules, tokens) shares:
// strict JSON bodies, a command or query through the shared call path, and
// the module's answer rendered as JSON.

// errEmptyBody is decodeStrict's answer to a body with no JSON value.
var errEmptyBody = errors.New("empty body")

// decodeStrict decodes one JSON object of at most limit bytes into v: a
// misspelt field is an error, not an absent one, and so is a second value.
// A body with nothing in it answers errEmptyBody and leaves v as it was.
func decodeStrict(body io.Reader, limit int64, v any) error {
	dec := json.NewDecoder(io.LimitReader(body, limit))
	dec.DisallowUnknownFields()
	switch err := dec.Decode(v); {
	case errors.Is(err, io.EOF):
		return errEmptyBody
	case err != nil:
		return fmt.Errorf("malformed body (want one JSON object of at most %d bytes): %v", limit, err)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		return errors.New("malformed body: more than one JSON value")
	}
	return nil
}

// allowMethods answers 405 unless the request is a POST, or a GET where get
// is set; it reports whether the request may go on.
func allowMethods(w http.ResponseWriter, r *http.Request, get bool) bool {
	if r.Method == http.MethodPost || get && r.Method == http.MethodGet {
		return true
	}
	allowed := "POST"
	if get {
		allowed = "GET, POST"
	}
	methodNotAllowed(w, r, allowed)
	return false
}

// Callers' own sessions: a write with X-Aspen-Client (a name of at most
// clientNameBytesMax bytes) and X-Aspen-Seq (1, 2, ...: higher for each
// new write of that client) applies once however often it is retried, on
// any node, and a retry answers what the first did (Server.CallAs).
const (
	headerClient       = "X-Aspen-Client"
	headerSeq          = "X-Aspen-Seq"
	clientNameBytesMax = 128
)

// callerSession reads the caller's session headers: both or neither.
func callerSession(r *http.Request) (client string, seq uint64, own bool, err error) {
	client, seqText := r.Header.Get(headerClient), r.Header.Get(headerSeq)
	switch {
	case client == "" && seqText == "":
		return "", 0, false, nil
	case client == "" || seqText == "":
		return "", 0, false, fmt.Errorf("give both %s and %s, or neither", headerClient, headerSeq)
	case len(client) > clientNameBytesMax:
		return "", 0, false, fmt.Errorf("%s of %d bytes, at most %d", headerClient, len(client), clientNameBytesMax)
	}
	seq, err = strconv.ParseUint(seqText, 10, 64)
	if err != nil || seq == 0 {
		return "", 0, false, fmt.Errorf("%s must be a positive integer, got %q", headerSeq, seqText)
	}
	return client, seq, true, nil
}

// answerCall runs cmd through the log (write) or as a query after a
// ReadIndex, and writes the module's answer, of type A, as render makes it.
func answerCall[A any](s *Server, w http.ResponseWriter, r *http.Request, what string, write bool, cmd module.Command, render func(A) any) {
	var v any
	var err error
	client, seq, own, herr := callerSession(r)
	switch {
	case herr != nil:
		writeError(w, http.StatusBadRequest, herr.Error())
		return
	case write && own:
		v, err = s.CallAs(r.Context(), client, seq, cmd)
	case write:
		v, err = s.Call(r.Context(), cmd)
	default:
		v, err = s.Query(r.Context(), cmd)
	}
	if err != nil {
		writeCallError(w, err)
		return
	}
	a, ok := v.(A)
	if !ok {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("%s: the replica answered %T", what, v))
		return
	}
	writeJSON(w, http.StatusOK, render(a))
}
