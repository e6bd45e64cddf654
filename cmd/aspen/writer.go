package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// A writer sends the CLI's writes of topics and groups (a publish, a
// fetch, a settle, a commit, a heartbeat) under a caller's own session:
// X-Aspen-Client names the writer, X-Aspen-Seq numbers its writes (DESIGN,
// "Callers' own sessions"). A write whose answer was lost (the connection
// cut, the node killed, no leader in time) is sent again under the same
// number, and the cluster applies it once, on whichever node takes the
// retry, and answers what the first attempt did: a publish is not placed
// twice, a fetch does not lease a second batch while the first waits out
// its ack wait, an ack is not refused as already settled.
type writer struct {
	cl   *client
	name string     // random: no other process shares this session
	mu   sync.Mutex // one write in flight, so writes apply in seq order
	seq  uint64
}

const (
	// writeAttemptsMax bounds the sends of one write; the context given
	// bounds their time.
	writeAttemptsMax = 8
	writeBackoffMin  = 100 * time.Millisecond
	writeBackoffMax  = 2 * time.Second
)

func newWriter(cl *client) *writer {
	var id [8]byte
	rand.Read(id[:])
	return &writer{cl: cl, name: "aspen-cli-" + hex.EncodeToString(id[:])}
}

// post sends req to /v1/aspen/PATH under the writer's next sequence
// number, again under the same number while the failure is one a retry
// may mend (retriable), and decodes the answer into v.
func (w *writer) post(ctx context.Context, path string, req, v any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	header := http.Header{"X-Aspen-Client": {w.name}, "X-Aspen-Seq": {strconv.FormatUint(w.seq, 10)}}
	backoff := writeBackoffMin
	for attempt := 1; ; attempt++ {
		err := w.cl.postAspenWith(ctx, path, header, req, v)
		if err == nil || !retriable(err) || attempt == writeAttemptsMax || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, writeBackoffMax)
	}
}

// retriable reports whether a write that failed with err may be sent
// again: it got no answer (it may have applied), or the cluster had no
// leader in time (503), a proxy could not reach it (502, 504), or too many
// requests wait (429). A refusal (any other 4xx) changed nothing and
// would be refused again.
func retriable(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return !errors.Is(err, errNotFound)
	}
	switch se.Code {
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return true
	}
	return false
}
