package server

import (
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-db/aspen/runtime/diskstore"
)

// Close waits for every goroutine the server started and every handler in
// flight (here a watch that blocks until the node stops), so nothing of the
// server is left once it returns.
func TestCloseWaitsForWhatItStarted(t *testing.T) {
	before := parkedServerGoroutines()
	c := startCluster(t, 1)
	s := c.servers[0]
	if code, _, body := do(t, "PUT", c.url(0, "/v1/kv/k"), "v"); code != http.StatusOK {
		t.Fatalf("put: got %d %s, want 200", code, body)
	}
	watch, err := http.Get(c.url(0, "/v1/aspen/watch?key=k")) // returns once the stream is open
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Body.Close()
	// One that outlives the loop, as a removal notice may.
	release := make(chan struct{})
	var finished atomic.Bool
	s.goOwned(func() { <-s.stop; <-release; finished.Store(true) })
	go func() { <-s.Done(); close(release) }()
	// The loop, advertise, the HTTP server, the watch's handler, and that one.
	if got := s.running.Load(); got != 5 {
		t.Fatalf("got %d goroutines owned while serving, want 5", got)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: got %v, want nil", err)
	}
	if !finished.Load() {
		t.Fatal("Close returned before a goroutine it owns finished")
	}
	if got := s.running.Load(); got != 0 {
		t.Fatalf("got %d goroutines owned after Close, want 0", got)
	}
	io.Copy(io.Discard, watch.Body) // the watch ended with the node
	for id, stack := range parkedServerGoroutines() {
		if _, ok := before[id]; !ok {
			t.Errorf("goroutine left after Close:\n%s", stack)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: got %v, want nil", err)
	}
}

// A node that failed on its own reports why from Close, every time.
func TestCloseReportsTheFailure(t *testing.T) {
	c := startCluster(t, 1)
	s := c.servers[0]
	s.httpLn.Close() // Serve fails: the node must stop
	waitDone(t, s)
	err := s.Close()
	if !errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), "http") {
		t.Fatalf("close after the listener broke: got %v, want the http failure", err)
	}
	if again := s.Close(); again != err {
		t.Fatalf("second close: got %v, want the first result %v", again, err)
	}
}

// Close reports a data store that fails to close.
func TestCloseReportsTheStore(t *testing.T) {
	c := startCluster(t, 1)
	s := c.servers[0]
	// Closed on the loop, so nothing writes to it meanwhile; the shutdown's
	// Close is then the second one, which fails.
	if err := s.onLoop(s.store.Close); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, diskstore.ErrClosed) {
		t.Fatalf("close: got %v, want the store's close error", err)
	}
}

func waitDone(t *testing.T, s *Server) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("node did not stop")
	}
}

// parkedServerGoroutines returns the stacks of goroutines that wait inside
// runtime/server or runtime/transport, by goroutine id. Running ones are left
// out: a goroutine Close waited for may still be returning from its last
// frame, but it no longer waits for anything.
func parkedServerGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n") // goroutine 7 [select]:
		id, state, _ := strings.Cut(strings.TrimPrefix(header, "goroutine "), " ")
		if strings.HasPrefix(state, "[running") || strings.HasPrefix(state, "[runnable") {
			continue
		}
		if strings.Contains(g, "aspen/runtime/server.") || strings.Contains(g, "aspen/runtime/transport.") {
			out[id] = g
		}
	}
	return out
}
