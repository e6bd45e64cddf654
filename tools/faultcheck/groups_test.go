//go:build linux

package faultcheck_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
	"golang.org/x/sys/unix"
)

// The shape of the group run (issue 11, part 6): a 3-process cluster; a
// topic of groupPartitions partitions; a producer publishing groupMessages
// keyed messages in batches, each value naming its key and the key's
// sequence number; a partitioned group read by three `aspen group consume`
// processes, each on a different node, printing what they process to a
// file through a small pipe. While the producer runs (paced, so that the
// run spans the faults), consumer c2 is kill -9ed while it is blocked
// printing a batch it has not committed (the test stops draining its pipe)
// and started again with the same member id, a fourth consumer joins, and
// the Aspen leader is kill -9ed and restarted; then the producer publishes
// the rest unpaced.
//
// What at-least-once with commit after processing promises, and what the
// test asserts (checkGroupRun):
//   - the topic holds every published message, and a key's sequence
//     numbers rise with the offset in the key's partition (a retried
//     publish may repeat a message, never reorder one);
//   - every offset of every partition was processed by some consumer, with
//     the topic's key and value;
//   - one process reads a partition in runs of consecutive offsets, so a
//     key's sequence numbers rise within a run; a run that goes back is a
//     replay from the committed offset, and since a consumer reads a batch
//     only from the committed offset or from the offset its last commit
//     succeeded with, a replay goes back less than one batch
//     (groupConsumeBatch) from the last offset the process processed;
//   - the restarted c2 starts every partition less than a batch before the
//     last offset its first life processed there: the first life had
//     committed up to its last batch;
//   - right after c2's kill, its partitions' committed offsets are at most
//     one past what it processed there, and whatever it processed at or
//     past them is processed again by another life;
//   - no message is processed more than groupProcessedMax times;
//   - at the end, `aspen group describe` shows lag 0 on every partition.
//
// The poison run: a competing group with max deliveries 3 whose consumer
// runs a command that fails for one key; that message ends in the dead
// letters after exactly 3 runs, every other message is acked.
const (
	groupNodes        = 3
	groupTickMs       = 50
	groupTopic        = "orders"
	groupName         = "billing"
	groupPartitions   = 6
	groupMessages     = 50_000
	groupPublishBatch = 100
	groupKeys         = 60
	// groupPublishPerSecond paces the producer so that the run spans the
	// faults: unpaced, one consumer drains the topic before the first
	// heartbeat (a third of groupSession) hands partitions to the others.
	groupPublishPerSecond = 4000
	groupConsumeBatch     = 50
	// groupProcessedMax bounds how often one message is processed: once,
	// again after c2's kill, again after a commit cut by the leader's
	// kill, and once more for a rebalance. A consumer that reprocesses a
	// batch while its commits are refused goes far past it.
	groupProcessedMax = 4
	groupSession      = 6 * time.Second
	groupCallTime     = 5 * time.Second
	// groupLagZeroMax bounds the wait for lag 0 after the last publish:
	// far above a rebalance, a session and an election on a loaded machine.
	groupLagZeroMax   = 90 * time.Second
	groupStopMax      = 20 * time.Second
	groupLeaderDown   = 2 * time.Second
	groupConsumerDown = time.Second
	groupTestBudget   = 4 * time.Minute

	// consumePipeBytes is the pipe a consumer prints into: small, so that
	// the test can make the consumer block in the middle of a batch.
	consumePipeBytes    = 4096
	consumeLineBytesMax = 32 // "PARTITION OFFSET KEY VALUE" of this run

	poisonTopic      = "jobs"
	poisonGroup      = "work"
	poisonMessages   = 100
	poisonKey        = "poison"
	poisonDeliveries = 3
	poisonSettleMax  = 60 * time.Second
)

func TestGroupConsumersThroughKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process cluster and 4 consumer processes, and kill -9s a consumer and the leader")
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTestBudget)
	defer cancel()
	bin := buildAspen(t)
	dir := artifactsDir(t)
	c := startProcCluster(t, bin, dir, groupNodes, groupTickMs)
	addrs := c.httpAddrs()
	if _, err := c.leader(ctx, 30*time.Second, true); err != nil {
		t.Fatal(err)
	}
	aspenOK(ctx, t, bin, "topic", "create", "--addr", addrs[0], "--partitions", fmt.Sprint(groupPartitions), groupTopic)
	aspenOK(ctx, t, bin, "group", "create", "--addr", addrs[0], "--topic", groupTopic, "--session", groupSession.String(), groupName)

	cs := map[string]*consumerProc{}
	for i, m := range []string{"c1", "c2", "c3"} {
		cs[m] = newConsumerProc(t, bin, dir, m, addrs[i], groupName)
		cs[m].start(t)
	}
	start := time.Now()
	prod := startProducer(ctx, addrs)
	faults, killCommitted, drainFrom := runGroupFaults(ctx, t, c, prod, cs, bin, dir, addrs)
	drainStart := time.Now()
	published := <-prod.done
	if err := prod.error(); err != nil {
		t.Fatalf("producer: %v", err)
	}
	publishedAt := time.Now()
	lagZero := waitLagZero(ctx, t, bin, addrs, groupName)
	t.Logf("published %d messages in %v (%d publish calls retried); lag 0 %v after the last publish, %v after the first",
		groupMessages, publishedAt.Sub(start).Round(time.Millisecond), prod.retries, lagZero.Sub(publishedAt).Round(time.Millisecond),
		lagZero.Sub(start).Round(time.Millisecond))
	t.Logf("faults: %s", strings.Join(faults, "; "))
	for _, k := range cs {
		k.stop(t)
	}
	topic := readTopic(ctx, t, addrs, groupTopic)
	lives := readLives(t, cs)
	processed := checkGroupRun(t, published, prod.retries, topic, lives, killCommitted)
	t.Logf("consumed %d lines (%d redeliveries) in %v: %.0f messages/s; unpaced, the last %d in %v: %.0f messages/s",
		processed, processed-len(topic), lagZero.Sub(start).Round(time.Millisecond), float64(processed)/lagZero.Sub(start).Seconds(),
		processed-drainFrom, lagZero.Sub(drainStart).Round(time.Millisecond), float64(processed-drainFrom)/lagZero.Sub(drainStart).Seconds())
	var g server.GroupInfo
	if err := callAny(ctx, addrs, "/v1/aspen/group/describe", server.GroupRequest{Name: groupName}, &g); err == nil {
		t.Logf("group stats: %+v", g.Stats)
	}

	runPoison(ctx, t, bin, dir, addrs)
}

// aspenOK runs the CLI and fails the test if it fails.
func aspenOK(ctx context.Context, t *testing.T, bin string, args ...string) string {
	t.Helper()
	r := runAspen(ctx, bin, args...)
	if err := r.err(); err != nil {
		t.Fatal(err)
	}
	return r.stdout
}

// consumerProc is one `aspen group consume` member; each start is a life
// of its own with its own output file.
type consumerProc struct {
	bin, dir, member, addr, group string
	argv                          []string

	gate sync.Mutex // held: the output is not copied, and the consumer blocks once the pipe is full

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd exited and its output is copied
	pipe  *os.File      // the read end of cmd's stdout
	lives []string      // output files, in order
}

func newConsumerProc(t *testing.T, bin, dir, member, addr, group string, argv ...string) *consumerProc {
	k := &consumerProc{bin: bin, dir: dir, member: member, addr: addr, group: group, argv: argv}
	t.Cleanup(k.kill)
	return k
}

func (k *consumerProc) start(t *testing.T) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cmd != nil {
		t.Fatalf("consumer %s already runs", k.member)
	}
	path := filepath.Join(k.dir, fmt.Sprintf("%s-%d.out", k.member, len(k.lives)+1))
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	errOut, err := os.Create(strings.TrimSuffix(path, ".out") + ".err")
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, consumePipeBytes); err != nil {
		t.Fatalf("shrink the output pipe: %v", err)
	}
	args := []string{"group", "consume", "--member", k.member, "--addr", k.addr, "--batch", fmt.Sprint(groupConsumeBatch),
		"--poll", "50ms", k.group}
	if len(k.argv) > 0 {
		args = append(append(args, "--"), k.argv...)
	}
	cmd := exec.Command(k.bin, args...)
	cmd.Stdout, cmd.Stderr = w, errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatalf("start consumer %s: %v", k.member, err)
	}
	copied := make(chan struct{})
	go func() {
		k.copyOutput(r, out)
		r.Close()
		close(copied)
	}()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		<-copied
		out.Close()
		errOut.Close()
		close(done)
	}()
	k.cmd, k.done, k.pipe = cmd, done, r
	k.lives = append(k.lives, path)
}

