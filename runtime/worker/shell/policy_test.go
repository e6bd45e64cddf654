package shell

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Refused commands never start: each would touch a marker file if it ran.
func TestRefusedCommandsNeverRun(t *testing.T) {
	needBinaries(t, "/bin/sh", "/usr/bin/env")
	base := t.TempDir()
	marker := filepath.Join(base, "ran")
	allowed := filepath.Join(base, "allowed")
	writeScript(t, filepath.Join(allowed, "ok"), marker)
	writeScript(t, filepath.Join(base, "outside", "x"), marker)
	if err := os.Symlink(filepath.Join(base, "outside", "x"), filepath.Join(allowed, "link")); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Commands = []string{filepath.Join(allowed, "*"), "/bin/sh", "/usr/bin/env"}
	cfg.AllowShell = false
	e := newTestExecutor(t, cfg)

	for _, tc := range []struct {
		name string
		req  Request
		want Reason
	}{
		{"not in the allowlist", Request{Argv: []string{filepath.Join(base, "outside", "x")}}, ReasonCommandNotAllowed},
		{"escape by ..", Request{Argv: []string{allowed + "/../outside/x"}}, ReasonCommandNotAllowed},
		{"escape by symlink", Request{Argv: []string{filepath.Join(allowed, "link")}}, ReasonCommandNotAllowed},
		{"relative path", Request{Argv: []string{"ok"}, Dir: allowed}, ReasonCommandNotAllowed},
		{"missing", Request{Argv: []string{filepath.Join(allowed, "missing")}}, ReasonCommandNotAllowed},
		{"shell without allow_shell", Request{Argv: []string{"/bin/sh", "-c", "touch " + marker}}, ReasonShellNotAllowed},
		{"empty argv", Request{}, ReasonBadRequest},
		{"NUL in argument", Request{Argv: []string{filepath.Join(allowed, "ok"), "a\x00b"}}, ReasonBadRequest},
		{"timeout above max", Request{Argv: []string{filepath.Join(allowed, "ok")}, Timeout: 1000 * time.Hour}, ReasonBadRequest},
		{"variable not allowed", Request{Argv: []string{filepath.Join(allowed, "ok")}, Env: map[string]string{"SECRET": "x"}}, ReasonEnvNotAllowed},
		{"loader variable", Request{Argv: []string{filepath.Join(allowed, "ok")}, Env: map[string]string{"LD_PRELOAD": "/tmp/x.so"}}, ReasonEnvNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Run(context.Background(), tc.req)
			wantRefused(t, err, tc.want)
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("the refused command ran")
			}
		})
	}
	// The same script through an allowed path runs: the marker can tell.
	if res := run(t, e, Request{Argv: []string{filepath.Join(allowed, "ok")}}); res.ExitCode != 0 {
		t.Fatalf("allowed script: exit %d, stderr %q", res.ExitCode, res.Stderr)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("allowed script did not run: %v", err)
	}
}

// A glob that happens to cover a shell does not hand it out.
func TestGlobDoesNotAllowShell(t *testing.T) {
	needBinaries(t, "/bin/sh")
	cfg := testConfig(t)
	cfg.Commands = []string{"/usr/bin/*"}
	cfg.AllowShell = false
	e := newTestExecutor(t, cfg)
	_, err := e.Run(context.Background(), Request{Argv: []string{"/bin/sh", "-c", "true"}})
	wantRefused(t, err, ReasonShellNotAllowed)
}

// Working directories are checked by path elements after resolving links.
func TestDirectoryOutsideRootsRefused(t *testing.T) {
	needBinaries(t, "/bin/pwd")
	base := t.TempDir()
	root := filepath.Join(base, "root")
	for _, d := range []string{root, root + "-evil", filepath.Join(base, "other"), filepath.Join(root, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(base, "other"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.DirRoots = []string{root}
	e := newTestExecutor(t, cfg)
	for _, dir := range []string{
		root + "-evil",                 // shares the string prefix, not the path
		root + "/../other",             // escapes by ..
		filepath.Join(root, "link"),    // escapes by a symlink
		filepath.Join(root, "missing"), // does not exist
		"relative",
		"/",
	} {
		_, err := e.Run(context.Background(), Request{Argv: []string{"/bin/pwd"}, Dir: dir})
		wantRefused(t, err, ReasonDirNotAllowed)
	}
	for _, dir := range []string{root, filepath.Join(root, "sub"), root + "/sub/../sub", ""} {
		res := run(t, e, Request{Argv: []string{"/bin/pwd"}, Dir: dir})
		if got := strings.TrimSpace(res.Stdout); !within(got, root) {
			t.Fatalf("dir %q: ran in %q, want inside %q", dir, got, root)
		}
	}
}

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		p, root string
		want    bool
	}{
		{"/srv/jobs", "/srv/jobs", true},
		{"/srv/jobs/a/b", "/srv/jobs", true},
		{"/srv/jobs-evil", "/srv/jobs", false},
		{"/srv", "/srv/jobs", false},
		{"/srv/jobs/..x", "/srv/jobs", true}, // a name starting with dots is inside
		{"/anything", "/", true},
	} {
		if got := within(tc.p, tc.root); got != tc.want {
			t.Errorf("within(%q, %q): got %v, want %v", tc.p, tc.root, got, tc.want)
		}
	}
}

func TestConfigMistakesFailAtNew(t *testing.T) {
	for _, cfg := range []Config{
		{Commands: []string{"relative/cmd"}},
		{Commands: []string{"/usr/*/sh"}},
		{Commands: []string{"/nonexistent/dir/*"}},
		{DirRoots: []string{"/nonexistent/root"}},
		{EnvAllow: []string{"[bad"}},
		{OutputBytesMax: outputBytesMaxCeiling + 1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): got no error", cfg)
		}
	}
}
