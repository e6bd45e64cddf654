package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/topics"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/aspen-db/aspen/runtime/server/servertest"
)

// groupNode runs a node in the test and fills topic name with msgs
// messages keyed k0.. and valued v0.., round-robin over its partitions,
// through the Go API: the topic HTTP API and CLI are another branch's.
func groupNode(t *testing.T, name string, parts, msgs int) (*server.Server, string) {
	t.Helper()
	s := servertest.StartOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Call(ctx, topics.Create(topics.Def{Name: name, Partitions: parts, RetainMessages: 10000, RetainBytes: 1 << 20})); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	if msgs == 0 {
		return s, s.HTTPAddr()
	}
	in := make([]topics.In, msgs)
	for i := range in {
		in[i] = topics.In{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i), Partition: i % parts}
	}
	if _, err := s.Call(ctx, topics.Publish(name, in)); err != nil {
		t.Fatalf("publish: %v", err)
	}
	return s, s.HTTPAddr()
}

// A partitioned consumer prints every message once and commits: the lag
// is 0 after it, and a second run finds nothing left.
func TestGroupConsumePartitioned(t *testing.T) {
	_, addr := groupNode(t, "events", 3, 30)
	group := func(args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"group"}, withAddr(addr, args)...)...)
	}
	wantStdout(t, group("create", "--topic", "events", "--session", "3s", "p"), "created partitioned group p of topic events (3 partitions)\n")
	o := group("consume", "--member", "m1", "--max", "30", "--batch", "7", "p")
	o.wantCode(t, 0)
	lines := strings.Split(strings.TrimSpace(o.stdout), "\n")
	var got []string
	for _, l := range lines {
		var p, off, i int
		if _, err := fmt.Sscanf(l, "%d %d k%d v", &p, &off, &i); err != nil || l != fmt.Sprintf("%d %d k%d v%d", p, off, i, i) || i%3 != p || i/3 != off {
			t.Fatalf("line %q: want PARTITION OFFSET kN vN with N = 3 OFFSET + PARTITION", l)
		}
		got = append(got, l)
	}
	if slices.Sort(got); len(slices.Compact(got)) != 30 {
		t.Fatalf("consume --max 30: got %d distinct lines of %d, want 30:\n%s", len(got), len(lines), o.stdout)
	}
	d := group("describe", "p")
	d.wantCode(t, 0)
	for p := range 3 {
		if !hasRow(d.stdout, fmt.Sprint(p), "-", "10", "10", "0") {
			t.Errorf("describe after consuming everything: want partition %d committed at 10, lag 0, no owner (the consumer left); got\n%s", p, d.stdout)
		}
	}
	wantStdout(t, group("reset", "--to", "offset", "--partition", "1", "--offset", "8", "p"), "reset group p to offset\n")
	again := group("consume", "--member", "m2", "--max", "2", "p")
	wantStdout(t, again, "1 8 k25 v25\n1 9 k28 v28\n")
	o = group("list")
	if o.wantCode(t, 0); !hasRowPrefix(o.stdout, "p", "events", "partitioned", "3") {
		t.Errorf("list: got\n%s", o.stdout)
	}
}

// A competing consumer runs a command per message and acks only after it
// exits 0: a message the command fails on is nakked until its deliveries
// run out, then it is a dead letter, replayed, and processed.
func TestGroupConsumeCompeting(t *testing.T) {
	_, addr := groupNode(t, "work", 2, 6)
	group := func(args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"group"}, withAddr(addr, args)...)...)
	}
	dead := func(args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"group", "dead"}, withAddr(addr, args)...)...)
	}
	group("create", "--topic", "work", "--mode", "competing", "--ack-wait", "5s", "--max-deliveries", "2", "q").wantCode(t, 0)
	dir := t.TempDir()
	out, poison := filepath.Join(dir, "out"), filepath.Join(dir, "poison")
	os.WriteFile(poison, []byte("k3"), 0o600)
	script := fmt.Sprintf(`test "$ASPEN_KEY" != "$(cat %s)" || exit 3; v=$(cat); echo "$ASPEN_TOPIC $ASPEN_PARTITION $ASPEN_OFFSET $ASPEN_KEY $v" >> %s`, poison, out)
	o := group("consume", "--member", "w1", "--max", "5", "--poll", "50ms", "q", "--", "sh", "-c", script)
	o.wantCode(t, 0)
	raw, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	slices.Sort(lines)
	want := []string{"work 0 0 k0 v0", "work 0 1 k2 v2", "work 0 2 k4 v4", "work 1 0 k1 v1", "work 1 2 k5 v5"}
	if !slices.Equal(lines, want) {
		t.Fatalf("processed: got %q, want %q", lines, want)
	}
	if strings.Count(o.stderr, "exit status 3") != 2 {
		t.Errorf("stderr: got %q, want the command's failure twice (2 deliveries)", o.stderr)
	}
	dl := dead("list", "q")
	if dl.wantCode(t, 0); !hasRowPrefix(dl.stdout, "1", "1", "1", "2", "deliveries") {
		t.Fatalf("dead list: got\n%s\nwant seq 1: 1/1 after 2 deliveries", dl.stdout)
	}
	wantStdout(t, dead("replay", "q", "1"), "replayed 1 dead letters of group q\n")
	os.WriteFile(poison, []byte("none"), 0o600)
	group("consume", "--member", "w2", "--max", "1", "q", "--", "sh", "-c", script).wantCode(t, 0)
	raw, _ = os.ReadFile(out)
	if !strings.HasSuffix(string(raw), "work 1 1 k3 v3\n") {
		t.Fatalf("after the replay: got %q, want k3 processed last", raw)
	}
	d := group("describe", "q")
	if d.wantCode(t, 0); !hasRow(d.stdout, "0", "-", "3", "3", "0") || !hasRow(d.stdout, "1", "-", "3", "3", "0") {
		t.Errorf("describe: want both partitions settled to 3 with lag 0; got\n%s", d.stdout)
	}
	o = dead("drop", "q", "x")
	o.wantCode(t, exitUsage)
	o = group("consume", "q")
	o.wantCode(t, exitUsage)
}

