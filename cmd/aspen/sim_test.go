package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/sim"
)

var hashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestSimRunPasses(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.txt")
	o := aspen(t, dir, "sim", "run", "--scenario", baseline(t), "--seed", "1", "--trace", trace)
	o.wantCode(t, 0)
	for _, want := range []string{"baseline seed 1: PASSED", "trace hash", "virtual", "wall", "events", "ops", "violations"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("got output without %q:\n%s", want, o.stdout)
		}
	}
	if info, err := os.Stat(trace); err != nil || info.Size() == 0 {
		t.Errorf("got trace file missing or empty (%v), want it written", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "artifacts")); !os.IsNotExist(err) {
		t.Errorf("got an artifacts folder for a passing run (%v), want none", err)
	}
}

func TestSimRunJSON(t *testing.T) {
	o := aspen(t, "", "sim", "run", "--scenario", baseline(t), "--seed", "1", "--json")
	o.wantCode(t, 0)
	if lines := strings.Count(o.stdout, "\n"); lines != 1 {
		t.Errorf("got %d lines of output, want 1 JSON object", lines)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(o.stdout), &got); err != nil {
		t.Fatalf("got output that is not JSON (%v):\n%s", err, o.stdout)
	}
	for _, key := range []string{"scenario", "seed", "passed", "trace_hash", "virtual_seconds", "wall_seconds",
		"events", "ops", "ops_unknown", "messages", "crashes", "corruptions_caught", "partitions",
		"linearizability", "violations"} {
		if _, ok := got[key]; !ok {
			t.Errorf("got JSON without %q: %s", key, o.stdout)
		}
	}
	if got["scenario"] != "baseline" || got["seed"] != 1.0 || got["passed"] != true {
		t.Errorf("got scenario %v seed %v passed %v, want baseline 1 true", got["scenario"], got["seed"], got["passed"])
	}
	if hash, _ := got["trace_hash"].(string); !hashPattern.MatchString(hash) {
		t.Errorf("got trace_hash %q, want 64 hex digits", hash)
	}
}

func TestSimRunFailureWritesArtifact(t *testing.T) {
	dir := t.TempDir()
	o := aspen(t, dir, "sim", "run", "--scenario", plantedScenario(t), "--seed", "1")
	o.wantCode(t, 1)
	folder := filepath.Join("artifacts", "noop-bump-seed1")
	for _, want := range []string{"FAILED", "artifact: " + folder, "aspen sim replay " + folder} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("got output without %q:\n%s", want, o.stdout)
		}
	}
	replay := aspen(t, dir, "sim", "replay", folder)
	replay.wantCode(t, 1)
	if !strings.Contains(replay.stdout, ": same") || !strings.Contains(replay.stderr, "the failure reproduces") {
		t.Errorf("got replay without a matching hash and a reproduced failure:\n%s\n%s", replay.stdout, replay.stderr)
	}
}

func TestSimSweep(t *testing.T) {
	o := aspen(t, "", "sim", "sweep", "--scenario", baseline(t), "--seeds", "3", "--parallel", "2")
	o.wantCode(t, 0)
	for _, want := range []string{"SCENARIO", "EVENTS/WALL_S", "\nbaseline  ", "\ntotal  ", "3 runs in"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("got output without %q:\n%s", want, o.stdout)
		}
	}
	if o.stderr != "" {
		t.Errorf("got stderr %q, want nothing (no progress line off a terminal)", o.stderr)
	}
}

func TestSimSweepJSONAndFailures(t *testing.T) {
	dir := t.TempDir()
	o := aspen(t, dir, "sim", "sweep", "--scenario", plantedScenario(t), "--seeds", "3", "--start-seed", "10", "--json")
	o.wantCode(t, 1)
	seeds := map[uint64]bool{}
	failed := 0
	scanner := bufio.NewScanner(strings.NewReader(o.stdout))
	for scanner.Scan() {
		var rec struct {
			sim.Result
			Artifact string `json:"artifact"`
		}
		if err := json.Unmarshal(scanner.Bytes(), &rec); err != nil {
			t.Fatalf("got a stdout line that is not JSON (%v): %s", err, scanner.Text())
		}
		seeds[rec.Seed] = true
		if rec.Passed {
			continue
		}
		failed++
		if _, err := os.Stat(filepath.Join(dir, rec.Artifact, "README.txt")); err != nil {
			t.Errorf("seed %d: got no artifact README (%v), want one", rec.Seed, err)
		}
	}
	if len(seeds) != 3 || !seeds[10] || !seeds[11] || !seeds[12] {
		t.Errorf("got seeds %v, want 10, 11 and 12", seeds)
	}
	if failed == 0 {
		t.Errorf("got no failed runs with a planted bug, want some")
	}
	if failed > 0 && !strings.Contains(o.stderr, "FAIL noop-bump seed ") {
		t.Errorf("got stderr without the failures:\n%s", o.stderr)
	}
	if !strings.Contains(o.stderr, "SCENARIO") || !strings.Contains(o.stderr, "total") {
		t.Errorf("got stderr without the summary table:\n%s", o.stderr)
	}
}

// writeScenarios writes short scenario files into a fresh folder.
func writeScenarios(t *testing.T, names map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for file, name := range names {
		src := "name = \"" + name + "\"\n[run]\nfault_seconds = 0\nheal_seconds = 2\n"
		if err := os.WriteFile(filepath.Join(dir, file), []byte(src), 0o644); err != nil {
			t.Fatalf("write scenario: %v", err)
		}
	}
	return dir
}

