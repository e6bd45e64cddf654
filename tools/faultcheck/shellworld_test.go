//go:build linux

package faultcheck_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// shellWorld is what a test of worker pools in real node processes sets up
// beside the cluster: the cluster key every node shares, a work directory,
// a script the pools may run there, and a token that allows it.
type shellWorld struct {
	bin, dir                         string
	keyFile, work, script, tokenFile string
	concurrency, pollMs              int
}

// newShellWorld writes script (named scriptName) under dir's bin and makes
// the cluster key. dir is resolved first: the worker policy compares
// resolved paths.
func newShellWorld(t *testing.T, bin, dir, scriptName, script, tokenName string, concurrency, pollMs int) shellWorld {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := shellWorld{bin: bin, dir: real, keyFile: filepath.Join(real, "cluster.key"), work: filepath.Join(real, "work"),
		script: filepath.Join(real, "bin", scriptName), tokenFile: filepath.Join(real, tokenName), concurrency: concurrency, pollMs: pollMs}
	for _, d := range []string{w.work, filepath.Dir(w.script)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(w.script, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := runAspen(context.Background(), bin, "token", "keygen", w.keyFile); r.err() != nil {
		t.Fatal(r.err())
	}
	return w
}

// nodeConfig writes node id's config file (the shared cluster key and a
// worker pool allowed to run the script in the work directory) and
// returns the flag that names it.
func (w *shellWorld) nodeConfig(id uint64) []string {
	path := filepath.Join(w.dir, fmt.Sprintf("node%d.toml", id))
	cfg := fmt.Sprintf(`token_key_file = %q

[worker]
enabled = true
name = "node%d"
concurrency = %d
poll_ms = %d

[worker.shell]
commands = [%q]
dir_roots = [%q]
`, w.keyFile, id, w.concurrency, w.pollMs, w.script, w.work)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		panic(err) // the test's own temporary directory: cannot happen
	}
	return []string{"--config", path}
}

// createToken signs a token for the script with the aspen binary,
// registers it through addr, and keeps it in tokenFile.
func (w *shellWorld) createToken(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	r := runAspen(ctx, w.bin, "token", "create", "--addr", addr, "--key", w.keyFile, "--subject", "faultcheck",
		"--command", w.script, "--dir", w.work, "--ttl", "1h")
	if r.err() != nil {
		t.Fatal(r.err())
	}
	if err := os.WriteFile(w.tokenFile, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
}