// A partitioned consumer whose generation moves under it (a rebalance that
// gives it a partition bumps it without telling it; here the member joins
// again, which bumps it the same way) has its next commit refused. It
// asks for its assignment at once and commits the batch it processed under
// the new generation: each message is processed once. Before, it read the
// partition again from the committed offset and processed the batch again
// and again until its next heartbeat, a third of the session later.
func TestGroupConsumeFencedCommitAsksAtOnce(t *testing.T) {
	_, addr := groupNode(t, "fence", 1, 20)
	aspen(t, "", append([]string{"group"}, withAddr(addr, []string{"create", "--topic", "fence", "--session", "30s", "f"})...)...).wantCode(t, 0)
	dir := t.TempDir()
	out, at5, resume := filepath.Join(dir, "out"), filepath.Join(dir, "at5"), filepath.Join(dir, "resume")
	// Offset 5 waits, in the middle of the first batch, for the test to
	// move the member's generation.
	script := fmt.Sprintf(`echo "$ASPEN_OFFSET" >> %s; if [ "$ASPEN_OFFSET" = 5 ]; then touch %s; while [ ! -e %s ]; do sleep 0.01; done; fi`, out, at5, resume)
	done := make(chan outcome, 1)
	go func() {
		done <- aspen(t, "", append([]string{"group"}, withAddr(addr, []string{"consume", "--member", "m1", "--max", "20", "--batch", "10", "f", "--", "sh", "-c", script})...)...)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for _, err := os.Stat(at5); err != nil; _, err = os.Stat(at5) {
		if time.Now().After(deadline) {
			t.Fatalf("the consumer never reached offset 5")
		}
		time.Sleep(10 * time.Millisecond)
	}
	body := strings.NewReader(`{"Name":"f","Member":"m1"}`)
	resp, err := http.Post("http://"+addr+"/v1/aspen/group/join", "application/json", body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("join m1 again: %v %v", resp, err)
	}
	resp.Body.Close()
	os.WriteFile(resume, nil, 0o600)
	var o outcome
	select {
	case o = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the consumer did not finish 20 messages in 60 s")
	}
	o.wantCode(t, 0)
	raw, _ := os.ReadFile(out)
	var want []string
	for i := range 20 {
		want = append(want, fmt.Sprint(i))
	}
	if got := strings.Fields(string(raw)); !slices.Equal(got, want) {
		t.Errorf("offsets processed: got %d, starting %q; want each once: %q\nstderr:\n%s", len(got), got[:min(len(got), 30)], want, o.stderr)
	}
}

// An idle consumer waits on the cluster rather than sleeping its --poll:
// a message published to it after it has sat idle is printed well before
// the 30 s poll would have let it look again, in either mode.
func TestGroupConsumeWaitsForMessages(t *testing.T) {
	for _, mode := range []string{"partitioned", "competing"} {
		t.Run(mode, func(t *testing.T) {
			s, addr := groupNode(t, "quiet", 3, 0)
			aspen(t, "", "group", "create", "--addr", addr, "--topic", "quiet", "--mode", mode, "g").wantCode(t, 0)
			c := startBackground(t, "group", "consume", "--addr", addr, "--member", "m1", "--max", "1", "--poll", "30s", "g")
			if mode == "partitioned" {
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					if o := aspen(t, "", "group", "describe", "--addr", addr, "g"); strings.Count(o.stdout, " m1 ") >= 3 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("m1 never owned every partition; consume printed %q", c.out.String())
					}
				}
			}
			time.Sleep(300 * time.Millisecond) // idle a while: its first look found nothing
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := s.Call(ctx, topics.Publish("quiet", []topics.In{{Key: []byte("k"), Value: []byte("late"), Partition: 2}})); err != nil {
				t.Fatalf("publish: %v", err)
			}
			c.waitExit(t, 5*time.Second)
			if got := c.out.String(); got != "2 0 k late\n" {
				t.Fatalf("consume printed %q, want the late message", got)
			}
		})
	}
}
