//go:build linux

package faultcheck_test

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
)

// The shape of the schedule run: a 3-process cluster whose nodes each run a
// worker pool; a schedule firing every second a script that leaves a line
// of evidence per run and takes 2 s, so that runs overlap; the leader
// kill -9ed 10 s in, at a moment its own pool runs one of the jobs, and
// restarted 3 s later; the schedule paused 30 s in. Catch-up is run-all
// with a bound far above the ticks the outage leaves due, so the contract
// (core/sched Table.Fire, Due) is: every tick from the first to the last
// fired has exactly one job, none missed, none doubled, and every job
// succeeds (the one killed with the leader's pool after its lease runs out).
const (
	schedNodes     = 3
	schedTickMs    = 50
	schedName      = "tick"
	schedEvery     = time.Second
	schedRun       = 30 * time.Second // from the add to the pause
	schedKillAfter = 10 * time.Second
	schedDowntime  = 3 * time.Second
	// schedKillWindow is how long past schedKillAfter the kill waits for
	// the leader's pool to hold a running job; then it kills regardless.
	schedKillWindow = 5 * time.Second
	schedJobRun     = 2 * time.Second // each run's sleep: runs overlap, and one is cut by the kill
	schedCatchUpMax = 100             // far above the ticks an election and schedDowntime leave due
	// schedJobTimeout is the lease of each job: a job leased by the killed
	// node's pool runs again this long after its last heartbeat.
	schedJobTimeout  = 3 * time.Second
	schedAttemptsMax = 5
	schedPollMs      = 100
	// schedSlack is for process scheduling: three nodes with their pools,
	// the test and whatever else runs may share 2 cores.
	schedSlack = 2 * time.Second
	// schedSettle bounds the wait after the pause for every job to succeed.
	schedSettle     = 20 * time.Second
	schedCallTime   = 3 * time.Second
	schedTestBudget = 90 * time.Second
)

func TestScheduleEverySecondThroughLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process cluster with worker pools and kill -9s its leader")
	}
	bin, dir := buildAspen(t), artifactsDir(t)
	w := newSchedWorld(t, bin, dir)
	c := startProcClusterWith(t, bin, dir, schedNodes, schedTickMs, w.nodeConfig)
	ctx, cancel := context.WithTimeout(context.Background(), schedTestBudget)
	defer cancel()
	if _, err := c.leader(ctx, 15*time.Second, true); err != nil {
		t.Fatalf("cluster start: %v (logs in %s)", err, dir)
	}
	election := electionTimeout(ctx, t, c, schedTickMs)
	w.createToken(ctx, t, c.httpAddrs()[0])
	added := w.addSchedule(ctx, t, c.httpAddrs()[1])

	faults := make(chan schedFault, 1)
	go func() { faults <- killLeaderWhileItRuns(ctx, c, schedKillAfter, schedDowntime) }()
	wait(ctx, time.Until(added.Add(schedRun)))
	f := <-faults
	if f.err != nil {
		t.Fatalf("fault injection: %v", f.err)
	}
	info := w.pause(ctx, t, c.httpAddrs())
	ticks := expectedTicks(t, info)
	jobs := waitJobsSucceeded(ctx, t, c.httpAddrs(), len(ticks))
	t.Logf("schedule %s: %d ticks %s to %s; fired %d, missed %d, skipped %d; leader node %d killed %v after the add, restarted %v after it (election timeout %v)",
		schedName, len(ticks), ticks[0].Format(time.TimeOnly), ticks[len(ticks)-1].Format(time.TimeOnly), info.Fired, info.Missed, info.Skipped,
		f.leader, f.killed.Sub(added).Round(time.Millisecond), f.restarted.Sub(added).Round(time.Millisecond), election)

	if info.Missed != 0 || info.Skipped != 0 || info.Fired != uint64(len(ticks)) {
		t.Errorf("schedule counts: fired %d, missed %d, skipped %d; want %d fired, none missed or skipped (catch-up run-all, overlap allow)",
			info.Fired, info.Missed, info.Skipped, len(ticks))
	}
	wantOneJobPerTick(t, ticks, jobs)
	runs := w.readRuns(t)
	lagMax := wantEvidence(t, ticks, jobs, runs)
	t.Logf("jobs: %d, all succeeded; runs in the evidence file: %d (%.2f per job), leases given: %d; the run a job kept started at most %v after its tick (bound %v)",
		len(jobs), len(runs), float64(len(runs))/float64(len(jobs)), attemptsSum(jobs), lagMax.Round(time.Millisecond), schedLagMax(election))
	if lagMax > schedLagMax(election) {
		t.Errorf("a job started %v after its tick; want at most %v (run %v + job timeout %v + election timeout %v + slack %v)",
			lagMax.Round(time.Millisecond), schedLagMax(election), schedJobRun, schedJobTimeout, election, 2*schedSlack)
	}
	t.Logf("jobs by worker: %s; after the restart of node %d: %s", byWorker(jobs, time.Time{}), f.leader, byWorker(jobs, f.restarted))
	logCutJob(t, f, jobs)
	w.verifyAudit(ctx, t, c.httpAddrs(), len(jobs))
}

