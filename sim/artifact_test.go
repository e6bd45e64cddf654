package sim

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func baselineRun(t *testing.T) (Scenario, Result) {
	t.Helper()
	sc, err := LoadScenario("../scenarios/baseline.toml")
	if err != nil {
		t.Fatalf("LoadScenario: %v", err)
	}
	return sc, Run(sc, 1, Options{})
}

func TestWriteArtifactWritesAReplayableFolder(t *testing.T) {
	sc, res := baselineRun(t)
	dir := t.TempDir()
	folder, err := WriteArtifact(dir, sc, 1, res, "abc123")
	if err != nil {
		t.Fatalf("WriteArtifact: %v", err)
	}
	if want := filepath.Join(dir, "baseline-seed1"); folder != want {
		t.Errorf("got folder %s, want %s", folder, want)
	}
	for _, name := range []string{"scenario.toml", "result.json", "trace.txt", "linearizability.html", "README.txt"} {
		info, err := os.Stat(filepath.Join(folder, name))
		if err != nil || info.Size() == 0 {
			t.Errorf("got %s missing or empty (%v), want it written", name, err)
		}
	}
	readme := readText(t, filepath.Join(folder, "README.txt"))
	for _, want := range []string{
		"aspen sim replay " + folder,
		"aspen sim run --scenario " + filepath.Join(folder, "scenario.toml") + " --seed 1",
		"commit:      abc123",
		"violations (0)",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("got README without %q:\n%s", want, readme)
		}
	}
	if strings.Contains(readme, "ERROR") {
		t.Errorf("got README reporting an error for a deterministic seed:\n%s", readme)
	}
}

func TestArtifactResultHoldsCommit(t *testing.T) {
	sc, res := baselineRun(t)
	folder, err := WriteArtifact(t.TempDir(), sc, 1, res, "abc123")
	if err != nil {
		t.Fatalf("WriteArtifact: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(readText(t, filepath.Join(folder, "result.json"))), &got); err != nil {
		t.Fatalf("result.json: %v", err)
	}
	if got["commit"] != "abc123" || got["trace_hash"] != res.TraceHash {
		t.Errorf("got commit %v trace_hash %v, want abc123 and %s", got["commit"], got["trace_hash"], res.TraceHash)
	}
}

func TestReadArtifactRoundTrips(t *testing.T) {
	sc, res := baselineRun(t)
	folder, err := WriteArtifact(t.TempDir(), sc, 1, res, "abc123")
	if err != nil {
		t.Fatalf("WriteArtifact: %v", err)
	}
	gotSc, seed, hash, err := ReadArtifact(folder)
	if err != nil {
		t.Fatalf("ReadArtifact: %v", err)
	}
	if gotSc.Name != "baseline" || seed != 1 || hash != res.TraceHash {
		t.Errorf("got scenario %q seed %d hash %s, want baseline seed 1 hash %s", gotSc.Name, seed, hash, res.TraceHash)
	}
	if got := Run(gotSc, seed, Options{}).TraceHash; got != hash {
		t.Errorf("got replayed hash %s, want recorded %s", got, hash)
	}
}

func TestWriteArtifactReportsADifferentHash(t *testing.T) {
	sc, res := baselineRun(t)
	res.TraceHash = "not-the-hash"
	folder, err := WriteArtifact(t.TempDir(), sc, 1, res, "abc123")
	if !errors.Is(err, ErrNondeterministic) {
		t.Errorf("got error %v, want ErrNondeterministic", err)
	}
	if folder == "" {
		t.Fatalf("got no folder, want the folder written anyway")
	}
	readme := readText(t, filepath.Join(folder, "README.txt"))
	if !strings.Contains(readme, "ERROR: running the seed again") || !strings.Contains(readme, "not-the-hash") {
		t.Errorf("got README without the hash mismatch:\n%s", readme)
	}
}

func TestReadArtifactErrors(t *testing.T) {
	sc, res := baselineRun(t)
	good, err := WriteArtifact(t.TempDir(), sc, 1, res, "abc123")
	if err != nil {
		t.Fatalf("WriteArtifact: %v", err)
	}
	tests := []struct {
		name   string
		damage func(folder string) error
		want   string
	}{
		{"missing folder", func(f string) error { return os.RemoveAll(f) }, "no such file"},
		{"file, not folder", func(f string) error {
			if err := os.RemoveAll(f); err != nil {
				return err
			}
			return os.WriteFile(f, nil, 0o644)
		}, "not a folder"},
		{"no result", func(f string) error { return os.Remove(filepath.Join(f, "result.json")) }, "result.json"},
		{"corrupt result", func(f string) error {
			return os.WriteFile(filepath.Join(f, "result.json"), []byte("{\"seed\": "), 0o644)
		}, "corrupt result.json"},
		{"result without seed", func(f string) error {
			return os.WriteFile(filepath.Join(f, "result.json"), []byte(`{"scenario":"baseline","trace_hash":"x"}`), 0o644)
		}, "want keys scenario, seed and trace_hash"},
		{"no scenario", func(f string) error { return os.Remove(filepath.Join(f, "scenario.toml")) }, "scenario.toml"},
		{"corrupt scenario", func(f string) error {
			return os.WriteFile(filepath.Join(f, "scenario.toml"), []byte("[cluster\n"), 0o644)
		}, "scenario"},
		{"other scenario", func(f string) error {
			return os.WriteFile(filepath.Join(f, "scenario.toml"), []byte(`name = "other"`), 0o644)
		}, `names scenario "other"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			folder := filepath.Join(t.TempDir(), "artifact")
			if err := os.CopyFS(folder, os.DirFS(good)); err != nil {
				t.Fatalf("copy artifact: %v", err)
			}
			if err := tt.damage(folder); err != nil {
				t.Fatalf("break artifact: %v", err)
			}
			_, _, _, err := ReadArtifact(folder)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestArtifactNameIsSafe(t *testing.T) {
	tests := []struct {
		scenario string
		seed     uint64
		want     string
	}{
		{"baseline", 1, "baseline-seed1"},
		{"../up/and out", 2, ".._up_and_out-seed2"},
		{"", 3, "scenario-seed3"},
		{"..", 4, "scenario-seed4"},
	}
	for _, tt := range tests {
		if got := artifactName(tt.scenario, tt.seed); got != tt.want {
			t.Errorf("artifactName(%q, %d): got %q, want %q", tt.scenario, tt.seed, got, tt.want)
		}
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(data)
}
