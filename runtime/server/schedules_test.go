package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/jobs"
)

// scheduleDo calls a schedule endpoint on node i and decodes a 200 answer into v.
func (c *cluster) scheduleDo(i int, op, body string, v any) (int, string) {
	c.t.Helper()
	return c.aspenDo(i, "schedule/"+op, body, v)
}

// scheduleOK calls a schedule endpoint that must succeed.
func (c *cluster) scheduleOK(i int, op, body string, v any) {
	c.t.Helper()
	if code, answer := c.scheduleDo(i, op, body, v); code != http.StatusOK {
		c.t.Fatalf("schedule %s %s via node %d: got %d %s, want 200", op, body, i+1, code, answer)
	}
}

// scheduledJobs returns the jobs of type typ the queue holds, pending or
// otherwise, through the jobs module's own queries.
func (c *cluster) scheduledJobs(i int, typ string) []jobs.Job {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []jobs.Job
	for _, state := range []jobs.State{jobs.Pending, jobs.Leased, jobs.Succeeded} {
		v, err := c.servers[i].Query(ctx, jobs.List(state, 0, 0))
		if err != nil {
			c.t.Fatalf("list %v jobs: %v", state, err)
		}
		for _, j := range v.(jobs.Answer).Jobs {
			if j.Type == typ {
				out = append(out, j)
			}
		}
	}
	return out
}