// schedLagMax bounds how long after its tick a job's last run starts: a
// tick due during the outage waits for a new leader; a job cut by the kill
// was leased (a slack after its tick) and heartbeaten for up to a run, and
// waits for its lease to run out and a new leader to see it.
func schedLagMax(election time.Duration) time.Duration {
	return schedJobRun + schedJobTimeout + election + 2*schedSlack
}

// schedFault is what killLeaderWhileItRuns did, and when.
type schedFault struct {
	fault
	cut server.JobInfo // the job the leader's pool held at the kill (ID 0: none was seen)
}

// killLeaderWhileItRuns waits after, then kill -9s the leader as soon as
// its own pool holds the lease of one of the schedule's jobs (within
// schedKillWindow; past it, the leader goes anyway), waits down, and
// starts it again on the same data dir and ports.
func killLeaderWhileItRuns(ctx context.Context, c *procCluster, after, down time.Duration) schedFault {
	var f schedFault
	if !wait(ctx, after) {
		f.err = fmt.Errorf("before the kill: %w", ctx.Err())
		return f
	}
	var p *procNode
	for give := time.Now().Add(schedKillWindow); f.cut.ID == 0 && time.Now().Before(give); wait(ctx, 50*time.Millisecond) {
		var err error
		if p, err = c.leader(ctx, 5*time.Second, false); err != nil {
			f.err = fmt.Errorf("find the leader to kill: %w", err)
			return f
		}
		var leased server.JobList
		if callAny(ctx, []string{p.httpAddr}, "/v1/aspen/job/list", server.JobRequest{State: "leased"}, &leased) != nil {
			continue
		}
		for _, j := range leased.Jobs {
			if j.Worker == fmt.Sprintf("node%d", p.id) && strings.HasPrefix(j.Key, schedName+"@") {
				f.cut = j
			}
		}
	}
	f.leader, f.killed = p.id, time.Now()
	p.kill()
	if !wait(ctx, down) {
		f.err = fmt.Errorf("before the restart: %w", ctx.Err())
		return f
	}
	if err := p.start(c.bin); err != nil {
		f.err = err
		return f
	}
	f.restarted = time.Now()
	return f
}

// logCutJob says what became of the job the killed leader's pool was
// running: it should have run again once its lease ran out.
func logCutJob(t *testing.T, f schedFault, jobs []server.JobInfo) {
	t.Helper()
	var again []string
	for _, j := range jobs {
		if j.Attempts > 1 {
			again = append(again, fmt.Sprintf("job %d %d leases, last by %s", j.ID, j.Attempts, j.Worker))
		}
	}
	t.Logf("jobs leased more than once: %d (%s)", len(again), strings.Join(again, "; "))
	if f.cut.ID == 0 {
		t.Logf("the leader's pool held no job of the schedule when it was killed (none seen within %v)", schedKillWindow)
		return
	}
	t.Logf("job %d (%s) was leased by node%d's pool at the kill", f.cut.ID, f.cut.Key, f.leader)
}

