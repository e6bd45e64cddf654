//go:build linux

package faultcheck_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// This file adds to cluster_test.go what the membership and backup tests
// need: nodes started with arguments of their own (joiners, restored
// members), the aspen CLI as a user runs it, and the membership API.

// addNode adds a node that runs `aspen args...` to c without starting it;
// its log goes to dir. It is killed with the others when the test ends.
func (c *procCluster) addNode(dir string, id uint64, httpAddr string, args ...string) *procNode {
	p := &procNode{id: id, args: args, httpAddr: httpAddr, logPath: filepath.Join(dir, fmt.Sprintf("node%d.log", id))}
	c.nodes = append(c.nodes, p)
	return p
}

// node returns the node with id, or nil.
func (c *procCluster) node(id uint64) *procNode {
	for _, p := range c.nodes {
		if p.id == id {
			return p
		}
	}
	return nil
}

// nodeArgs are the flags of member id of a cluster kept under dir.
func nodeArgs(dir string, id uint64, cluster, httpAddr string, tickMs int) []string {
	return []string{"--id", fmt.Sprint(id), "--data-dir", filepath.Join(dir, fmt.Sprintf("node%d", id)),
		"--initial-cluster", cluster, "--http-addr", httpAddr, "--tick-ms", fmt.Sprint(tickMs)}
}

// waitExited waits for p's process to exit on its own and returns its exit
// status.
func (p *procNode) waitExited(ctx context.Context, timeout time.Duration) (int, error) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("node %d was never started", p.id)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), nil
	case <-t.C:
		return 0, fmt.Errorf("node %d still running %v later", p.id, timeout)
	case <-ctx.Done():
		return 0, fmt.Errorf("waiting for node %d to exit: %w", p.id, ctx.Err())
	}
}

// cliResult is one finished aspen command.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
}

// runAspen runs the CLI as a user would, to its end or ctx's.
func runAspen(ctx context.Context, bin string, args ...string) cliResult {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{args: args, code: 0}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		r.code = -1
		stderr.WriteString(err.Error())
	}
	r.stdout, r.stderr = stdout.String(), stderr.String()
	return r
}

func (r cliResult) err() error {
	if r.code == 0 {
		return nil
	}
	return fmt.Errorf("aspen %s: exit status %d: %s", strings.Join(r.args, " "), r.code, strings.TrimSpace(r.stderr))
}

// member is an entry of GET /v1/aspen/members.
type member struct {
	ID                 uint64
	PeerAddr, HTTPAddr string
	Learner            bool
}

func fetchMembers(ctx context.Context, addr string) ([]member, error) {
	var ms []member
	if err := getJSON(ctx, "http://"+addr+"/v1/aspen/members", &ms); err != nil {
		return nil, fmt.Errorf("members from %s: %w", addr, err)
	}
	return ms, nil
}

// describeMembers is "3 4 5" for voters 3, 4 and 5; a learner is "4(learner)".
func describeMembers(ms []member) string {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b member) int { return cmp.Compare(a.ID, b.ID) })
	var parts []string
	for _, m := range ms {
		s := fmt.Sprint(m.ID)
		if m.Learner {
			s += "(learner)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// pollUntil calls cond every 20 ms until it returns nil or timeout passes,
// and returns its last error. Each call has a second.
func pollUntil(ctx context.Context, timeout time.Duration, cond func(context.Context) error) error {
	return pollUntilEach(ctx, timeout, time.Second, cond)
}

// pollUntilEach is pollUntil with each call given attempt.
func pollUntilEach(ctx context.Context, timeout, attempt time.Duration, cond func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		callCtx, cancel := context.WithTimeout(ctx, attempt)
		err := cond(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		wait(ctx, 20*time.Millisecond)
	}
}
