package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

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

// answerCall runs cmd through the log (write) or as a query after a
// ReadIndex, and writes the module's answer, of type A, as render makes it.
func answerCall[A any](s *Server, w http.ResponseWriter, r *http.Request, what string, write bool, cmd module.Command, render func(A) any) {
	var v any
	var err error
	if write {
		v, err = s.Call(r.Context(), cmd)
	} else {
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
