package shell

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A command that reads its stdin gets every byte of it, including more
// than a pipe buffer holds (the feed must run beside the command).
func TestStdinReachesCommand(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/cat")
	cfg := testConfig(t)
	cfg.OutputBytesMax = 1 << 20
	e := newTestExecutor(t, cfg)
	in := bytes.Repeat([]byte("event line\n"), 20000) // 220 KB, over the 64 KiB pipe buffer
	res := run(t, e, Request{Argv: []string{"/bin/cat"}, Stdin: in, Timeout: 30 * time.Second})
	if res.ExitCode != 0 || res.StdoutBytes != int64(len(in)) || res.Stdout != string(in) {
		t.Fatalf("got exit %d and %d bytes out, want exit 0 and the %d bytes fed", res.ExitCode, res.StdoutBytes, len(in))
	}
}

// A command that never reads its stdin, and exits while the feed is still
// blocked on a full pipe, does not hang the call: the run ends as the
// command does, not at its timeout.
func TestStdinIgnoredDoesNotHang(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/true", "/bin/sh", "/bin/sleep")
	e := newTestExecutor(t, testConfig(t))
	big := bytes.Repeat([]byte("x"), 1<<20)
	res := run(t, e, Request{Argv: []string{"/bin/true"}, Stdin: big, Timeout: time.Hour})
	if res.ExitCode != 0 || res.TimedOut {
		t.Fatalf("/bin/true with 1 MiB unread on stdin: exit %d, timed out %v; want exit 0", res.ExitCode, res.TimedOut)
	}
	// A child that leaves the group (setsid) holding stdin open and never
	// reading it cannot hold the run either: the feed is closed once the
	// command is gone. (Were the feed part of the command's Wait, the run
	// would end at its timeout, marked TimedOut.)
	detached := filepath.Join(t.TempDir(), "detached")
	script := fmt.Sprintf(`setsid /bin/sh -c 'touch %[1]s; exec /bin/sleep 600' >/dev/null 2>&1 &
while [ ! -e %[1]s ]; do :; done; echo $!`, detached)
	res = run(t, e, Request{Argv: []string{"/bin/sh", "-c", script}, Stdin: big, Timeout: time.Minute})
	pid := firstPid(t, res.Stdout)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if res.ExitCode != 0 || res.TimedOut {
		t.Fatalf("exit %d, timed out %v; want exit 0", res.ExitCode, res.TimedOut)
	}
	if !alive(t, pid) {
		t.Fatalf("the setsid child %d is gone: the case did not hold stdin open", pid)
	}
}

// Without Stdin a command reads /dev/null: EOF at once.
func TestNoStdinIsEmpty(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/bin/cat")
	e := newTestExecutor(t, testConfig(t))
	if res := run(t, e, Request{Argv: []string{"/bin/cat"}, Timeout: time.Hour}); res.ExitCode != 0 || res.Stdout != "" {
		t.Fatalf("cat without stdin: exit %d, output %q; want 0 and nothing", res.ExitCode, res.Stdout)
	}
}

// The worker's own variables pass without the allowlist but only under
// WorkerEnvPrefix, and win over a job's variable of the same name.
func TestWorkerEnv(t *testing.T) {
	t.Parallel()
	needBinaries(t, "/usr/bin/env")
	cfg := testConfig(t)
	cfg.EnvAllow = []string{"ASPEN_HOOK_NAME"}
	e := newTestExecutor(t, cfg)
	res := run(t, e, Request{Argv: []string{"/usr/bin/env"}, Timeout: time.Hour,
		Env: map[string]string{"ASPEN_HOOK_NAME": "from-job"}, WorkerEnv: map[string]string{"ASPEN_HOOK_NAME": "from-worker", "ASPEN_HOOK_KEY": "k"}})
	if !strings.Contains(res.Stdout, "ASPEN_HOOK_NAME=from-worker\n") || !strings.Contains(res.Stdout, "ASPEN_HOOK_KEY=k\n") {
		t.Fatalf("env:\n%s\nwant the worker's ASPEN_HOOK_NAME and ASPEN_HOOK_KEY", res.Stdout)
	}
	for _, name := range []string{"LD_PRELOAD", "PATH", "BASH_ENV"} {
		_, err := e.Run(t.Context(), Request{Argv: []string{"/usr/bin/env"}, WorkerEnv: map[string]string{name: "x"}})
		wantRefused(t, err, ReasonBadRequest)
	}
}
