package shell

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slack covers starting the helper and a shell on a busy 2-core machine.
const slack = 2 * time.Second

// A command that ignores SIGTERM and leaves a grandchild that ignores it too
// is gone, grandchild included, after timeout + grace.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/sh", "/bin/sleep")
	e := newTestExecutor(t, testConfig(t))
	timeout := 300 * time.Millisecond
	res := run(t, e, Request{
		Argv:    []string{"/bin/sh", "-c", `trap "" TERM; /bin/sleep 60 & echo $!; wait`},
		Timeout: timeout,
	})
	grandchild := firstPid(t, res.Stdout)
	if !res.TimedOut || res.Signal != syscall.SIGKILL || res.ExitCode != -1 {
		t.Fatalf("got timed out %v, signal %v, exit %d; want true, killed, -1", res.TimedOut, res.Signal, res.ExitCode)
	}
	if min := timeout + testGraceMs*time.Millisecond; res.Duration < min {
		t.Fatalf("got duration %v, want at least timeout + grace %v (SIGKILL came early)", res.Duration, min)
	}
	if max := timeout + (testGraceMs+testWaitDelayMs)*time.Millisecond + slack; res.Duration > max {
		t.Fatalf("got duration %v, want at most %v", res.Duration, max)
	}
	if alive(t, grandchild) {
		t.Fatalf("grandchild %d still runs after the call returned", grandchild)
	}
}

// A command that exits at once, leaving a child in its group that holds
// stdout, returns at once: the child is killed with the group.
func TestLeftoverInGroupKilledAfterExit(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/sh", "/bin/sleep")
	e := newTestExecutor(t, testConfig(t))
	res := run(t, e, Request{Argv: []string{"/bin/sh", "-c", `/bin/sleep 60 & echo $!`}, Timeout: 30 * time.Second})
	child := firstPid(t, res.Stdout)
	if res.ExitCode != 0 || res.TimedOut || res.OutputCutOff {
		t.Fatalf("got exit %d, timed out %v, output cut off %v; want 0, false, false", res.ExitCode, res.TimedOut, res.OutputCutOff)
	}
	if max := slack; res.Duration > max {
		t.Fatalf("got duration %v, want at most %v", res.Duration, max)
	}
	if alive(t, child) {
		t.Fatalf("child %d still runs after the call returned", child)
	}
}

// A grandchild that left the process group (setsid) and holds the pipe
// cannot hang the call past the wait delay (golang/go#13155). It survives:
// only a cgroup could reach it, which DESIGN.md notes.
func TestEscapedPipeHolderDoesNotHang(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/sh", "/bin/sleep", "/usr/bin/setsid")
	cfg := testConfig(t)
	cfg.Commands = append(cfg.Commands, "/usr/bin/setsid")
	e := newTestExecutor(t, cfg)
	timeout := 500 * time.Millisecond
	res := run(t, e, Request{
		Argv:    []string{"/bin/sh", "-c", `/usr/bin/setsid /bin/sleep 30 & echo $!; /bin/sleep 60`},
		Timeout: timeout,
	})
	escaped := firstPid(t, res.Stdout)
	t.Cleanup(func() { _ = syscall.Kill(escaped, syscall.SIGKILL) })
	if !res.TimedOut || !res.OutputCutOff {
		t.Fatalf("got timed out %v, output cut off %v; want both", res.TimedOut, res.OutputCutOff)
	}
	if max := timeout + (testGraceMs+testWaitDelayMs)*time.Millisecond + slack; res.Duration > max {
		t.Fatalf("got duration %v, want at most timeout + grace + wait delay + slack = %v", res.Duration, max)
	}
}

