package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one server process the benchmark runs. Its command line is kept
// so that it can be started again on the same data after a kill.
type proc struct {
	name    string
	bin     string
	args    []string
	logPath string

	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
}

// start runs the process with its output appended to its log. It gets a
// process group of its own, so that a Ctrl-C at the terminal reaches the
// benchmark, which stops its servers itself, and it is killed if the
// benchmark dies first.
func (p *proc) start() error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return nil
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stopAll sends sig to every process that runs, waits up to grace for
// them all to exit, then kills the ones left.
func stopAll(ps []*proc, sig syscall.Signal, grace time.Duration) {
	for _, p := range ps {
		if p.running() {
			p.cmd.Process.Signal(sig)
		}
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	expired := false
	for _, p := range ps {
		if p.cmd == nil {
			continue
		}
		if !expired {
			select {
			case <-p.done:
				continue
			case <-deadline.C:
				expired = true
			}
		}
		p.cmd.Process.Kill() // an error means it has exited already
		<-p.done
	}
}

// logTail is the end of the process's log, for an error message.
func (p *proc) logTail() string {
	const tailBytesMax = 2000
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(b[max(0, len(b)-tailBytesMax):]))
}

// memory is what /proc/PID/status says of a process's resident set.
type memory struct {
	VmRSSKB   int64 `json:"vm_rss_kb"`
	RssAnonKB int64 `json:"rss_anon_kb"` // the process's own memory; the rest is files and shared memory
}

func readMemory(pid int) (memory, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), ":")
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &m.VmRSSKB
		case "RssAnon":
			dst = &m.RssAnonKB
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc/%d/status %s: %w", pid, name, err)
		}
		*dst = kb
		found++
	}
	if found != 2 {
		return m, fmt.Errorf("/proc/%d/status: VmRSS or RssAnon missing", pid)
	}
	return m, sc.Err()
}

// userHz is the unit of /proc/PID/stat's CPU times: USER_HZ, 100 on Linux
// on every architecture Go runs on.
const userHz = 100

// cpuTime is CPU a process used, in user space and in the kernel (its
// system calls: socket reads and writes, fsync).
type cpuTime struct{ User, Sys time.Duration }

func (c cpuTime) total() time.Duration { return c.User + c.Sys }

func (c cpuTime) plus(d cpuTime) cpuTime { return cpuTime{c.User + d.User, c.Sys + d.Sys} }

func (c cpuTime) minus(d cpuTime) cpuTime { return cpuTime{c.User - d.User, c.Sys - d.Sys} }

// readCPU is the CPU time the process pid has used so far (/proc/PID/stat's
// utime and stime, in steps of 10 ms).
func readCPU(pid int) (cpuTime, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return cpuTime{}, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return cpuTime{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return cpuTime{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var ticks [2]int64
	for j, s := range f[11:13] { // fields 14 and 15: utime, stime
		if ticks[j], err = strconv.ParseInt(s, 10, 64); err != nil {
			return cpuTime{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	return cpuTime{time.Duration(ticks[0]) * time.Second / userHz, time.Duration(ticks[1]) * time.Second / userHz}, nil
}

// selfCPU is the CPU time, user and system, this process has used so far:
// the load generator's, whose clients run one system at a time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// diskBytes is the space the files under dir take on disk (allocated
// blocks, so preallocated but unwritten files count for what they hold).
func diskBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file compaction removed while we walked
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	return total, err
}

// freePorts finds n loopback ports nobody listens on now, held open until
// all are found so that none is handed out twice. Others may take one
// before our servers bind it; a server that cannot bind fails its start.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
