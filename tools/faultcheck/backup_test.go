//go:build linux

package faultcheck_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/tools/faultcheck"
)

// The shape of the backup run: `aspen snapshot save` 3 s into a 6 s load on
// a 3-node cluster, then a new 3-node cluster restored from the file.
const (
	backupNodes        = 3
	backupTickMs       = 50
	backupClients      = 16
	backupKeys         = 8
	backupLoad         = 6 * time.Second
	backupSaveAfter    = 3 * time.Second
	backupOpTimeout    = time.Second
	backupCheckTimeout = 20 * time.Second
	backupTestBudget   = 55 * time.Second
)

// TestBackupUnderLoadRestores takes a backup while clients write, and checks
// the backup against what the clients saw, then what a new cluster restored
// from it serves. With R the backup's revision, it checks that:
//
//   - every write acknowledged before the save was sent has a revision <= R,
//     and every write sent after the save was answered has one > R (the
//     backup is a cut of the history at some moment during the save);
//   - the new cluster's revision is R, and for each key, with (v, m) the
//     value and ModifyIndex the new cluster serves (v empty if absent):
//     m <= R; v was written by an acknowledged write at revision m, or by a
//     write whose outcome is unknown; and if a is the acknowledged write to
//     the key with the highest revision <= R, the key is present with m >= a's
//     revision, and is a's value when m equals it. (So m > a's revision only
//     for a write of unknown outcome: an acknowledged one would contradict
//     a's maximality.)
//   - a damaged copy of the backup is refused: the node exits with status 1
//     and says the file is damaged.
func TestBackupUnderLoadRestores(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two 3-process clusters")
	}
	bin := buildAspen(t)
	dir := artifactsDir(t)
	c := startProcCluster(t, bin, dir, backupNodes, backupTickMs)
	ctx, cancel := context.WithTimeout(context.Background(), backupTestBudget)
	defer cancel()
	if _, err := c.leader(ctx, 15*time.Second, true); err != nil {
		t.Fatalf("cluster start: %v (logs in %s)", err, dir)
	}
	file := filepath.Join(dir, "backup.bin")
	saved := make(chan save, 1)
	go func() { saved <- saveAfter(ctx, bin, c.nodes[1].httpAddr, file, backupSaveAfter) }()
	seed := testSeed(t)
	h, err := faultcheck.Run(ctx, faultcheck.Config{Addrs: c.httpAddrs(), Clients: backupClients, Keys: backupKeys,
		Duration: backupLoad, OpTimeout: backupOpTimeout, Seed: seed, Logf: t.Logf})
	s := <-saved
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	rep := faultcheck.Check(h, backupCheckTimeout)
	t.Logf("%s; save sent at %v, answered at %v: %s", rep, h.At(s.sent).Round(time.Millisecond),
		h.At(s.answered).Round(time.Millisecond), strings.TrimSpace(s.res.stdout))
	if err := rep.Err(); err != nil {
		saveFailure(t, dir, h, rep)
		t.Fatalf("%v\nseed %d", err, seed)
	}
	b := readBackup(t, file, s)
	if problems := checkBackupCut(h, b.Revision, s); len(problems) > 0 {
		t.Fatalf("the backup at revision %d is not a cut of the history:\n  %s", b.Revision, strings.Join(problems, "\n  "))
	}
	restored := startRestoredCluster(t, bin, filepath.Join(dir, "restored"), backupNodes, backupTickMs, file)
	if _, err := restored.leader(ctx, 15*time.Second, true); err != nil {
		t.Fatalf("restored cluster start: %v (logs in %s)", err, dir)
	}
	entries := readRestored(ctx, t, restored, h.Keys, b.Revision)
	if problems := checkRestored(h, b.Revision, entries); len(problems) > 0 {
		t.Fatalf("restored from the backup at revision %d:\n  %s", b.Revision, strings.Join(problems, "\n  "))
	}
	checkDamagedRefused(ctx, t, bin, dir, file)
}

// save is what the mid-load `aspen snapshot save` did, and when.
type save struct {
	sent, answered time.Time
	res            cliResult
}

func saveAfter(ctx context.Context, bin, addr, file string, after time.Duration) save {
	if !wait(ctx, after) {
		return save{res: cliResult{code: -1, stderr: "the test ended before the save"}}
	}
	s := save{sent: time.Now()}
	s.res = runAspen(ctx, bin, "snapshot", "save", "--addr", addr, file)
	s.answered = time.Now()
	return s
}

