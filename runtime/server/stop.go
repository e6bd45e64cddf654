package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// A server stops in one of two ways: Close, or on its own (fail) when its
// disk or listener breaks or its cluster removed it. Either way ctx is
// canceled, the loop releases ports and disk (shutdown) and closes done; Close
// then also waits for every other goroutine the server started and every
// HTTP handler in flight, so that nothing of the server runs after it returns.

// Done is closed when the node stops, by Close or because it failed, once
// its ports and disk are released; Close waits for the rest.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err says why the node stopped on its own, if it did.
func (s *Server) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// fail stops the node: a disk that cannot be written or read back must not
// keep serving.
func (s *Server) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
	if errors.Is(err, ErrRemoved) {
		s.log.Info("node stopping: removed from the cluster", "node", s.cfg.ID)
	} else {
		s.log.Error("node stopping", "node", s.cfg.ID, "err", err)
	}
	s.cancel()
}

// Close stops the node, waits for everything it started, and releases its
// disk and ports. It returns what failed, joined: the error that stopped the
// node on its own (not its removal, which is a clean end; Err still says so),
// and what could not be released (the data store's Close, the listeners).
// Close may be called again, concurrently too, and on a node that stopped on
// its own: every call waits for the first to finish and returns its result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeValue = s.close() })
	return s.closeValue
}

func (s *Server) close() error {
	s.cancel()
	<-s.done
	s.ownMu.Lock()
	s.ownClosed = true
	s.ownMu.Unlock()
	s.wg.Wait()
	err := s.Err()
	if errors.Is(err, ErrRemoved) {
		err = nil
	}
	return errors.Join(err, s.closeErr)
}

// shutdown runs on the loop goroutine once it stops, and returns what could
// not be released.
func (s *Server) shutdown() error {
	// Let answers already computed (such as the one to the request that
	// removed this node) reach their clients; blocked queries and watches are
	// cut after a moment.
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGraceMs*time.Millisecond)
	defer cancel()
	var errs []error
	if err := s.httpSrv.Shutdown(ctx); err != nil {
		errs = append(errs, unexpectedHTTPError(err), unexpectedHTTPError(s.httpSrv.Close()))
	}
	errs = append(errs, s.tr.Close(), s.store.Close())
	s.hub.close()
	return errors.Join(errs...)
}

// unexpectedHTTPError drops what stopping an HTTP server is expected to
// report: a grace period that ran out on handlers still blocked, and
// listeners that were already closed (by Serve failing first).
func unexpectedHTTPError(err error) error {
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("stop http: %w", err)
}

// own counts one more goroutine or handler that Close must wait for, and
// reports false once Close has begun waiting: the caller must then not start.
func (s *Server) own() bool {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	if s.ownClosed {
		return false
	}
	s.wg.Add(1)
	s.running.Add(1)
	return true
}

// disown is the end of what own counted; deferred first, it runs last.
func (s *Server) disown() {
	s.running.Add(-1)
	s.wg.Done()
}

// goOwned runs f on a goroutine that Close waits for. f must return soon
// after the node stops (s.stop, s.ctx). Once Close is waiting, f is dropped:
// the node is stopping, and whatever f was for is moot.
func (s *Server) goOwned(f func()) {
	if !s.own() {
		return
	}
	go func() {
		defer s.disown()
		f()
	}()
}

// owned wraps the HTTP handler so that Close waits for requests in flight:
// no handler touches the server after Close returns.
func (s *Server) owned(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.own() {
			writeError(w, http.StatusServiceUnavailable, ErrStopped.Error())
			return
		}
		defer s.disown()
		h.ServeHTTP(w, r)
	})
}