// copyOutput copies what the consumer prints to its file until the pipe
// closes, waiting while the gate is held.
func (k *consumerProc) copyOutput(r io.Reader, out io.Writer) {
	buf := make([]byte, 32<<10)
	for {
		k.gate.Lock()
		k.gate.Unlock()
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone and its output
// copied.
func (k *consumerProc) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cmd == nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGKILL)
	<-k.done
	k.cmd, k.done = nil, nil
}

// killMidBatch stops copying the consumer's output until its pipe is
// full, so that the consumer blocks printing a line of a batch it has not
// committed, then kill -9s it and lets the rest of its output through.
// It fails the test if the pipe does not fill within timeout.
func (k *consumerProc) killMidBatch(ctx context.Context, t *testing.T, timeout time.Duration) {
	t.Helper()
	k.gate.Lock()
	k.mu.Lock()
	pipe := k.pipe
	k.mu.Unlock()
	err := pollUntil(ctx, timeout, func(context.Context) error {
		n, err := pipeBytes(pipe)
		if err != nil || n < consumePipeBytes-consumeLineBytesMax {
			return fmt.Errorf("%d bytes in the pipe (%v)", n, err)
		}
		return nil
	})
	k.gate.Unlock() // the copier goes on after the kill: those lines were printed
	if err != nil {
		t.Fatalf("consumer %s never filled its pipe: %v", k.member, err)
	}
	k.kill()
}

// pipeBytes is how many bytes wait in pipe to be read (FIONREAD, which
// Linux names TIOCINQ).
func pipeBytes(pipe *os.File) (int, error) {
	rc, err := pipe.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ioErr error
	if err := rc.Control(func(fd uintptr) { n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil {
		return 0, err
	}
	return n, ioErr
}

// stop sends SIGTERM, as an operator stopping a consumer would, and fails
// the test unless the consumer leaves cleanly within groupStopMax.
func (k *consumerProc) stop(t *testing.T) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cmd == nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(groupStopMax):
		k.cmd.Process.Signal(syscall.SIGKILL)
		<-k.done
		t.Errorf("consumer %s still running %v after SIGTERM", k.member, groupStopMax)
	}
	if code := k.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("consumer %s exited with %d; see %s", k.member, code, strings.TrimSuffix(k.lives[len(k.lives)-1], ".out")+".err")
	}
	k.cmd, k.done = nil, nil
}

// lines is how many lines the current life has printed so far.
func (k *consumerProc) lines() int {
	k.mu.Lock()
	path := k.lives[len(k.lives)-1]
	k.mu.Unlock()
	return countLines(path)
}

// allLines is how many lines every life has printed so far.
func (k *consumerProc) allLines() int {
	k.mu.Lock()
	paths := slices.Clone(k.lives)
	k.mu.Unlock()
	n := 0
	for _, p := range paths {
		n += countLines(p)
	}
	return n
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// producer publishes groupMessages keyed messages; published counts the
// messages acknowledged so far.
type producer struct {
	unpaced atomic.Bool // set: publish as fast as the cluster takes it
	seq     uint64      // the last publish's X-Aspen-Seq (one goroutine publishes)

	mu        sync.Mutex
	published int
	retries   int
	err       error
	done      chan int
}

func (p *producer) error() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *producer) progress() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.published
}

// groupValue is message i's key and value: keys take turns, the value
// names the key and its sequence number.
func groupValue(i int) (key, value string) {
	key = fmt.Sprintf("k%02d", i%groupKeys)
	return key, fmt.Sprintf("%s:%06d", key, i/groupKeys)
}