// readBackup decodes the saved file, and wants the command to have printed
// what it holds.
func readBackup(t *testing.T, file string, s save) node.Backup {
	t.Helper()
	if err := s.res.err(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := node.DecodeBackup(data)
	if err != nil {
		t.Fatalf("saved backup: %v", err)
	}
	want := fmt.Sprintf("saved %s: revision %d, index %d, %d bytes\n", file, b.Revision, b.Index, len(data))
	if s.res.stdout != want {
		t.Errorf("snapshot save printed %q, want %q", s.res.stdout, want)
	}
	return b
}

// checkBackupCut compares revision rev with the writes acknowledged before
// the save began and those sent after it ended; it also wants some of each,
// or the save did not happen under load.
func checkBackupCut(h *faultcheck.History, rev int64, s save) []string {
	sent, answered := int64(h.At(s.sent)), int64(h.At(s.answered))
	var problems []string
	before, after := 0, 0
	for _, op := range h.Ops {
		switch {
		case !op.Acked():
		case op.Return < sent:
			before++
			if int64(op.Index) > rev {
				problems = append(problems, fmt.Sprintf("%s was acknowledged before the save began, but is not in the backup", op))
			}
		case op.Call > answered:
			after++
			if int64(op.Index) <= rev {
				problems = append(problems, fmt.Sprintf("%s began after the save ended, but its revision is in the backup", op))
			}
		}
	}
	if before == 0 || after == 0 {
		problems = append(problems, fmt.Sprintf("got %d writes acknowledged before the save and %d begun after it, want some of each", before, after))
	}
	return problems
}

// startRestoredCluster starts a new cluster from the backup in file. Nodes
// run `aspen node start --restore`, except the last, which runs the same
// restore through `aspen snapshot restore`.
func startRestoredCluster(t *testing.T, bin, dir string, n, tickMs int, file string) *procCluster {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 2*n)
	var members []string
	for i := range n {
		members = append(members, fmt.Sprintf("%d=%s", i+1, addrs[i]))
	}
	c := &procCluster{bin: bin}
	t.Cleanup(c.killAll)
	for i := range n {
		id := uint64(i + 1)
		flags := nodeArgs(dir, id, strings.Join(members, ","), addrs[n+i], tickMs)
		args := append([]string{"node", "start", "--restore", file}, flags...)
		if i == n-1 {
			args = append(append([]string{"snapshot", "restore"}, flags...), file)
		}
		c.addNode(dir, id, addrs[n+i], args...)
	}
	for _, p := range c.nodes {
		if err := p.start(bin); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// restoredEntry is a key as the restored cluster serves it.
type restoredEntry struct {
	value   string
	index   uint64
	present bool
}

// readRestored reads every key with a consistent read, and wants every node
// at revision rev: nothing has written to the new cluster.
func readRestored(ctx context.Context, t *testing.T, c *procCluster, keys []string, rev int64) map[string]restoredEntry {
	t.Helper()
	for _, p := range c.nodes {
		var got int64
		err := pollUntil(ctx, 10*time.Second, func(ctx context.Context) error {
			var err error
			got, err = revisionOf(ctx, p.httpAddr)
			return err
		})
		if err != nil || got != rev {
			t.Fatalf("restored node %d: got revision %d (%v), want %d", p.id, got, err, rev)
		}
	}
	entries := map[string]restoredEntry{}
	for i, key := range keys {
		addr := c.nodes[i%len(c.nodes)].httpAddr
		err := pollUntil(ctx, 10*time.Second, func(ctx context.Context) error {
			e, err := consistentGet(ctx, addr, key)
			entries[key] = e
			return err
		})
		if err != nil {
			t.Fatalf("read %s from the restored cluster: %v", key, err)
		}
	}
	return entries
}

func revisionOf(ctx context.Context, addr string) (int64, error) {
	var st struct{ Revision int64 }
	err := getJSON(ctx, "http://"+addr+"/v1/aspen/status", &st)
	return st.Revision, err
}

func consistentGet(ctx context.Context, addr, key string) (restoredEntry, error) {
	var entries []struct {
		Key         string
		Value       []byte
		ModifyIndex uint64
	}
	err := getJSON(ctx, "http://"+addr+"/v1/kv/"+url.PathEscape(key)+"?consistent", &entries)
	switch {
	case errors.Is(err, errAbsent):
		return restoredEntry{}, nil
	case err != nil:
		return restoredEntry{}, err
	case len(entries) != 1 || entries[0].Key != key:
		return restoredEntry{}, fmt.Errorf("get %s: got %d entries, want exactly that key", key, len(entries))
	}
	return restoredEntry{value: string(entries[0].Value), index: entries[0].ModifyIndex, present: true}, nil
}

var errAbsent = errors.New("404: absent")

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return json.NewDecoder(resp.Body).Decode(v)
	case http.StatusNotFound:
		return errAbsent
	}
	return fmt.Errorf("GET %s: %s", u, resp.Status)
}

