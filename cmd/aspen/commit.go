package main

import (
	"bytes"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
)

// commit names the source an artifact came from, so that its replay can be
// run against the same code. A "-dirty" suffix says the tree had uncommitted
// changes, which the commit alone does not reproduce.
var commit = sync.OnceValue(func() string {
	if rev := buildCommit(); rev != "" {
		return rev
	}
	if rev := gitCommit(); rev != "" {
		return rev
	}
	return "unknown"
})

// buildCommit reads the revision that `go build` stamps into the binary.
func buildCommit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}

// gitCommit asks git, for binaries built without version control stamps
// (go run, go test).
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	status, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
	if err == nil && len(bytes.TrimSpace(status)) > 0 {
		rev += "-dirty"
	}
	return rev
}
