// Package servertest starts real Aspen nodes inside a test process: Badger in
// a temporary folder, TCP and HTTP on loopback. Tests of tools and clients use
// it instead of starting nodes by hand.
package servertest

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
)

// FreeAddr reserves a loopback address: peers must know each other's
// addresses before any of them starts, so ":0" will not do for peers.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StartOne runs a one-node cluster with a fast tick and a silent log; the
// test's cleanup stops it, and fails the test if stopping reports an error.
func StartOne(t testing.TB) *server.Server {
	t.Helper()
	peer := FreeAddr(t)
	s, err := server.Start(server.Config{ID: 1, DataDir: t.TempDir(), PeerAddr: peer, HTTPAddr: "127.0.0.1:0",
		Cluster: map[uint64]string{1: peer}, Tick: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})
	return s
}
