package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/runtime/server/servertest"
)

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no addresses", nil, "--addrs is required"},
		{"unknown flag", []string{"--addrs", "x:1", "--bogus"}, "flag provided but not defined"},
		{"stray argument", []string{"--addrs", "x:1", "extra"}, "unexpected argument"},
		{"bad clients", []string{"--addrs", "127.0.0.1:1", "--clients", "0"}, "clients 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(tt.args, &stdout, &stderr); got != 2 {
				t.Fatalf("exit: got %d, want 2 (stderr %q)", got, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr: got %q, want it to contain %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestRunAgainstOneNode(t *testing.T) {
	s := servertest.StartOne(t)
	history := filepath.Join(t.TempDir(), "history.json")
	var stdout, stderr bytes.Buffer
	args := []string{"--addrs", s.HTTPAddr(), "--clients", "2", "--keys", "2", "--duration", "300ms", "--timeout", "5s", "--history", history}
	if got := run(args, &stdout, &stderr); got != 0 {
		t.Fatalf("exit: got %d, want 0\nstdout: %s\nstderr: %s", got, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), ": ok: ") {
		t.Fatalf("stdout: got %q, want an ok summary", stdout.String())
	}
}