func startProducer(ctx context.Context, addrs []string) *producer {
	p := &producer{done: make(chan int, 1)}
	go func() {
		every := time.Second * groupPublishBatch / groupPublishPerSecond
		next := time.Now()
		for i := 0; i < groupMessages; i += groupPublishBatch {
			req := server.TopicPublish{Topic: groupTopic}
			for j := i; j < min(i+groupPublishBatch, groupMessages); j++ {
				key, value := groupValue(j)
				req.Messages = append(req.Messages, server.TopicMessageIn{Key: &key, Value: value})
			}
			if err := p.publish(ctx, addrs, req); err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
				break
			}
			p.mu.Lock()
			p.published += len(req.Messages)
			p.mu.Unlock()
			if next = next.Add(every); !p.unpaced.Load() {
				wait(ctx, time.Until(next))
			}
		}
		p.done <- p.progress()
	}()
	return p
}

// publish sends one batch, retrying on another node until one takes it.
// Every try names the producer's own session and the batch's sequence
// number (X-Aspen-Client, X-Aspen-Seq), so a retry after an answer lost in
// a leader kill answers the first and publishes nothing again.
func (p *producer) publish(ctx context.Context, addrs []string, req server.TopicPublish) error {
	p.seq++
	session := http.Header{"X-Aspen-Client": {"faultcheck-producer"}, "X-Aspen-Seq": {strconv.FormatUint(p.seq, 10)}}
	var errs []string
	for attempt := range 60 {
		addr := addrs[attempt%len(addrs)]
		callCtx, cancel := context.WithTimeout(ctx, groupCallTime)
		var got server.TopicPublished
		_, err := postJSONWith(callCtx, addr, "/v1/aspen/topic/publish", session, req, &got)
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, err.Error())
		p.mu.Lock()
		p.retries++
		p.mu.Unlock()
		if ctx.Err() != nil {
			break
		}
		wait(ctx, 100*time.Millisecond)
	}
	return fmt.Errorf("publish: %s", strings.Join(errs, "; "))
}

// runGroupFaults, paced by what the consumers have processed: at a
// quarter of the messages, kill -9 c2 (once it has processed something)
// and start it again; at half, add c4; at 70%, kill -9 the leader and
// start it again; then unpace the producer. It returns what it did, the
// committed offsets of c2's partitions right after c2 was killed, and the
// lines processed when the producer was unpaced.
func runGroupFaults(ctx context.Context, t *testing.T, c *procCluster, prod *producer, cs map[string]*consumerProc,
	bin, dir string, addrs []string) (did []string, killCommitted map[int]uint64, drainFrom int) {
	t.Helper()
	consumed := func() int {
		n := 0
		for _, k := range cs {
			n += k.allLines()
		}
		return n
	}
	waitConsumed := func(n int, what string) {
		err := pollUntil(ctx, groupLagZeroMax, func(context.Context) error {
			if got := consumed(); got < n || cs["c2"].lines() == 0 {
				return fmt.Errorf("%d of %d processed, c2 %d (%d published, producer: %v)", got, n, cs["c2"].lines(), prod.progress(), prod.error())
			}
			return nil
		})
		if err != nil {
			r := runAspen(ctx, bin, "group", "describe", "--addr", addrs[0], groupName)
			t.Fatalf("before %s: %v\n%s%s", what, err, r.stdout, r.stderr)
		}
	}
	waitConsumed(groupMessages/4, "killing c2")
	// Kill c2 blocked printing a batch it has not committed, so that its
	// second life has something to replay.
	cs["c2"].killMidBatch(ctx, t, groupCallTime)
	var g server.GroupInfo
	if err := callAny(ctx, addrs, "/v1/aspen/group/describe", server.GroupRequest{Name: groupName}, &g); err != nil {
		t.Fatal(err)
	}
	killCommitted = map[int]uint64{}
	for _, p := range g.Offsets {
		if p.Owner == "c2" { // no one else can commit it until c2's session ends
			killCommitted[p.Partition] = p.Offset
		}
	}
	did = append(did, fmt.Sprintf("c2 killed after %d lines at %d processed, %d published", cs["c2"].lines(), consumed(), prod.progress()))
	wait(ctx, groupConsumerDown)
	cs["c2"].start(t)

	waitConsumed(groupMessages/2, "adding c4")
	cs["c4"] = newConsumerProc(t, bin, dir, "c4", addrs[0], groupName)
	cs["c4"].start(t)
	did = append(did, fmt.Sprintf("c4 added at %d processed, %d published", consumed(), prod.progress()))

	waitConsumed(groupMessages*7/10, "killing the leader")
	lead, err := c.leader(ctx, 30*time.Second, true)
	if err != nil {
		t.Fatal(err)
	}
	lead.kill()
	did = append(did, fmt.Sprintf("leader node %d killed at %d processed, %d published", lead.id, consumed(), prod.progress()))
	wait(ctx, groupLeaderDown)
	if err := lead.start(bin); err != nil {
		t.Fatal(err)
	}
	// The rest as fast as the cluster takes it: a backlog for the
	// consumers, whose drain gives their throughput.
	drainFrom = consumed()
	prod.unpaced.Store(true)
	did = append(did, fmt.Sprintf("producer unpaced at %d processed, %d published", drainFrom, prod.progress()))
	return did, killCommitted, drainFrom
}