// schedWorld is what the test sets up beside the cluster: the cluster key,
// the directory commands run in, the script the schedule runs, the file it
// leaves its evidence in, and the token that allows it.
type schedWorld struct {
	shellWorld
	log string
}

// schedScript is one run of the scheduled job: when it started and which
// process it was, appended to the evidence file ($1), then a sleep of $2
// seconds, then the same line printed as the job's output. It is not named like a shell, so the worker's policy runs
// it without allow_shell: the kernel runs its #! line, argv[0] stays the
// script.
const schedScript = `#!/bin/sh
line="$(date +%s%N) $$"
printf '%s\n' "$line" >> "$1"
sleep "$2"
printf '%s\n' "$line"
`

func newSchedWorld(t *testing.T, bin, dir string) *schedWorld {
	t.Helper()
	w := &schedWorld{shellWorld: newShellWorld(t, bin, dir, "tick.sh", schedScript, "tick.token", 2, schedPollMs)}
	w.log = filepath.Join(w.work, "runs.log")
	return w
}

// addSchedule adds the schedule and returns when the add was answered.
func (w *schedWorld) addSchedule(ctx context.Context, t *testing.T, addr string) time.Time {
	t.Helper()
	r := runAspen(ctx, w.bin, "schedule", "add", "--addr", addr, schedName, "--every", schedEvery.String(),
		"--overlap", "allow", "--catch-up", "run-all", "--catch-up-max", fmt.Sprint(schedCatchUpMax),
		"--timeout", schedJobTimeout.String(), "--max-attempts", fmt.Sprint(schedAttemptsMax),
		"--token", "@"+w.tokenFile, "--", w.script, w.log, fmt.Sprint(schedJobRun.Seconds()))
	if r.err() != nil {
		t.Fatal(r.err())
	}
	t.Logf("%s", strings.TrimSpace(r.stdout))
	return time.Now()
}

// pause stops the schedule, through the first node that answers, so that
// the ticks it fired are settled, and returns it as paused.
func (w *schedWorld) pause(ctx context.Context, t *testing.T, addrs []string) server.ScheduleInfo {
	t.Helper()
	var info server.ScheduleInfo
	err := pollUntilEach(ctx, 10*time.Second, 2*schedCallTime, func(ctx context.Context) error {
		if err := callAny(ctx, addrs, "/v1/aspen/schedule/pause", server.ScheduleRequest{Name: schedName}, &info); err != nil {
			return err
		}
		return callAny(ctx, addrs, "/v1/aspen/schedule/get", server.ScheduleRequest{Name: schedName}, &info)
	})
	if err != nil || !info.Paused {
		t.Fatalf("pause %s: %v (paused: %v)", schedName, err, info.Paused)
	}
	return info
}

// expectedTicks are the schedule's ticks from the first, a second after the
// add's whole second (interval ticks count from it), to the last fired.
func expectedTicks(t *testing.T, info server.ScheduleInfo) []time.Time {
	t.Helper()
	created, err1 := time.Parse(time.RFC3339, info.Created)
	last, err2 := time.Parse(time.RFC3339, info.LastTickUTC)
	if err1 != nil || err2 != nil {
		t.Fatalf("schedule %s: created %q, last tick %q: %v %v", schedName, info.Created, info.LastTickUTC, err1, err2)
	}
	var ticks []time.Time
	for tick := created.Add(schedEvery); !tick.After(last) && len(ticks) < 10*int(schedRun/schedEvery); tick = tick.Add(schedEvery) {
		ticks = append(ticks, tick)
	}
	if least := int((schedRun - schedSlack) / schedEvery); len(ticks) < least {
		t.Fatalf("schedule %s: ticks %s to %s, %d of them; want at least %d in a %v run", schedName, info.Created, info.LastTickUTC, len(ticks), least, schedRun)
	}
	return ticks
}

