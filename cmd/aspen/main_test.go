package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// aspenBin is the binary under test, built once: the commands are tested as
// a user runs them, exit statuses and separate processes included.
var aspenBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "aspen-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	aspenBin = filepath.Join(dir, "aspen")
	build := exec.Command("go", "build", "-tags", "aspenbugs", "-o", aspenBin, ".") // failure paths need a planted bug
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// baseline is the one scenario these tests rely on.
func baseline(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs("../../scenarios/baseline.toml")
	if err != nil {
		t.Fatalf("baseline path: %v", err)
	}
	return path
}

// plantedScenario plants a bug the revision accounting catches on every
// seed (each write that changes nothing leaves a revision no write took), to
// drive the failure paths.
func plantedScenario(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "noop-bump.toml")
	src := `name = "noop-bump"
[run]
fault_seconds = 3
heal_seconds = 2
[faults]
interval_ms = 300
partition = 1
crash = 1
[bugs]
noop_bump = true
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatalf("write scenario: %v", err)
	}
	return path
}

// outcome is what one process did.
type outcome struct {
	stdout, stderr string
	code           int
}

// aspen runs the binary in dir (a fresh temporary folder when empty), so
// that artifacts land where the test can see them and nowhere else.
func aspen(t *testing.T, dir string, args ...string) outcome {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cmd := exec.Command(aspenBin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run aspen %v: %v", args, err)
	}
	return outcome{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func (o outcome) wantCode(t *testing.T, want int) {
	t.Helper()
	if o.code != want {
		t.Fatalf("got exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", o.code, want, o.stdout, o.stderr)
	}
}
