package shell

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// groupGoneWaitMax bounds the wait for a killed group to stop running. The
// kernel tears processes down asynchronously after SIGKILL.
const (
	groupGoneWaitMax  = time.Second
	groupGonePollStep = 5 * time.Millisecond
	procEntriesMax    = 1 << 22 // above Linux's pid_max limit
)

// killGroup kills what is left of the command's process group and waits
// until none of it runs, so nothing the command started outlives the call.
// The group outlives its leader while a member exists, and its id is not
// reused until the last member is gone, so the pgid is still safe to signal.
func killGroup(pgid int) {
	if syscall.Kill(-pgid, syscall.SIGKILL) != nil {
		return // ESRCH: nothing left, the common case
	}
	deadline := time.Now().Add(groupGoneWaitMax)
	for groupRunning(pgid) && time.Now().Before(deadline) {
		time.Sleep(groupGonePollStep)
	}
}

// groupRunning reports whether a member of the process group exists and is
// not a zombie. Killed orphans are reaped by PID 1, which may take its time
// (here about a second); a zombie runs nothing, so it counts as gone.
func groupRunning(pgid int) bool {
	if syscall.Kill(-pgid, 0) != nil {
		return false
	}
	dir, err := os.Open("/proc")
	if err != nil {
		return true // cannot tell: the deadline bounds the wait
	}
	defer dir.Close()
	names, _ := dir.Readdirnames(procEntriesMax)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if state, group, ok := procState(pid); ok && group == pgid && state != 'Z' {
			return true
		}
	}
	return false
}

// procState reads a process's state letter and process group from
// /proc/<pid>/stat. The fields after the parenthesised name are: state,
// ppid, pgrp.
func procState(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 3 || len(fields[0]) != 1 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(fields[2])
	return fields[0][0], pgrp, err == nil
}
