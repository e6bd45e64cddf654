package shell

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Short enough that the whole package runs in a few seconds, long enough for
// a loaded 2-core machine to start a helper and a shell.
const (
	testGraceMs     = 300
	testWaitDelayMs = 300
)

// needBinaries skips the test when a program it runs is not on the machine.
func needBinaries(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is not on this machine: %v", p, err)
		}
	}
}

// testConfig allows a few system programs (the shell included), runs in a
// fresh root, and has short grace and wait delays.
func testConfig(t *testing.T) Config {
	t.Helper()
	return Config{
		Commands:    []string{"/bin/sh", "/usr/bin/env", "/bin/sleep", "/bin/cat", "/bin/pwd", "/bin/true", "/bin/false"},
		AllowShell:  true,
		DirRoots:    []string{t.TempDir()},
		EnvAllow:    []string{"JOB_*"},
		GraceMs:     testGraceMs,
		WaitDelayMs: testWaitDelayMs,
	}
}

func newTestExecutor(t *testing.T, cfg Config) *Executor {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func run(t *testing.T, e *Executor, req Request) Result {
	t.Helper()
	res, err := e.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("Run(%q): %v", req.Argv, err)
	}
	return res
}

// wantRefused checks that err is a refusal with the given reason.
func wantRefused(t *testing.T, err error, want Reason) {
	t.Helper()
	var refused *RefusedError
	if !errors.Is(err, ErrRefused) || !errors.As(err, &refused) {
		t.Fatalf("got error %v, want a refusal (%v)", err, want)
	}
	if refused.Reason != want {
		t.Fatalf("got reason %v (%v), want %v", refused.Reason, err, want)
	}
}

// alive reports whether a process exists and is not a zombie: an orphan may
// wait a while for a PID 1 that reaps slowly, and a zombie runs nothing.
func alive(t *testing.T, pid int) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// firstPid reads the first line of a command's output as a pid.
func firstPid(t *testing.T, out string) int {
	t.Helper()
	line, _, _ := strings.Cut(out, "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		t.Fatalf("output %q does not start with a pid", out)
	}
	return pid
}

// writeScript writes an executable shell script that touches marker when it
// runs, so a test can tell that a refused command never ran.
func writeScript(t *testing.T, path, marker string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	body := "#!/bin/sh\ntouch " + marker + "\n"
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}
