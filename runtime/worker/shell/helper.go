package shell

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// helperArg in os.Args[1] marks the re-executed binary as the helper. The
// helper's arguments are: helperArg, the limits, the resolved program, then
// the command's argv (argv[0] included).
const helperArg = "__aspen_shell_exec_helper__"

// helperHooked is set when MaybeRunHelper returned: this binary will act as
// the helper when re-executed. Without it, re-executing would run the whole
// program (a server, a test binary) with the command's arguments.
var helperHooked atomic.Bool

// helperExitCode is the helper's status when it could not set a limit or
// exec the program, as a shell's for a command it could not run.
const helperExitCode = 127

// MaybeRunHelper turns the process into the helper when it was started as
// one: it sets the resource limits and execs the command, never returning.
// Otherwise it returns at once. Call it first thing in main (and in TestMain
// of a package whose tests run commands), before anything opens files or
// starts goroutines that matter.
//
// Why a helper: setrlimit applies to the calling process, and Go's exec has
// no hook between fork and exec. Prlimit after Start races with the
// command's first instructions; the helper sets the limits on itself, and
// execve keeps them.
func MaybeRunHelper() {
	if len(os.Args) < 2 || os.Args[1] != helperArg {
		helperHooked.Store(true)
		return
	}
	os.Exit(runHelper(os.Args[2:]))
}

// runHelper returns only on failure, with the status to exit with.
func runHelper(args []string) int {
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "aspen shell helper: too few arguments")
		return helperExitCode
	}
	lim, err := decodeLimits(args[0])
	if err == nil {
		err = lim.apply()
	}
	if err == nil {
		err = syscall.Exec(args[1], args[2:], os.Environ())
	}
	fmt.Fprintf(os.Stderr, "aspen shell helper: %s: %v\n", args[1], err)
	return helperExitCode
}

// encode writes the limits as one argument: four decimal numbers.
func (l Limits) encode() string {
	return fmt.Sprintf("%d,%d,%d,%d", l.CPUSeconds, l.AddressSpaceBytes, l.OpenFiles, l.Processes)
}

func decodeLimits(s string) (Limits, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return Limits{}, fmt.Errorf("limits %q: want 4 numbers", s)
	}
	var n [4]uint64
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return Limits{}, fmt.Errorf("limits %q: %w", s, err)
		}
		n[i] = v
	}
	return Limits{CPUSeconds: n[0], AddressSpaceBytes: n[1], OpenFiles: n[2], Processes: n[3]}, nil
}

// apply sets each non-zero limit, soft and hard, so the command cannot raise
// it again. The CPU hard limit is one second above the soft one: SIGXCPU
// first, which a command may catch to clean up, then SIGKILL.
func (l Limits) apply() error {
	set := []struct {
		resource int
		name     string
		soft     uint64
		hard     uint64
	}{
		{syscall.RLIMIT_CPU, "cpu", l.CPUSeconds, l.CPUSeconds + 1},
		{syscall.RLIMIT_AS, "address space", l.AddressSpaceBytes, l.AddressSpaceBytes},
		{syscall.RLIMIT_NOFILE, "open files", l.OpenFiles, l.OpenFiles},
		{unix.RLIMIT_NPROC, "processes", l.Processes, l.Processes},
	}
	for _, s := range set {
		if s.soft == 0 {
			continue
		}
		// An unprivileged worker cannot raise a hard limit; one already
		// below the config's is a tighter bound, so keep it.
		var cur syscall.Rlimit
		if err := syscall.Getrlimit(s.resource, &cur); err != nil {
			return fmt.Errorf("get %s limit: %w", s.name, err)
		}
		lim := syscall.Rlimit{Cur: min(s.soft, cur.Max), Max: min(s.hard, cur.Max)}
		if err := syscall.Setrlimit(s.resource, &lim); err != nil {
			return fmt.Errorf("set %s limit to %d: %w", s.name, s.soft, err)
		}
	}
	return nil
}
