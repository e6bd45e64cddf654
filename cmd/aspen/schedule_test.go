package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testSchedule drives the schedule commands against the dev cluster: a
// job type no worker serves, so its jobs stay pending and overlap allow
// lets every tick make one.
func testSchedule(t *testing.T, d *devCluster) {
	addr := d.addrs[0]
	schedule := func(args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"schedule"}, withAddr(addr, args)...)...)
	}
	payload := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(payload, []byte(`{"n": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o := schedule("add", "report", "--cron", "0 3 * * *", "--tz", "Europe/Berlin", "--type", "report",
		"--payload", "@"+payload, "--overlap", "allow", "--timeout", "30s")
	o.wantCode(t, 0)
	if !strings.HasPrefix(o.stdout, "added schedule report; next tick ") || !strings.Contains(o.stdout, "T03:00:00+0") {
		t.Errorf("add with flags after NAME: got %q, want the next 03:00 in Berlin", o.stdout)
	}
	o = aspen(t, "", "schedule", "add", "--addr", addr, "--every", "1s", "--type", "noop", "tick")
	o.wantCode(t, 0)

	o = schedule("add", "backup", "--cron", "*/5 * * * *", "--tz", "Europe/Berlin", "--", "/usr/local/bin/backup.sh", "--full")
	o.wantCode(t, exitUsage)
	wantStderr(t, o, "needs --token")
	tok := aspen(t, "", "token", "create", "--addr", addr, "--key", filepath.Join(d.dir, "token.key"), "--subject", "ops",
		"--command", "/usr/local/bin/backup.sh", "--dir", "/srv/backups", "--ttl", "1h", "--id", "schedule-test")
	tok.wantCode(t, 0)
	o = schedule("add", "backup", "--cron", "*/5 * * * *", "--token", strings.TrimSpace(tok.stdout), "--", "/usr/local/bin/other.sh")
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "server answered 403: token does not allow this")
	o = schedule("add", "backup", "--cron", "*/5 * * * *", "--tz", "Europe/Berlin", "--token", strings.TrimSpace(tok.stdout),
		"--", "/usr/local/bin/backup.sh", "--full")
	o.wantCode(t, 0)
	wantStderr(t, schedule("add", "bad", "--cron", "* * *", "--type", "noop"), "server answered 400: invalid schedule")
	wantStderr(t, schedule("add", "bad", "--cron", "0 3 * * *", "--tz", "Mars/Olympus", "--type", "noop"), "Mars/Olympus")
	wantStderr(t, schedule("add", "tick", "--every", "1s", "--type", "noop"), "server answered 409")

	o = schedule("get", "report")
	o.wantCode(t, 0)
	for _, want := range []string{"schedule:         cron 0 3 * * *", "zone:             Europe/Berlin", `payload:          {"n": 1}`,
		"timeout:          30s", "overlap:          allow", "paused:           false"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("get: got\n%s\nwant a line %q", o.stdout, want)
		}
	}
	wantStdout(t, schedule("pause", "report"), "paused schedule report\n")
	o = schedule("list")
	o.wantCode(t, 0)
	if !strings.Contains(o.stdout, "NEXT TICK") || !hasRow(o.stdout, "report", "0", "3", "*", "*", "*", "Europe/Berlin", "report",
		"-", "-", "0", "0", "0", "true") {
		t.Errorf("list: got\n%s\nwant report paused with no next tick", o.stdout)
	}
	wantStdout(t, schedule("resume", "report"), "resumed schedule report\n")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		o = schedule("history", "tick")
		o.wantCode(t, 0)
		if strings.Contains(o.stdout, "OUTCOME") && strings.Contains(o.stdout, "created") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history of an every-1s schedule: got %q after 10 s, want a created fire", o.stdout)
		}
	}
	for _, name := range []string{"report", "tick", "backup"} {
		wantStdout(t, schedule("remove", name), "removed schedule "+name+"\n")
	}
	for _, args := range [][]string{{"get", "tick"}, {"pause", "tick"}, {"history", "tick"}, {"remove", "tick"}} {
		o = schedule(args...)
		o.wantCode(t, exitFailed)
		wantStderr(t, o, "server answered 404: schedule not found")
	}
	wantStdout(t, schedule("list"), "")
}

func TestScheduleUsage(t *testing.T) {
	closed := closedAddr(t)
	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"schedule", "add"}, exitUsage, "schedule add wants NAME"},
		{[]string{"schedule", "add", "x", "--type", "noop"}, exitUsage, "one of --cron EXPR and --every DUR"},
		{[]string{"schedule", "add", "x", "--cron", "* * * * *", "--every", "1s", "--type", "noop"}, exitUsage, "one of --cron"},
		{[]string{"schedule", "add", "x", "--every", "1s"}, exitUsage, "wants --type T, or a command after --"},
		{[]string{"schedule", "add", "x", "--every", "1s", "--type", "noop", "stray"}, exitUsage, "stray"},
		{[]string{"schedule", "add", "--type", "noop", "x", "--every", "1s", "--max-attempts", "x"}, exitUsage, "invalid value"},
		{[]string{"schedule", "add", "x", "--every", "1s", "--type", "noop", "--colour", "red"}, exitUsage, "not defined: -colour"},
		{[]string{"schedule", "add", "x", "--every", "1s", "--type", "report", "--", "/bin/true"}, exitUsage, "drop --type report"},
		{[]string{"schedule", "add", "x", "--every", "1s", "--payload", "p", "--", "/bin/true"}, exitUsage, "drop --payload"},
		{[]string{"schedule", "add", "x", "--every", "1s", "--type", "noop", "--timeout", "1500us"}, exitUsage, "--timeout"},
		{[]string{"schedule", "add", "x", "--every", "1s", "--type", "noop", "--payload", "@/nonexistent/p"}, exitUsage, "read payload"},
		{[]string{"schedule", "get"}, exitUsage, "schedule get wants NAME"},
		{[]string{"schedule", "pause", "a", "b"}, exitUsage, "schedule pause wants NAME"},
		{[]string{"schedule", "list", "extra"}, exitUsage, "takes no arguments"},
		{[]string{"schedule", "nope"}, exitUsage, "unknown command"},
		{[]string{"schedule", "list", "--addr", closed}, exitFailed, "cannot reach Aspen at " + closed},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o := aspen(t, "", tc.args...)
			o.wantCode(t, tc.code)
			wantStderr(t, o, tc.inStderr)
		})
	}
}
