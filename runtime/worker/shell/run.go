package shell

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Request is what a job asks to run. Everything in it is checked against
// the worker's Config; none of it can widen the policy.
type Request struct {
	Argv    []string          // argv[0] is an absolute path; no shell is involved
	Dir     string            // working directory; empty: the first allowed root
	Env     map[string]string // variables the job sets, each in the allowlist
	Timeout time.Duration     // zero: the config's default
	// Stdin is fed to the command through a pipe, at most stdinBytesMax
	// bytes; nil: stdin is /dev/null. A command that does not read it is
	// not held up by it.
	Stdin []byte
	// WorkerEnv are variables the worker sets itself, not the job: a hook
	// delivery's ASPEN_HOOK_* (runtime/worker/hookshell.go). They bypass
	// the environment allowlist, which guards what a job's submitter may
	// set, so each name must start with WorkerEnvPrefix (no loader or
	// shell variable can pass this way), and they win over the job's.
	WorkerEnv map[string]string
}

// WorkerEnvPrefix starts the name of every variable in Request.WorkerEnv.
const WorkerEnvPrefix = "ASPEN_"

// Result is what became of a command that was started.
type Result struct {
	ExitCode  int            // -1 when a signal ended it
	Signal    syscall.Signal // the signal that ended it, or 0
	TimedOut  bool           // the timeout passed and the group was stopped
	Cancelled bool           // the caller's context ended and the group was stopped
	// OutputCutOff: the command ended but something outside its process
	// group held its output open, and the pipes were closed after WaitDelay.
	OutputCutOff bool
	Duration     time.Duration

	Stdout, Stderr                   string // head and tail, a marker where cut
	StdoutTruncated, StderrTruncated bool
	StdoutBytes, StderrBytes         int64 // written by the command in all

	UserCPU, SysCPU time.Duration
	MaxRSSBytes     int64
}

// Executor runs commands under one policy. It is safe for concurrent use.
type Executor struct {
	p *policy
}

// New checks the config and resolves its paths.
func New(cfg Config) (*Executor, error) {
	if !helperHooked.Load() {
		return nil, errors.New("shell: MaybeRunHelper was not called at the start of main")
	}
	p, err := newPolicy(cfg)
	if err != nil {
		return nil, err
	}
	return &Executor{p: p}, nil
}

