package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
)

// JobCompleteBatch is the body of complete/batch: the completes of jobs the
// worker leased, each under its own token.
type JobCompleteBatch struct {
	Items []JobCompleteItem
}

// JobCompleteItem is one complete in a batch, with complete's fields.
type JobCompleteItem struct {
	ID       uint64
	Token    uint64 // the token the lease gave
	ExitCode int64
	Output   string // at most the module's output cap, else the batch is refused with 413
	Detail   string
}

// JobBatchAnswer answers complete/batch: one answer per item asked, in the
// order asked.
type JobBatchAnswer struct {
	Items []JobItemAnswer
}

// JobItemAnswer is one item's answer: the status a single complete of it
// would have got, and the job as it left it (200) or why it was refused
// (404, 409; the job unchanged).
type JobItemAnswer struct {
	Status int
	Error  string   `json:",omitempty"`
	Job    *JobInfo `json:",omitempty"`
}

func (s *Server) handleJobCompleteBatch(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, false) {
		return
	}
	var req JobCompleteBatch
	if code, err := readStrictJSON(r, &req, "JobCompleteBatch", jobBatchBodyBytesMax); err != nil {
		writeError(w, code, err.Error())
		return
	}
	items := make([]jobs.CompleteItem, len(req.Items))
	for i, it := range req.Items {
		items[i] = jobs.CompleteItem{ID: jobs.ID(it.ID), Token: it.Token,
			Result: jobs.Result{ExitCode: it.ExitCode, Output: []byte(it.Output), Detail: it.Detail}}
	}
	// Ids and tokens of 0, too many items and outputs over the cap are the
	// replica's to refuse, whole (Validate), as for one complete.
	answerCall(s, w, r, "job complete batch", true, jobs.CompleteBatch(items), jobBatchAnswer)
}

func jobBatchAnswer(a jobs.Answer) any {
	out := JobBatchAnswer{Items: make([]JobItemAnswer, len(a.Items))}
	for i, it := range a.Items {
		if it.Outcome != module.OK {
			code, ok := refusalStatus[it.Outcome]
			if !ok {
				code = http.StatusBadRequest // as writeCallError: a refusal without a status of its own
			}
			out.Items[i] = JobItemAnswer{Status: code, Error: it.Detail}
			continue
		}
		info := jobInfo(it.Job)
		out.Items[i] = JobItemAnswer{Status: http.StatusOK, Job: &info}
	}
	return out
}

// readStrictJSON decodes one JSON object of type what into v, strictly: a
// misspelt field would otherwise read as absent. No body at all leaves v as
// it was. A body over bytesMax is refused whole (413), never read in part.
// On error it returns the status to answer with.
func readStrictJSON(r *http.Request, v any, what string, bytesMax int) (int, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, int64(bytesMax)+1))
	switch {
	case err != nil:
		return http.StatusBadRequest, fmt.Errorf("read body: %v", err)
	case len(raw) > bytesMax:
		return http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes", bytesMax)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	switch err := dec.Decode(v); {
	case errors.Is(err, io.EOF):
		return 0, nil
	case err != nil:
		return http.StatusBadRequest, fmt.Errorf("malformed body (want one JSON object with the fields of a %s): %v", what, err)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		return http.StatusBadRequest, errors.New("malformed body: more than one JSON value")
	}
	return 0, nil
}
