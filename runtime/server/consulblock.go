package server

import (
	"context"
	"net/http"
	"sync"
)

// appliedIndex wakes blocking session queries when the replica applies
// more of the log. Sessions have no revision of their own; Consul's
// contract lets a blocking query return without a change ("no guarantee
// of a change"), so waking on any applied entry is correct, only eager.
type appliedIndex struct {
	mu    sync.Mutex
	index uint64
	ch    chan struct{} // closed and replaced when index moves
}

func newAppliedIndex() *appliedIndex { return &appliedIndex{ch: make(chan struct{})} }

// observe records the replica's applied index; the loop calls it with
// every status.
func (a *appliedIndex) observe(index uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if index != a.index {
		a.index = index
		close(a.ch)
		a.ch = make(chan struct{})
	}
}

// waitAbove blocks until the applied index exceeds index, ctx ends or stop
// is closed.
func (a *appliedIndex) waitAbove(ctx context.Context, stop <-chan struct{}, index uint64) {
	for {
		a.mu.Lock()
		now, ch := a.index, a.ch
		a.mu.Unlock()
		if now > index {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-stop:
			return
		}
	}
}

// blockApplied is Consul's blocking query (?index, ?wait) on the applied
// log index.
func (s *Server) blockApplied(r *http.Request) error {
	return blockOn(r, func(ctx context.Context, index uint64) { s.applied.waitAbove(ctx, s.stop, index) })
}