// The caller's context ends the command like a timeout does.
func TestCancelStopsCommand(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/sleep")
	e := newTestExecutor(t, testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := e.Run(ctx, Request{Argv: []string{"/bin/sleep", "60"}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Cancelled || res.TimedOut || res.Signal != syscall.SIGTERM {
		t.Fatalf("got cancelled %v, timed out %v, signal %v; want true, false, terminated", res.Cancelled, res.TimedOut, res.Signal)
	}
}

// 10 MB of output keeps a bounded head and tail with the cut marked.
func TestOutputCapped(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/sh", "/usr/bin/head")
	e := newTestExecutor(t, testConfig(t))
	const total = 10 << 20
	script := fmt.Sprintf(`echo START; /usr/bin/head -c %d /dev/zero | /usr/bin/tr '\0' x; echo END; echo small >&2`, total)
	res := run(t, e, Request{Argv: []string{"/bin/sh", "-c", script}})
	if res.ExitCode != 0 {
		t.Fatalf("got exit %d, stderr %q", res.ExitCode, res.Stderr)
	}
	wantBytes := int64(total + len("START\n") + len("END\n"))
	if !res.StdoutTruncated || res.StdoutBytes != wantBytes {
		t.Fatalf("got truncated %v, %d bytes; want true, %d", res.StdoutTruncated, res.StdoutBytes, wantBytes)
	}
	cut := wantBytes - defaultOutputBytesMax
	marker := fmt.Sprintf("\n... [%d bytes cut] ...\n", cut)
	if !strings.HasPrefix(res.Stdout, "START\nxxx") || !strings.HasSuffix(res.Stdout, "xxxEND\n") || !strings.Contains(res.Stdout, marker) {
		t.Fatalf("stdout does not keep head, marker %q and tail: %q ... %q", marker, res.Stdout[:20], res.Stdout[len(res.Stdout)-20:])
	}
	if got, want := len(res.Stdout), defaultOutputBytesMax+len(marker); got != want {
		t.Fatalf("got %d bytes of stdout, want %d", got, want)
	}
	if res.StderrTruncated || res.Stderr != "small\n" {
		t.Fatalf("got stderr %q (truncated %v), want %q", res.Stderr, res.StderrTruncated, "small\n")
	}
}

// The command sees PATH, HOME, the operator's variables and the allowed
// ones the job set, and nothing of the worker's own environment.
func TestEnvironmentIsClean(t *testing.T) {
	needBinaries(t, "/usr/bin/env")
	t.Setenv("ASPEN_TEST_WORKER_SECRET", "hunter2") // in the worker, not for commands
	cfg := testConfig(t)
	cfg.Env = map[string]string{"TZ": "UTC"}
	e := newTestExecutor(t, cfg)
	res := run(t, e, Request{Argv: []string{"/usr/bin/env"}, Env: map[string]string{"JOB_TARGET": "s3://b"}})
	got := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	want := []string{"HOME=" + defaultHome, "JOB_TARGET=s3://b", "PATH=" + defaultPath, "TZ=UTC"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got environment %q, want %q", got, want)
	}
}

// Limits are in force in the command itself, read from /proc/self/limits.
func TestResourceLimitsInForce(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/cat", "/proc/self/limits")
	cfg := testConfig(t)
	cfg.Limits = Limits{CPUSeconds: 7, AddressSpaceBytes: 1 << 30, OpenFiles: 37}
	e := newTestExecutor(t, cfg)
	res := run(t, e, Request{Argv: []string{"/bin/cat", "/proc/self/limits"}})
	for _, want := range [][]string{
		{"Max cpu time", "7", "8", "seconds"},
		{"Max address space", "1073741824", "1073741824", "bytes"},
		{"Max open files", "37", "37", "files"},
	} {
		if !hasLimitLine(res.Stdout, want) {
			t.Fatalf("limits lack %q:\n%s", want, res.Stdout)
		}
	}
}

func hasLimitLine(limits string, want []string) bool {
	for _, line := range strings.Split(limits, "\n") {
		if rest, ok := strings.CutPrefix(line, want[0]); ok {
			return strings.Join(strings.Fields(rest), " ") == strings.Join(want[1:], " ")
		}
	}
	return false
}

// A CPU limit ends a busy loop by signal, in CPU time, not the timeout.
func TestCPULimitEndsBusyLoop(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/sh")
	cfg := testConfig(t)
	cfg.Limits = Limits{CPUSeconds: 1}
	e := newTestExecutor(t, cfg)
	res := run(t, e, Request{Argv: []string{"/bin/sh", "-c", "while :; do :; done"}, Timeout: 20 * time.Second})
	if res.TimedOut || (res.Signal != syscall.SIGXCPU && res.Signal != syscall.SIGKILL) {
		t.Fatalf("got timed out %v, signal %v; want false, SIGXCPU or SIGKILL", res.TimedOut, res.Signal)
	}
	if cpu := res.UserCPU + res.SysCPU; cpu < 500*time.Millisecond { // CPU time is sampled in ticks
		t.Fatalf("got %v of CPU, want about 1s", cpu)
	}
}

func TestExitCodesAndSignals(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/sh", "/bin/true", "/bin/false")
	e := newTestExecutor(t, testConfig(t))
	for _, tc := range []struct {
		argv     []string
		wantCode int
		wantSig  syscall.Signal
	}{
		{[]string{"/bin/true"}, 0, 0},
		{[]string{"/bin/false"}, 1, 0},
		{[]string{"/bin/sh", "-c", "exit 3"}, 3, 0},
		{[]string{"/bin/sh", "-c", "kill -USR1 $$"}, -1, syscall.SIGUSR1},
	} {
		res := run(t, e, Request{Argv: tc.argv})
		if res.ExitCode != tc.wantCode || res.Signal != tc.wantSig || res.TimedOut {
			t.Errorf("%q: got exit %d, signal %v, timed out %v; want %d, %v, false", tc.argv, res.ExitCode, res.Signal, res.TimedOut, tc.wantCode, tc.wantSig)
		}
		if res.MaxRSSBytes <= 0 {
			t.Errorf("%q: got max RSS %d, want some", tc.argv, res.MaxRSSBytes)
		}
	}
}

// The command runs in the resolved working directory.
func TestRunsInDirectory(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/pwd")
	cfg := testConfig(t)
	sub := filepath.Join(cfg.DirRoots[0], "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	e := newTestExecutor(t, cfg)
	want, _ := filepath.EvalSymlinks(sub)
	if res := run(t, e, Request{Argv: []string{"/bin/pwd"}, Dir: sub}); strings.TrimSpace(res.Stdout) != want {
		t.Fatalf("got pwd %q, want %q", res.Stdout, want)
	}
}