// Run checks the request, runs the command and waits for it and its process
// group. A refusal is a *RefusedError (errors.Is ErrRefused) and nothing was
// started. Any other error means the command could not be started or waited
// for. The call returns within about timeout + grace + wait delay, plus up
// to groupGoneWaitMax while killed leftovers of the group go away.
func (e *Executor) Run(ctx context.Context, req Request) (Result, error) {
	cmd, timeout, err := e.prepare(req)
	if err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err // a job whose lease is already gone does not start
	}
	out, err := newOutputs(e.p.cfg.OutputBytesMax)
	if err != nil {
		return Result{}, fmt.Errorf("output pipes: %w", err)
	}
	in, err := newInput(req.Stdin)
	if err != nil {
		out.closeAll()
		return Result{}, fmt.Errorf("stdin pipe: %w", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in.file(), out.writers[0], out.writers[1]
	start := time.Now()
	if err := cmd.Start(); err != nil {
		out.closeAll()
		in.closeAll()
		return Result{}, fmt.Errorf("start %s: %w", req.Argv[0], err)
	}
	out.start()
	in.start(req.Stdin)
	res, waitErr := e.supervise(ctx, cmd, timeout)
	in.stop()
	res.OutputCutOff = out.drain(ms(e.p.cfg.WaitDelayMs))
	res.Duration = time.Since(start)
	res.Stdout, res.StdoutTruncated, res.StdoutBytes = out.stdout.String(), out.stdout.truncated(), out.stdout.total
	res.Stderr, res.StderrTruncated, res.StderrBytes = out.stderr.String(), out.stderr.truncated(), out.stderr.total
	if cmd.ProcessState == nil {
		return res, fmt.Errorf("wait %s: %w", req.Argv[0], waitErr)
	}
	fillStatus(&res, cmd.ProcessState)
	return res, nil
}

// prepare turns a request into a command that starts the helper, or refuses.
func (e *Executor) prepare(req Request) (*exec.Cmd, time.Duration, error) {
	if err := checkArgv(req.Argv); err != nil {
		return nil, 0, err
	}
	timeout := req.Timeout
	if timeout == 0 {
		timeout = ms(e.p.cfg.TimeoutMsDefault)
	}
	if timeout < 0 || timeout > ms(e.p.cfg.TimeoutMsMax) {
		return nil, 0, refuse(ReasonBadRequest, "timeout %v outside (0, %v]", timeout, ms(e.p.cfg.TimeoutMsMax))
	}
	program, err := e.p.checkCommand(req.Argv[0])
	if err != nil {
		return nil, 0, err
	}
	dir, err := e.p.checkDir(req.Dir)
	if err != nil {
		return nil, 0, err
	}
	if len(req.Stdin) > stdinBytesMax {
		return nil, 0, refuse(ReasonBadRequest, "stdin of %d bytes, at most %d", len(req.Stdin), stdinBytesMax)
	}
	env, err := e.p.environ(req.Env, req.WorkerEnv)
	if err != nil {
		return nil, 0, err
	}
	args := append([]string{"aspen-shell-helper", helperArg, e.p.cfg.Limits.encode(), program}, req.Argv...)
	cmd := &exec.Cmd{
		// The running binary, whatever its name or location: the helper is
		// this same program (MaybeRunHelper).
		Path: "/proc/self/exe",
		Args: args,
		Dir:  dir,
		Env:  env,
		SysProcAttr: &syscall.SysProcAttr{
			// Its own process group, so a signal reaches every descendant
			// that did not leave the group on purpose.
			Setpgid: true,
			// If the worker dies, the command does not outlive it. (Linux
			// sends it when the forking thread exits; Go's runtime does not
			// end threads a goroutine has not locked.)
			Pdeathsig: syscall.SIGKILL,
		},
	}
	return cmd, timeout, nil
}

func checkArgv(argv []string) error {
	if len(argv) == 0 || argv[0] == "" {
		return refuse(ReasonBadRequest, "empty argv")
	}
	size := 0
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return refuse(ReasonBadRequest, "argument with a NUL byte")
		}
		size += len(a) + 1
	}
	if size > argvBytesPerRequestMax {
		return refuse(ReasonBadRequest, "argv of %d bytes, at most %d", size, argvBytesPerRequestMax)
	}
	return nil
}

// supervise waits for the command. On timeout or cancellation it sends
// SIGTERM to the process group, gives it the grace period, then SIGKILL.
// Once the command has been reaped, whatever is left of its group is
// killed, so nothing it started outlives the call.
func (e *Executor) supervise(ctx context.Context, cmd *exec.Cmd, timeout time.Duration) (Result, error) {
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	var res Result
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		res.TimedOut = true
		err = e.stop(pgid, done)
	case <-ctx.Done():
		res.Cancelled = true
		err = e.stop(pgid, done)
	}
	killGroup(pgid)
	return res, err
}

// stop terminates the group, then kills it after the grace period, and
// returns what Wait returned.
func (e *Executor) stop(pgid int, done <-chan error) error {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	grace := time.NewTimer(ms(e.p.cfg.GraceMs))
	defer grace.Stop()
	select {
	case err := <-done:
		return err
	case <-grace.C:
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return <-done
}

// fillStatus copies the exit status and resource usage. The usage covers
// the command and the descendants it waited for.
func fillStatus(res *Result, ps *os.ProcessState) {
	res.ExitCode = ps.ExitCode()
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Signal = ws.Signal()
	}
	res.UserCPU, res.SysCPU = ps.UserTime(), ps.SystemTime()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		res.MaxRSSBytes = ru.Maxrss * 1024 // Linux reports kilobytes
	}
}