func TestSimSweepFolderRunsEachFileInNameOrder(t *testing.T) {
	dir := writeScenarios(t, map[string]string{"b.toml": "first-by-file", "c.toml": "last", "a.toml": "zeta", "notes.txt": "skipped"})
	o := aspen(t, "", "sim", "sweep", "--scenario", dir, "--seeds", "2")
	o.wantCode(t, 0)
	var rows []string
	for _, line := range strings.Split(o.stdout, "\n") {
		if fields := strings.Fields(line); len(fields) > 1 {
			rows = append(rows, fields[0]+" "+fields[1])
		}
	}
	want := []string{"SCENARIO RUNS", "zeta 2", "first-by-file 2", "last 2", "total 6", "6 runs"}
	if strings.Join(rows, ",") != strings.Join(want, ",") {
		t.Errorf("got rows %q, want %q", rows, want)
	}
}

func TestSimSweepRejectsSharedNames(t *testing.T) {
	dir := writeScenarios(t, map[string]string{"a.toml": "same", "b.toml": "same"})
	o := aspen(t, "", "sim", "sweep", "--scenario", dir, "--seeds", "1")
	o.wantCode(t, exitUsage)
	if !strings.Contains(o.stderr, `are both named "same"`) {
		t.Errorf("got stderr %q, want it to name the clash", o.stderr)
	}
}

func TestSimCheckDeterminism(t *testing.T) {
	o := aspen(t, "", "sim", "check-determinism", "--scenario", baseline(t), "--seed", "1")
	o.wantCode(t, 0)
	for _, want := range []string{"in-process run 1 (traced)", "in-process run 2", "subprocess (GOMAXPROCS=", "deterministic: 3 runs"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("got output without %q:\n%s", want, o.stdout)
		}
	}
}

func TestSimReplayMatchesArtifact(t *testing.T) {
	sc, err := sim.LoadScenario(baseline(t))
	if err != nil {
		t.Fatalf("LoadScenario: %v", err)
	}
	res := sim.Run(sc, 1, sim.Options{})
	folder, err := sim.WriteArtifact(t.TempDir(), sc, 1, res, "test")
	if err != nil {
		t.Fatalf("WriteArtifact: %v", err)
	}
	o := aspen(t, "", "sim", "replay", folder)
	o.wantCode(t, 0)
	if want := "recorded trace hash " + res.TraceHash + ": same"; !strings.Contains(o.stdout, want) {
		t.Errorf("got output without %q:\n%s", want, o.stdout)
	}
}

func TestSimReplayReportsDifferentHash(t *testing.T) {
	sc, err := sim.LoadScenario(baseline(t))
	if err != nil {
		t.Fatalf("LoadScenario: %v", err)
	}
	res := sim.Run(sc, 1, sim.Options{})
	res.TraceHash = strings.Repeat("0", 64) // as if recorded by other code
	folder, _ := sim.WriteArtifact(t.TempDir(), sc, 1, res, "test")
	o := aspen(t, "", "sim", "replay", folder)
	o.wantCode(t, 1)
	if !strings.Contains(o.stdout, "DIFFERS") || !strings.Contains(o.stderr, "trace hash differs") {
		t.Errorf("got output without the difference:\n%s\n%s", o.stdout, o.stderr)
	}
}

func TestBadInputs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"run without scenario", []string{"sim", "run", "--seed", "1"}, "missing --scenario"},
		{"run without seed", []string{"sim", "run", "--scenario", baseline(t)}, "missing --seed"},
		{"run unknown file", []string{"sim", "run", "--scenario", "nope.toml", "--seed", "1"}, "nope.toml"},
		{"run bad seed", []string{"sim", "run", "--scenario", baseline(t), "--seed", "-1"}, "seed"},
		{"run stray argument", []string{"sim", "run", baseline(t)}, "takes no arguments"},
		{"sweep zero seeds", []string{"sim", "sweep", "--scenario", baseline(t), "--seeds", "0"}, "--seeds must be at least 1"},
		{"sweep without seeds", []string{"sim", "sweep", "--scenario", baseline(t)}, "missing --seeds"},
		{"sweep seeds overflow", []string{"sim", "sweep", "--scenario", baseline(t), "--seeds", "2", "--start-seed", "18446744073709551615"}, "largest seed"},
		{"sweep empty folder", []string{"sim", "sweep", "--scenario", ".", "--seeds", "1"}, "no *.toml"},
		{"sweep no parallelism", []string{"sim", "sweep", "--scenario", baseline(t), "--seeds", "1", "--parallel", "0"}, "--parallel"},
		{"replay without folder", []string{"sim", "replay"}, "usage: aspen sim replay"},
		{"replay missing folder", []string{"sim", "replay", "nope"}, "nope"},
		{"determinism zero runs", []string{"sim", "check-determinism", "--scenario", baseline(t), "--seed", "1", "--runs", "0"}, "--runs"},
		{"unknown command", []string{"sim", "walk"}, `unknown command "walk"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := aspen(t, "", tt.args...)
			o.wantCode(t, exitUsage)
			if !strings.Contains(o.stderr, tt.want) {
				t.Errorf("got stderr %q, want it to contain %q", o.stderr, tt.want)
			}
		})
	}
}