// jobStates are every state a job can be listed in.
var jobStates = []string{"pending", "leased", "succeeded", "failed", "dead", "cancelled"}

// schedJobs lists the schedule's jobs (keyed name@tick) in every state.
func schedJobs(ctx context.Context, addrs []string) ([]server.JobInfo, error) {
	var out []server.JobInfo
	for _, state := range jobStates {
		after := uint64(0)
		for range 100 { // pages: far more than a run creates
			var page server.JobList
			if err := callAny(ctx, addrs, "/v1/aspen/job/list", server.JobRequest{State: state, After: after}, &page); err != nil {
				return nil, fmt.Errorf("list %s jobs: %w", state, err)
			}
			for _, j := range page.Jobs {
				if strings.HasPrefix(j.Key, schedName+"@") {
					out = append(out, j)
				}
			}
			if after = page.Next; after == 0 {
				break
			}
		}
	}
	return out, nil
}

// waitJobsSucceeded waits for the schedule's jobs to number n and all to
// have succeeded, and returns them with their outputs.
func waitJobsSucceeded(ctx context.Context, t *testing.T, addrs []string, n int) []server.JobInfo {
	t.Helper()
	var jobs []server.JobInfo
	err := pollUntilEach(ctx, schedSettle, 2*schedCallTime, func(ctx context.Context) error {
		var err error
		if jobs, err = schedJobs(ctx, addrs); err != nil {
			return err
		}
		byState := map[string]int{}
		for _, j := range jobs {
			byState[j.State]++
		}
		if len(jobs) < n || byState["succeeded"] != len(jobs) {
			return fmt.Errorf("jobs by state %v; want %d, all succeeded", byState, n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("schedule %s's jobs: %v", schedName, err)
	}
	for i, j := range jobs {
		if err := pollUntilEach(ctx, 5*time.Second, schedCallTime, func(ctx context.Context) error {
			return callAny(ctx, addrs, "/v1/aspen/job/get", server.JobRequest{ID: j.ID}, &jobs[i])
		}); err != nil {
			t.Fatalf("get job %d: %v", j.ID, err)
		}
	}
	return jobs
}

// wantOneJobPerTick checks every tick has exactly one job, and no job
// names a tick that is not one.
func wantOneJobPerTick(t *testing.T, ticks []time.Time, jobs []server.JobInfo) {
	t.Helper()
	perKey := map[string][]uint64{}
	for _, j := range jobs {
		perKey[j.Key] = append(perKey[j.Key], j.ID)
	}
	want := map[string]bool{}
	for _, tick := range ticks {
		key := schedName + "@" + tick.UTC().Format(time.RFC3339)
		want[key] = true
		switch ids := perKey[key]; {
		case len(ids) == 0:
			t.Errorf("tick %s has no job", key)
		case len(ids) > 1:
			t.Errorf("tick %s has %d jobs: %v", key, len(ids), ids)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(perKey)) {
		if !want[key] {
			t.Errorf("job %v is keyed %s, not one of the %d ticks fired", perKey[key], key, len(ticks))
		}
	}
}

// run is one line of the evidence file: when a run started, and its pid.
type run struct {
	startNs int64
	pid     int
}

func (w *schedWorld) readRuns(t *testing.T) map[string]run {
	t.Helper()
	f, err := os.Open(w.log)
	if err != nil {
		t.Fatalf("evidence file: %v", err)
	}
	defer f.Close()
	runs := map[string]run{}
	for sc := bufio.NewScanner(f); sc.Scan(); {
		r, err := parseRun(sc.Text())
		if err != nil {
			t.Fatalf("evidence file %s: %v", w.log, err)
		}
		if _, dup := runs[sc.Text()]; dup {
			t.Fatalf("evidence file %s: line %q twice", w.log, sc.Text())
		}
		runs[sc.Text()] = r
	}
	return runs
}

func parseRun(line string) (run, error) {
	ns, pid, ok := strings.Cut(strings.TrimSpace(line), " ")
	var r run
	var err1, err2 error
	r.startNs, err1 = strconv.ParseInt(ns, 10, 64)
	r.pid, err2 = strconv.Atoi(pid)
	if !ok || err1 != nil || err2 != nil {
		return run{}, fmt.Errorf("line %q: want <start ns> <pid>", line)
	}
	return r, nil
}

// wantEvidence checks each job's output is a run the evidence file holds,
// that no run came before its tick, and that there were no more runs than
// leases; it returns the longest a run started after its tick.
func wantEvidence(t *testing.T, ticks []time.Time, jobs []server.JobInfo, runs map[string]run) time.Duration {
	t.Helper()
	var lagMax time.Duration
	for _, j := range jobs {
		if j.Result == nil {
			t.Errorf("job %d (%s) has no result", j.ID, j.Key)
			continue
		}
		line := strings.TrimSpace(j.Result.Output)
		r, ok := runs[line]
		if !ok {
			t.Errorf("job %d (%s): output %q is not in the evidence file", j.ID, j.Key, line)
			continue
		}
		tick, err := time.Parse(time.RFC3339, strings.TrimPrefix(j.Key, schedName+"@"))
		if err != nil {
			t.Errorf("job %d: key %q: %v", j.ID, j.Key, err)
			continue
		}
		lag := time.Duration(r.startNs - tick.UnixNano())
		if lag < 0 {
			t.Errorf("job %d (%s) ran at %v, %v before its tick", j.ID, j.Key, time.Unix(0, r.startNs).UTC().Format(time.RFC3339Nano), -lag)
		}
		lagMax = max(lagMax, lag)
	}
	if leases := attemptsSum(jobs); int64(len(runs)) > leases || len(runs) < len(jobs) {
		t.Errorf("%d runs in the evidence file for %d jobs given %d leases; want at least one per job and at most one per lease", len(runs), len(jobs), leases)
	}
	return lagMax
}

func attemptsSum(jobs []server.JobInfo) int64 {
	n := int64(0)
	for _, j := range jobs {
		n += j.Attempts
	}
	return n
}

// byWorker counts the jobs each worker completed, of those submitted after from.
func byWorker(jobs []server.JobInfo, from time.Time) string {
	n := map[string]int{}
	for _, j := range jobs {
		if j.SubmittedMs >= from.UnixMilli() {
			n[j.Worker]++
		}
	}
	var parts []string
	for _, w := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s %d", w, n[w]))
	}
	return strings.Join(parts, ", ")
}

// verifyAudit runs aspen audit verify through the first node that answers:
// the chain must verify and hold a record for each job at least.
func (w *schedWorld) verifyAudit(ctx context.Context, t *testing.T, addrs []string, jobs int) {
	t.Helper()
	var r cliResult
	for _, addr := range addrs {
		if r = runAspen(ctx, w.bin, "audit", "verify", "--addr", addr); r.err() == nil {
			break
		}
	}
	if r.err() != nil {
		t.Fatal(r.err())
	}
	var records int
	if _, err := fmt.Sscanf(r.stdout, "audit log verified: %d records", &records); err != nil {
		t.Fatalf("aspen audit verify: %q: %v", r.stdout, err)
	}
	t.Logf("%s", strings.TrimSpace(r.stdout))
	if records < jobs {
		t.Errorf("audit log: %d records for %d jobs that ran; want one per run at least", records, jobs)
	}
}

// callAny POSTs req to path on each node in turn until one answers 200.
func callAny(ctx context.Context, addrs []string, path string, req, v any) error {
	var errs []string
	for _, addr := range addrs {
		callCtx, cancel := context.WithTimeout(ctx, schedCallTime)
		_, err := postJSON(callCtx, addr, path, req, v)
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", addr, err))
	}
	return fmt.Errorf("no node answered: %s", strings.Join(errs, "; "))
}