// waitJobs waits until at least n jobs of type typ exist and returns them.
func (c *cluster) waitJobs(i int, typ string, n int, within time.Duration) []jobs.Job {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := c.scheduledJobs(i, typ)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("jobs of type %s: got %d within %v, want at least %d", typ, len(got), within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An every-1s schedule whose jobs nobody leases: overlap allow, so each
// tick makes a job though the last one is still pending.
func TestScheduleLifecycle(t *testing.T) {
	c := startCluster(t, 3)
	var added ScheduleInfo
	c.scheduleOK(0, "add", `{"Name": "tick", "Every": "1s", "Type": "noop", "Payload": "hi", "MaxAttempts": 2,
		"Overlap": "allow"}`, &added)
	if added.Name != "tick" || added.Every != "1s" || added.Cron != "" || added.Type != "noop" || added.Payload != "hi" ||
		added.MaxAttempts != 2 || added.TimeoutMs != scheduleTimeoutMsDefault || added.Overlap != "allow" ||
		added.CatchUp != "run-once" || added.Paused || added.NextTick == "" || added.NextTickUTC == "" || added.LastTick != "" {
		t.Fatalf("add: got %+v, want the definition with defaults, a next tick and no last tick", added)
	}
	jobsBefore := c.waitJobs(1, "noop", 2, 10*time.Second)
	for _, j := range jobsBefore {
		if !strings.HasPrefix(j.Key, "tick@") || j.AttemptsMax != 2 {
			t.Fatalf("scheduled job: got %+v, want key tick@..., 2 attempts", j)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.servers[2].Query(ctx, jobs.Get(jobsBefore[0].ID))
	if err != nil {
		t.Fatalf("get job %d: %v", jobsBefore[0].ID, err)
	}
	if j := v.(jobs.Answer).Job; string(j.Payload) != "hi" {
		t.Fatalf("get job %d: got %+v, want the template's payload hi", j.ID, j)
	}
	var got ScheduleInfo
	c.scheduleOK(2, "get", `{"Name": "tick"}`, &got)
	if got.Fired < 2 || got.LastTick == "" || got.LastJob == 0 {
		t.Fatalf("get after fires: got %+v, want at least 2 fired, a last tick and job", got)
	}

	var paused ScheduleInfo
	c.scheduleOK(1, "pause", `{"Name": "tick"}`, &paused)
	if !paused.Paused || paused.NextTick != "" {
		t.Fatalf("pause: got %+v, want paused with no next tick", paused)
	}
	atPause := len(c.scheduledJobs(0, "noop"))
	time.Sleep(2500 * time.Millisecond) // two ticks and more a running schedule would have fired
	if n := len(c.scheduledJobs(0, "noop")); n != atPause {
		t.Fatalf("jobs while paused: got %d, want %d as at the pause", n, atPause)
	}

	var resumed ScheduleInfo
	c.scheduleOK(2, "resume", `{"Name": "tick"}`, &resumed)
	if resumed.Paused || resumed.NextTick == "" {
		t.Fatalf("resume: got %+v, want unpaused with a next tick", resumed)
	}
	c.waitJobs(0, "noop", atPause+1, 10*time.Second)

	var h ScheduleHistory
	c.scheduleOK(0, "history", `{"Name": "tick"}`, &h)
	created := 0
	for _, f := range h.Fires {
		if f.Outcome == "created" && f.Job != 0 && f.Tick != "" {
			created++
		}
	}
	if h.Name != "tick" || created < atPause+1 {
		t.Fatalf("history: got %+v, want at least %d created fires with jobs", h, atPause+1)
	}

	var list ScheduleList
	if code, _, body := do(t, "GET", c.url(1, "/v1/aspen/schedule/list"), ""); code != http.StatusOK ||
		json.Unmarshal([]byte(body), &list) != nil || len(list.Schedules) != 1 || list.Schedules[0].Name != "tick" {
		t.Fatalf("list: got %d %s, want the one schedule", code, body)
	}
	c.scheduleOK(1, "remove", `{"Name": "tick"}`, nil)
	for _, op := range []string{"get", "history", "pause", "resume", "remove"} {
		if code, body := c.scheduleDo(2, op, `{"Name": "tick"}`, nil); code != http.StatusNotFound {
			t.Fatalf("%s of a removed schedule: got %d %s, want 404", op, code, body)
		}
	}
}

func TestScheduleCronInZone(t *testing.T) {
	c := startCluster(t, 1)
	var s ScheduleInfo
	c.scheduleOK(0, "add", `{"Name": "backup", "Cron": "*/5 * * * *", "Zone": "Europe/Berlin", "Type": "backup",
		"Overlap": "buffer-one", "CatchUp": "run-all", "CatchUpMax": 3, "TimeoutMs": 5000}`, &s)
	next, err := time.Parse(time.RFC3339, s.NextTick)
	if err != nil {
		t.Fatalf("next tick %q: %v", s.NextTick, err)
	}
	utc, _ := time.Parse(time.RFC3339, s.NextTickUTC)
	if !next.Equal(utc) || next.Minute()%5 != 0 || next.Second() != 0 || !strings.HasSuffix(s.NextTickUTC, "Z") ||
		strings.HasSuffix(s.NextTick, "Z") {
		t.Fatalf("next tick: got %s (UTC %s), want a five-minute mark in Berlin's offset, the same instant in UTC", s.NextTick, s.NextTickUTC)
	}
	if s.Cron != "*/5 * * * *" || s.Zone != "Europe/Berlin" || s.Overlap != "buffer-one" || s.CatchUp != "run-all" ||
		s.CatchUpMax != 3 || s.TimeoutMs != 5000 {
		t.Fatalf("add: got %+v, want the definition as given", s)
	}
}

func TestScheduleRefusalsChangeNothing(t *testing.T) {
	c := startCluster(t, 3)
	c.scheduleOK(0, "add", `{"Name": "held", "Cron": "0 3 * * *", "Type": "noop"}`, nil)
	for _, tc := range []struct {
		op, body string
		code     int
		inBody   string
	}{
		{"add", `{"Name": "x", "Cron": "61 * * * *", "Type": "noop"}`, 400, "invalid schedule"},
		{"add", `{"Name": "x", "Cron": "* * *", "Type": "noop"}`, 400, "invalid schedule"},
		{"add", `{"Name": "x", "Cron": "0 3 * * *", "Zone": "Mars/Olympus", "Type": "noop"}`, 400, "Mars/Olympus"},
		{"add", `{"Name": "x", "Cron": "TZ=Europe/Berlin 0 3 * * *", "Type": "noop"}`, 400, "give the time zone separately"},
		{"add", `{"Name": "x", "Every": "1.5s", "Type": "noop"}`, 400, "whole seconds"},
		{"add", `{"Name": "x", "Every": "1s", "Cron": "* * * * *", "Type": "noop"}`, 400, "not both"},
		{"add", `{"Name": "x", "Type": "noop"}`, 400, "Cron or Every is required"},
		{"add", `{"Name": "x", "Every": "1s"}`, 400, "Type is required"},
		{"add", `{"Name": "x", "Every": "1s", "Type": ""}`, 400, "Type is required"},
		{"add", `{"Every": "1s", "Type": "noop"}`, 400, "Name is required"},
		{"add", `{"Name": "a b", "Every": "1s", "Type": "noop"}`, 400, "no spaces"},
		{"add", `{"Name": "x", "Every": "1s", "Type": "noop", "Overlap": "queue"}`, 400, "want skip, buffer-one or allow"},
		{"add", `{"Name": "x", "Every": "1s", "Type": "noop", "CatchUp": "all"}`, 400, "want skip, run-once or run-all"},
		{"add", `{"Name": "x", "Every": "1s", "Type": "noop", "CatchUpMax": 5}`, 400, "run-all bound"},
		{"add", `{"Name": "x", "Every": "1s", "Type": "noop", "MaxAttempts": 1000}`, 400, "max attempts"},
		{"add", `{"Name": "x", "Every": "1s", "Type": "noop", "TimeoutMs": -1}`, 400, "TimeoutMs"},
		{"add", `{"Name": "x", "Every": "1s", "Type": "noop", "Colour": "red"}`, 400, "unknown field"},
		{"add", `{"Name": "x", "Every": "1s", "Type": "noop", "Payload": "` + strings.Repeat("p", 65<<10) + `"}`, 413, "payload"},
		{"add", `{"Name": "held", "Every": "1s", "Type": "noop"}`, 409, "already exists"},
		{"add", `{"Name": "x", "Cron": "*/5 * * * *", "Type": "shell", "Payload": "[\"/bin/true\"]"}`, 400, "leave Payload empty"},
		{"add", `{"Name": "held", "Every": "1s", "Type": "shell"}`, 403, "shell jobs need a capability token"},
		{"add", `{"Name": "held", "Every": "1s", "Type": " Shell", "Argv": ["/bin/true"]}`, 400, "spell it shell"},
		{"add", `{"Name": "held", "Every": "1s", "Type": "echo", "Capability": "aspen1.x.y"}`, 400, "are for jobs of type shell"},
		{"pause", `{}`, 400, "Name is required"},
		{"pause", `{"Name": "nope"}`, 404, "schedule not found"},
		{"get", `{"Name": "nope"}`, 404, "schedule not found"},
		{"history", `{"Name": "nope"}`, 404, "schedule not found"},
		{"list", `{"Limit": -1}`, 400, "Limit"},
	} {
		code, body := c.scheduleDo(1, tc.op, tc.body, nil)
		if code != tc.code || !strings.Contains(body, tc.inBody) {
			t.Errorf("%s %.80s: got %d %s, want %d with %q", tc.op, tc.body, code, body, tc.code, tc.inBody)
		}
	}
	if code, _, body := do(t, "GET", c.url(0, "/v1/aspen/schedule/add"), ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET add: got %d %s, want 405", code, body)
	}
	var list ScheduleList
	c.scheduleOK(2, "list", ``, &list)
	if len(list.Schedules) != 1 || list.Schedules[0].Name != "held" || list.Schedules[0].Type != "noop" ||
		list.Schedules[0].Cron != "0 3 * * *" {
		t.Errorf("schedules after the refusals: got %+v, want only held as added", list.Schedules)
	}
}