// waitLagZero polls `aspen group describe --json` until every partition
// shows lag 0 and the topic's end covers every published message.
func waitLagZero(ctx context.Context, t *testing.T, bin string, addrs []string, group string) time.Time {
	t.Helper()
	i := 0
	err := pollUntilEach(ctx, groupLagZeroMax, groupCallTime, func(ctx context.Context) error {
		i++
		r := runAspen(ctx, bin, "group", "describe", "--json", "--addr", addrs[i%len(addrs)], group)
		if err := r.err(); err != nil {
			return err
		}
		var g server.GroupInfo
		if err := json.Unmarshal([]byte(r.stdout), &g); err != nil {
			return fmt.Errorf("describe --json: %w", err)
		}
		var lag, end uint64
		for _, p := range g.Offsets {
			lag, end = lag+p.Lag, end+p.End
		}
		if len(g.Offsets) != g.Partitions || lag != 0 || end < groupMessages {
			return fmt.Errorf("lag %d over %d partitions, %d published: %+v", lag, len(g.Offsets), end, g.Offsets)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("lag never 0: %v", err)
	}
	return time.Now()
}

// topicMsg is one message of the topic as the cluster holds it.
type topicMsg struct {
	key   string
	value string
}

type partOffset struct {
	partition int
	offset    uint64
}

// readTopic reads every partition from the beginning to its end.
func readTopic(ctx context.Context, t *testing.T, addrs []string, topic string) map[partOffset]topicMsg {
	t.Helper()
	got := map[partOffset]topicMsg{}
	for p := range groupPartitions {
		from := uint64(0)
		for range groupMessages + 1 { // each read returns at least one message until the end
			var r server.TopicMessages
			req := server.TopicReadRequest{Topic: topic, Partition: p, From: fmt.Sprint(from)}
			if err := callAny(ctx, addrs, "/v1/aspen/topic/read", req, &r); err != nil {
				t.Fatal(err)
			}
			if len(r.Messages) == 0 {
				break
			}
			for _, m := range r.Messages {
				if m.Key == nil {
					t.Fatalf("partition %d offset %d has no key", p, m.Offset)
				}
				got[partOffset{p, m.Offset}] = topicMsg{*m.Key, m.Value}
			}
			from = r.Next
		}
	}
	return got
}

// line is one message a consumer printed.
type line struct {
	partOffset
	topicMsg
	seq int
}

// life is what one consumer process printed, in order.
type life struct {
	name  string
	lines []line
}

func readLives(t *testing.T, cs map[string]*consumerProc) []life {
	t.Helper()
	var out []life
	for _, m := range slices.Sorted(maps.Keys(cs)) {
		for _, path := range cs[m].lives {
			l := life{name: filepath.Base(path)}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				ln, err := parseLine(sc.Text())
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				l.lines = append(l.lines, ln)
			}
			f.Close()
			out = append(out, l)
		}
	}
	return out
}

// parseLine reads "PARTITION OFFSET KEY KEY:SEQ".
func parseLine(s string) (line, error) {
	f := strings.Fields(s)
	if len(f) != 4 {
		return line{}, fmt.Errorf("line %q: want 4 fields", s)
	}
	p, err1 := strconv.Atoi(f[0])
	off, err2 := strconv.ParseUint(f[1], 10, 64)
	key, seqText, ok := strings.Cut(f[3], ":")
	seq, err3 := strconv.Atoi(seqText)
	if err1 != nil || err2 != nil || err3 != nil || !ok || key != f[2] {
		return line{}, fmt.Errorf("line %q: want PARTITION OFFSET KEY KEY:SEQ", s)
	}
	return line{partOffset{p, off}, topicMsg{f[2], f[3]}, seq}, nil
}

// checkGroupRun asserts the contract in the comment at the top of the
// file and returns how many lines the consumers printed.
func checkGroupRun(t *testing.T, published, retries int, topic map[partOffset]topicMsg, lives []life, killCommitted map[int]uint64) int {
	t.Helper()
	repeated := checkTopic(t, published, topic)
	if len(topic) != published {
		t.Errorf("the topic holds %d messages, %d were published (%d publishes retried under the producer's session: none may append twice)", len(topic), published, retries)
	}
	seen := map[partOffset]int{}
	total := 0
	for _, l := range lives {
		total += len(l.lines)
		for _, ln := range l.lines {
			want, ok := topic[ln.partOffset]
			if !ok || want != ln.topicMsg {
				t.Errorf("%s processed %d/%d as %s %s; the topic holds %+v (held: %v)", l.name, ln.partition, ln.offset, ln.key, ln.value, want, ok)
			}
			seen[ln.partOffset]++
		}
		checkRuns(t, l, repeated)
	}
	missing, most := 0, partOffset{}
	for po := range topic {
		if seen[po] > seen[most] {
			most = po
		}
		if seen[po] == 0 {
			if missing++; missing <= 10 {
				t.Errorf("partition %d offset %d (%+v) never processed", po.partition, po.offset, topic[po])
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d messages never processed", missing, len(topic))
	}
	if seen[most] > groupProcessedMax {
		t.Errorf("partition %d offset %d processed %d times, want at most %d", most.partition, most.offset, seen[most], groupProcessedMax)
	}
	t.Logf("the most processed message: %d times", seen[most])
	checkRestart(t, lives, killCommitted)
	return total
}

// checkTopic: every published message is held, each key in one
// partition, and per key the first copies of its messages come in
// sequence order. A batch published again (its first answer lost in the
// leader's kill) repeats its messages after later ones; it returns the
// values held more than once.
func checkTopic(t *testing.T, published int, topic map[partOffset]topicMsg) map[string]bool {
	t.Helper()
	if len(topic) < published {
		t.Errorf("topic holds %d messages, %d were published", len(topic), published)
	}
	type keyAt struct {
		partition int
		seq       int // the highest so far
		offset    uint64
	}
	last := map[string]keyAt{}
	seqs := map[string]map[int]bool{}
	repeated := map[string]bool{}
	for _, po := range slices.SortedFunc(maps.Keys(topic), comparePO) {
		m := topic[po]
		key, seqText, _ := strings.Cut(m.value, ":")
		seq, err := strconv.Atoi(seqText)
		if err != nil || key != m.key {
			t.Fatalf("partition %d offset %d holds %+v", po.partition, po.offset, m)
		}
		if seqs[key] == nil {
			seqs[key] = map[int]bool{}
		}
		prev, ok := last[key]
		switch {
		case ok && prev.partition != po.partition:
			t.Errorf("key %s in partitions %d and %d", key, prev.partition, po.partition)
		case seqs[key][seq]:
			repeated[m.value] = true
		case ok && seq < prev.seq:
			t.Errorf("key %s: seq %d first at offset %d, after seq %d at offset %d", key, seq, po.offset, prev.seq, prev.offset)
		}
		if !ok || seq > prev.seq {
			last[key] = keyAt{po.partition, seq, po.offset}
		}
		seqs[key][seq] = true
	}
	for i := range published {
		key, value := groupValue(i)
		seq, _ := strconv.Atoi(strings.TrimPrefix(value, key+":"))
		if !seqs[key][seq] {
			t.Errorf("published %s is not in the topic", value)
		}
	}
	return repeated
}

func comparePO(a, b partOffset) int {
	if a.partition != b.partition {
		return a.partition - b.partition
	}
	switch {
	case a.offset < b.offset:
		return -1
	case a.offset > b.offset:
		return 1
	}
	return 0
}

// checkRuns: per partition, a life's offsets come in runs of consecutive
// offsets within which each key's seq rises (but for a message the topic
// holds twice); a run that goes back is a replay and goes back less than
// a batch.
func checkRuns(t *testing.T, l life, repeated map[string]bool) {
	t.Helper()
	type pos struct {
		offset uint64
		seqs   map[string]int // within the current run
	}
	at := map[int]*pos{}
	replays := 0
	for i, ln := range l.lines {
		p := at[ln.partition]
		switch {
		case p == nil || ln.offset > p.offset+1:
			// The first read, or the partition came back after others
			// committed past where this life left it.
			p = &pos{seqs: map[string]int{}}
			at[ln.partition] = p
		case ln.offset <= p.offset:
			replays++
			if p.offset-ln.offset >= groupConsumeBatch {
				t.Errorf("%s line %d: partition %d replays from %d after %d, more than a batch (%d) back",
					l.name, i+1, ln.partition, ln.offset, p.offset, groupConsumeBatch)
			}
			p.seqs = map[string]int{}
		}
		if prev, ok := p.seqs[ln.key]; ok && ln.seq <= prev && !repeated[ln.value] {
			t.Errorf("%s line %d: key %s seq %d after %d within one run of partition %d", l.name, i+1, ln.key, ln.seq, prev, ln.partition)
		}
		p.seqs[ln.key] = ln.seq
		p.offset = ln.offset
	}
	t.Logf("%s: %d lines in %d partitions, %d replays", l.name, len(l.lines), len(at), replays)
}

// checkRestart: c2's second life starts each partition less than a batch
// before the last offset its first life processed there.
func checkRestart(t *testing.T, lives []life, killCommitted map[int]uint64) {
	t.Helper()
	var first, second *life
	for i := range lives {
		switch lives[i].name {
		case "c2-1.out":
			first = &lives[i]
		case "c2-2.out":
			second = &lives[i]
		}
	}
	if first == nil || second == nil || len(first.lines) == 0 {
		t.Fatalf("want c2 to have processed messages in its first life and to have lived twice")
	}
	lastFirst := map[int]uint64{}
	for _, ln := range first.lines {
		lastFirst[ln.partition] = max(lastFirst[ln.partition], ln.offset)
	}
	started := map[int]bool{}
	for _, ln := range second.lines {
		if started[ln.partition] {
			continue
		}
		started[ln.partition] = true
		t.Logf("c2's second life starts partition %d at %d; its first life's last there: %v", ln.partition, ln.offset, lastFirst[ln.partition])
		if last, ok := lastFirst[ln.partition]; ok && ln.offset+groupConsumeBatch <= last {
			t.Errorf("c2's second life starts partition %d at %d; its first life had processed %d, so had committed %d or more",
				ln.partition, ln.offset, last, last-groupConsumeBatch+1)
		}
	}
	checkKillCommitted(t, lives, first, lastFirst, killCommitted)
}

// checkKillCommitted: the offsets committed for c2's partitions right
// after its kill are at most one past what its first life processed there
// (commit after processing), and what it processed at or past them is
// processed again by another life (nothing uncommitted is lost).
func checkKillCommitted(t *testing.T, lives []life, first *life, lastFirst map[int]uint64, killCommitted map[int]uint64) {
	t.Helper()
	elsewhere := map[partOffset]bool{}
	for i := range lives {
		if &lives[i] == first {
			continue
		}
		for _, ln := range lives[i].lines {
			elsewhere[ln.partOffset] = true
		}
	}
	uncommitted := 0
	for p, committed := range killCommitted {
		last, ok := lastFirst[p]
		if !ok {
			continue // the offset is an earlier owner's
		}
		if committed > last+1 {
			t.Errorf("partition %d: committed %d right after c2's kill, but c2 had processed only up to %d", p, committed, last)
		}
		for _, ln := range first.lines {
			if ln.partition != p || ln.offset < committed {
				continue
			}
			uncommitted++
			if !elsewhere[ln.partOffset] {
				t.Errorf("partition %d offset %d: processed by c2 and not committed before its kill, never processed again", p, ln.offset)
			}
		}
	}
	t.Logf("c2 was killed holding %d processed, uncommitted messages (committed then: %v)", uncommitted, killCommitted)
}

// runPoison publishes poisonMessages to a topic of its own, one with the
// poison key, and runs a competing consumer whose command fails for it.
func runPoison(ctx context.Context, t *testing.T, bin, dir string, addrs []string) {
	t.Helper()
	aspenOK(ctx, t, bin, "topic", "create", "--addr", addrs[1], "--partitions", "2", poisonTopic)
	aspenOK(ctx, t, bin, "group", "create", "--addr", addrs[1], "--topic", poisonTopic, "--mode", "competing",
		"--max-deliveries", fmt.Sprint(poisonDeliveries), poisonGroup)
	req := server.TopicPublish{Topic: poisonTopic}
	for i := range poisonMessages {
		key := fmt.Sprintf("j%03d", i)
		if i == poisonMessages/2 {
			key = poisonKey
		}
		req.Messages = append(req.Messages, server.TopicMessageIn{Key: &key, Value: "job " + key})
	}
	var placed server.TopicPublished
	if err := callAny(ctx, addrs, "/v1/aspen/topic/publish", req, &placed); err != nil {
		t.Fatal(err)
	}
	poisonAt := placed.Messages[poisonMessages/2]
	runs := filepath.Join(dir, "poison-runs")
	script := `echo "$ASPEN_KEY $ASPEN_PARTITION $ASPEN_OFFSET" >> "$RUNS"; test "$ASPEN_KEY" != ` + poisonKey
	k := newConsumerProc(t, bin, dir, "w1", addrs[2], poisonGroup, "env", "RUNS="+runs, "sh", "-c", script)
	start := time.Now()
	k.start(t)
	var g server.GroupInfo
	err := pollUntil(ctx, poisonSettleMax, func(ctx context.Context) error {
		if err := callAny(ctx, addrs, "/v1/aspen/group/describe", server.GroupRequest{Name: poisonGroup}, &g); err != nil {
			return err
		}
		var lag uint64
		for _, p := range g.Offsets {
			lag += p.Lag
		}
		if g.DeadLetters != 1 || g.Pending != 0 || lag != 0 {
			return fmt.Errorf("%d dead letters, %d pending, lag %d", g.DeadLetters, g.Pending, lag)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("poison group never settled: %v", err)
	}
	t.Logf("poison group settled in %v: stats %+v", time.Since(start).Round(time.Millisecond), g.Stats)
	k.stop(t)

	var dead server.GroupDeadLetters
	if err := callAny(ctx, addrs, "/v1/aspen/group/dead/list", server.GroupRequest{Name: poisonGroup}, &dead); err != nil {
		t.Fatal(err)
	}
	want := server.GroupDeadLetter{Partition: poisonAt.Partition, Offset: poisonAt.Offset, Deliveries: poisonDeliveries, Reason: "deliveries"}
	if len(dead.Letters) != 1 {
		t.Fatalf("dead letters %+v, want one: %+v", dead.Letters, want)
	}
	got := dead.Letters[0]
	got.Seq, got.TimeMs = 0, 0
	if got != want {
		t.Errorf("dead letter %+v, want %+v", got, want)
	}
	out := aspenOK(ctx, t, bin, "group", "dead", "list", "--addr", addrs[0], poisonGroup)
	if !strings.Contains(out, fmt.Sprintf("%d  ", poisonAt.Offset)) || !strings.Contains(out, "deliveries") {
		t.Errorf("aspen group dead list shows\n%s\nwant the letter at %d/%d", out, poisonAt.Partition, poisonAt.Offset)
	}

	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		ran[strings.Fields(l)[0]]++
	}
	if ran[poisonKey] != poisonDeliveries {
		t.Errorf("the command ran %d times for %s, want %d", ran[poisonKey], poisonKey, poisonDeliveries)
	}
	again := 0
	for _, m := range req.Messages {
		switch n := ran[*m.Key]; {
		case n == 0:
			t.Errorf("%s never processed", *m.Key)
		case n > 1 && *m.Key != poisonKey:
			again++
		}
	}
	t.Logf("poison run: %d keys processed, %d more than once", len(ran), again)
}
