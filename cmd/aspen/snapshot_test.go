package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSnapshotSaveKeepsOldFileOnBadDownload: a download that does not
// verify must leave FILE as it was, and no temporary file behind.
func TestSnapshotSaveKeepsOldFileOnBadDownload(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Aspen-Revision", "7")
		w.Write([]byte("ASPENBK1 but not really a backup"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "backup.bin")
	if err := os.WriteFile(file, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := aspen(t, "", "snapshot", "save", "--addr", srv.URL, file)
	o.wantCode(t, exitFailed)
	if !strings.Contains(o.stderr, "not a valid aspen backup") {
		t.Errorf("got stderr %q, want it to say the backup is not valid", o.stderr)
	}
	if got, _ := os.ReadFile(file); string(got) != "old" {
		t.Errorf("got FILE %q after a failed save, want the old content", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("got %d entries in the folder, want only FILE (no temporary file left)", len(entries))
	}
}

func TestRestoreRefusals(t *testing.T) {
	dir := t.TempDir()
	damaged := writeFile(t, dir, "damaged.bin", "ASPENBK1\x01\x02\x00\x00\x00\x00\x00")
	full := filepath.Join(dir, "full")
	writeFile(t, full, "LOCK", "")
	joinConfig := writeFile(t, dir, "join.toml", "join = true\n")
	node := []string{"--id", "1", "--initial-cluster", "1=" + closedAddr(t), "--http-addr", closedAddr(t)}
	empty := filepath.Join(dir, "empty")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"damaged file", append([]string{"node", "start", "--data-dir", empty, "--restore", damaged}, node...), exitFailed, "not a valid aspen backup"},
		{"damaged file via snapshot restore", append(append([]string{"snapshot", "restore", "--data-dir", empty}, node...), damaged), exitFailed, "cannot be restored"},
		{"missing file", append([]string{"node", "start", "--data-dir", empty, "--restore", filepath.Join(dir, "nope")}, node...), exitUsage, "no such file"},
		{"data dir in use", append([]string{"node", "start", "--data-dir", full, "--restore", damaged}, node...), exitUsage, "needs an empty data dir"},
		{"join from the config file", append([]string{"node", "start", "--config", joinConfig, "--data-dir", empty, "--restore", damaged}, node...), exitUsage, "--join"},
		{"no FILE", append([]string{"snapshot", "restore", "--data-dir", empty}, node...), exitUsage, "wants FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := aspen(t, "", tc.args...)
			if o.code != tc.code || !strings.Contains(o.stderr, tc.want) {
				t.Errorf("got status %d, stderr %q; want %d and %q", o.code, o.stderr, tc.code, tc.want)
			}
			if _, err := os.Stat(empty); err == nil {
				t.Errorf("a refused restore created the data dir %s", empty)
			}
		})
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"aspen", "--data-dir", "/tmp/my dir", "--http-addr", "<host:port>", "it's", "1=h:1,2=h:2"})
	want := `aspen --data-dir '/tmp/my dir' --http-addr '<host:port>' 'it'\''s' 1=h:1,2=h:2`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// testSnapshot saves a backup of the dev cluster and starts a new one-node
// cluster from it.
func testSnapshot(t *testing.T, d *devCluster) {
	aspen(t, "", "kv", "put", "--addr", d.addrs[0], "snapshot/key", "kept").wantCode(t, 0)
	before := aspen(t, "", "kv", "get", "--json", "--addr", d.addrs[1], "snapshot/key")
	before.wantCode(t, 0)
	file := filepath.Join(t.TempDir(), "backup.bin")
	o := aspen(t, "", "snapshot", "save", "--addr", d.addrs[1], file)
	o.wantCode(t, 0)
	if !strings.HasPrefix(o.stdout, "saved "+file+": revision ") {
		t.Errorf("save: got %q, want saved FILE: revision ...", o.stdout)
	}
	peer, httpAddr := closedAddr(t), closedAddr(t)
	restored := startBackground(t, "snapshot", "restore", "--id", "1", "--data-dir", t.TempDir(), "--initial-cluster", "1="+peer,
		"--http-addr", httpAddr, "--tick-ms", "50", file)
	deadline := time.Now().Add(15 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for leaderOf(hc, httpAddr) == "" {
		select {
		case <-restored.exited:
			t.Fatalf("restored node exited; output:\n%s", restored.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored node has no leader after 15s; output:\n%s", restored.out.String())
		}
	}
	after := aspen(t, "", "kv", "get", "--json", "--addr", httpAddr, "snapshot/key")
	after.wantCode(t, 0)
	if after.stdout != before.stdout {
		t.Errorf("restored entry: got\n%s\nwant the entry as backed up:\n%s", after.stdout, before.stdout)
	}
}