// checkRestored applies the per-key rules of TestBackupUnderLoadRestores.
func checkRestored(h *faultcheck.History, rev int64, entries map[string]restoredEntry) []string {
	ops := map[string][]faultcheck.Op{}
	for _, op := range h.Ops {
		ops[op.Key] = append(ops[op.Key], op)
	}
	var problems []string
	for _, key := range h.Keys {
		problems = append(problems, checkRestoredKey(key, entries[key], ops[key], rev)...)
	}
	return problems
}

func checkRestoredKey(key string, e restoredEntry, ops []faultcheck.Op, rev int64) []string {
	writers := map[string]faultcheck.Op{}
	var latest *faultcheck.Op // the acknowledged write with the highest revision <= rev
	for _, op := range ops {
		if op.MayHaveWritten() {
			writers[op.Value] = op
		}
		if op.Acked() && int64(op.Index) <= rev && (latest == nil || op.Index > latest.Index) {
			latest = &op
		}
	}
	var problems []string
	if e.present {
		w, written := writers[e.value]
		switch {
		case int64(e.index) > rev:
			problems = append(problems, fmt.Sprintf("key %s: restored %q at ModifyIndex %d, after the backup's revision %d", key, e.value, e.index, rev))
		case !written:
			problems = append(problems, fmt.Sprintf("key %s: restored %q, which no write wrote", key, e.value))
		case w.Acked() && w.Index != e.index:
			problems = append(problems, fmt.Sprintf("key %s: restored at ModifyIndex %d, but %s", key, e.index, w))
		}
	}
	switch {
	case latest == nil:
	case !e.present:
		problems = append(problems, fmt.Sprintf("key %s: absent, but %s is at or before the backup's revision %d", key, latest, rev))
	case e.index < latest.Index || (e.index == latest.Index && e.value != latest.Value):
		problems = append(problems, fmt.Sprintf("key %s: restored %q at ModifyIndex %d, but %s is the last acknowledged write at or before the backup's revision %d",
			key, e.value, e.index, latest, rev))
	}
	return problems
}

// checkDamagedRefused starts a node from a damaged copy of the backup, with
// a byte flipped or its end cut off, and wants a clear refusal.
func checkDamagedRefused(ctx context.Context, t *testing.T, bin, dir, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x10
	for name, damaged := range map[string][]byte{"flipped": flipped, "truncated": data[:len(data)/2]} {
		bad := filepath.Join(dir, name+".bin")
		if err := os.WriteFile(bad, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		addrs := freeAddrs(t, 2)
		runCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r := runAspen(runCtx, bin, "node", "start", "--restore", bad, "--id", "1", "--data-dir", filepath.Join(dir, name),
			"--initial-cluster", "1="+addrs[0], "--http-addr", addrs[1])
		cancel()
		if r.code != 1 || !strings.Contains(r.stderr, "not a valid aspen backup") || !strings.Contains(r.stderr, "damaged") {
			t.Errorf("restore from a %s backup: got exit status %d, stderr %q; want 1 and a message that the file is damaged", name, r.code, r.stderr)
		}
	}
}

// TestCheckRestoredKey shows that the restore check catches each way a
// restored key can be wrong, on a history of one key: a (acknowledged at
// revision 5), u (unknown outcome), b (acknowledged at revision 9), with
// the backup at revision 7.
func TestCheckRestoredKey(t *testing.T) {
	ops := []faultcheck.Op{
		{Kind: faultcheck.Put, Key: "k", Value: "a", OK: true, Index: 5},
		{Kind: faultcheck.Put, Key: "k", Value: "u", Unknown: true},
		{Kind: faultcheck.Put, Key: "k", Value: "b", OK: true, Index: 9},
		{Kind: faultcheck.CAS, Key: "k", Value: "f", OK: false},
	}
	for _, tc := range []struct {
		name string
		got  restoredEntry
		want string // a fragment of the one problem expected; "" for none
	}{
		{"the last acknowledged write before the backup", restoredEntry{"a", 5, true}, ""},
		{"a write of unknown outcome after it", restoredEntry{"u", 6, true}, ""},
		{"absent", restoredEntry{}, "absent"},
		{"a write after the backup", restoredEntry{"b", 9, true}, "after the backup's revision"},
		{"a failed cas", restoredEntry{"f", 6, true}, "no write wrote"},
		{"at the wrong index", restoredEntry{"a", 6, true}, "restored at ModifyIndex 6"},
		{"an older index", restoredEntry{"u", 4, true}, "last acknowledged write"},
	} {
		problems := checkRestoredKey("k", tc.got, ops, 7)
		switch {
		case tc.want == "" && len(problems) > 0:
			t.Errorf("%s: got %q, want no problem", tc.name, problems)
		case tc.want != "" && (len(problems) != 1 || !strings.Contains(problems[0], tc.want)):
			t.Errorf("%s: got %q, want one problem with %q", tc.name, problems, tc.want)
		}
	}
}
