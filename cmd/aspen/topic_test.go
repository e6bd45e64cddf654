package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/topics"
	"github.com/aspen-db/aspen/runtime/server"
)

// testTopic drives the topic commands against the dev cluster: create,
// publish from arguments and stdin, read from the beginning, an offset and
// the end, follow new messages, describe, list and delete.
func testTopic(t *testing.T, d *devCluster) {
	topic := func(args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"topic"}, withAddr(d.addrs[0], args)...)...)
	}
	wantStdout(t, topic("create", "--partitions", "2", "--retain-age", "24h", "events"), "created topic events (2 partitions)\n")
	p := topics.KeyPartition([]byte("user1"), 2)
	wantStdout(t, topic("publish", "--key", "user1", "events", "signed up"), fmt.Sprintf("published to partition %d at offset 0\n", p))
	o := aspenWith(t, "clicked\nbought\n", nil, "topic", "publish", "--addr", d.addrs[1], "--key", "user1", "events")
	wantStdout(t, o, "published 2 messages\n")
	wantStdout(t, topic("publish", "--partition", "1", "events", "a", "b"), "published 2 messages\n")

	wantStdout(t, topic("read", "--partition", fmt.Sprint(p), "--max", "3", "events"), "0 user1 signed up\n1 user1 clicked\n2 user1 bought\n")
	wantStdout(t, topic("read", "--partition", fmt.Sprint(p), "--from", "1", "--max", "1", "events"), "1 user1 clicked\n")
	wantStdout(t, topic("read", "--partition", "0", "--from", "end", "events"), "")
	o = topic("read", "--partition", fmt.Sprint(p), "--from", "@0", "--json", "--max", "1", "events")
	var m server.TopicMessage
	if o.wantCode(t, 0); json.Unmarshal([]byte(o.stdout), &m) != nil || m.Offset != 0 || m.Value != "signed up" || *m.Key != "user1" {
		t.Fatalf("read --from @0 --json: got %q, want the first message as JSON", o.stdout)
	}

	follow := startBackground(t, "topic", "read", "--addr", d.addrs[2], "--partition", "1", "--from", "end", "--follow", "events")
	// The read waits on its node once it has asked; publish until it has
	// printed what came after it started, so the test needs no sleep.
	published := 0
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(follow.out.String(), " - late\n") {
		if time.Now().After(deadline) {
			t.Fatalf("read --follow printed %q, want the late message", follow.out.String())
		}
		topic("publish", "--partition", "1", "events", "late").wantCode(t, 0)
		published++
		time.Sleep(100 * time.Millisecond)
	}
	if first := follow.waitLines(t, 1, 5*time.Second)[0]; !strings.HasSuffix(first, " - late") || strings.HasPrefix(first, "0 ") || strings.HasPrefix(first, "1 ") {
		t.Fatalf("read --follow --from end: first line %q, want a late message, not one from before it started", first)
	}

	o = topic("describe", "events")
	o.wantCode(t, 0)
	for _, want := range []string{"partitions  2", "age 24h0m0s", "PARTITION  FIRST  END"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("describe lacks %q; got:\n%s", want, o.stdout)
		}
	}
	end1 := 2 + published
	if p == 1 {
		end1 += 3
	}
	if !hasRowPrefix(o.stdout, "1", "0", fmt.Sprint(end1)) {
		t.Errorf("describe: got\n%s\nwant partition 1 holding offsets 0 to %d", o.stdout, end1)
	}
	o = topic("list")
	if !hasRow(o.stdout, "events", "2", fmt.Sprint(5+published), fmt.Sprint(5+published)) {
		t.Errorf("list: got\n%s\nwant events with %d published and held", o.stdout, 5+published)
	}
	wantStdout(t, topic("delete", "events"), "deleted topic events\n")
	o = topic("describe", "events")
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "not found")
}

func TestTopicUsage(t *testing.T) {
	closed := closedAddr(t)
	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"topic", "create"}, exitUsage, "topic create wants NAME"},
		{[]string{"topic", "create", "--retain-age", "-1s", "t"}, exitUsage, "--retain-age must be"},
		{[]string{"topic", "create", "--retain-age", "1500us", "t"}, exitUsage, "--retain-age must be"},
		{[]string{"topic", "describe"}, exitUsage, "topic describe wants NAME"},
		{[]string{"topic", "delete", "a", "b"}, exitUsage, "topic delete wants NAME"},
		{[]string{"topic", "publish"}, exitUsage, "topic publish wants TOPIC"},
		{[]string{"topic", "publish", "--partition", "-2", "t", "v"}, exitUsage, "--partition must not be negative"},
		{[]string{"topic", "read"}, exitUsage, "topic read wants TOPIC"},
		{[]string{"topic", "read", "--from", "yesterday", "t"}, exitUsage, "--from must be"},
		{[]string{"topic", "read", "--from", "@x", "t"}, exitUsage, "--from must be"},
		{[]string{"topic", "read", "--max", "0", "t"}, exitUsage, "--max must be at least 1"},
		{[]string{"topic", "read", "--partition", "-1", "t"}, exitUsage, "--partition must not be negative"},
		{[]string{"topic", "list", "extra"}, exitUsage, "takes no arguments"},
		{[]string{"topic", "list", "--limit", "0"}, exitUsage, "--limit must be at least 1"},
		{[]string{"topic", "nope"}, exitUsage, "unknown command"},
		{[]string{"topic", "list", "--addr", closed}, exitFailed, "cannot reach Aspen at " + closed},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o := aspen(t, "", tc.args...)
			o.wantCode(t, tc.code)
			wantStderr(t, o, tc.inStderr)
		})
	}
}

// A publish whose answer is lost is sent again under the CLI's own
// session and placed once: a proxy in front of the cluster passes the
// first attempt to node 1 and cuts the connection once node 1 has
// answered; the retry reaches node 2, which answers what node 1 did.
func testTopicPublishRetried(t *testing.T, d *devCluster) {
	topic := func(args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"topic"}, withAddr(d.addrs[0], args)...)...)
	}
	topic("create", "retried").wantCode(t, 0)
	var mu sync.Mutex
	var seqs []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seqs = append(seqs, r.Header.Get("X-Aspen-Client")+" "+r.Header.Get("X-Aspen-Seq"))
		first := len(seqs) == 1
		mu.Unlock()
		target := d.addrs[1]
		if first {
			target = d.addrs[0]
		}
		req, _ := http.NewRequest(r.Method, "http://"+target+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("proxy to %s: %v", target, err)
			panic(http.ErrAbortHandler)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if first {
			panic(http.ErrAbortHandler) // node 1 applied it; its answer never reaches the CLI
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
	}))
	defer proxy.Close()
	o := aspen(t, "", "topic", "publish", "--addr", proxy.URL, "retried", "once")
	wantStdout(t, o, "published to partition 0 at offset 0\n")
	if len(seqs) != 2 || seqs[0] != seqs[1] || !strings.HasPrefix(seqs[0], "aspen-cli-") || !strings.HasSuffix(seqs[0], " 1") {
		t.Fatalf("the proxy saw %q: want one write sent twice under one client and seq 1", seqs)
	}
	wantStdout(t, topic("read", "retried"), "0 - once\n")
}
