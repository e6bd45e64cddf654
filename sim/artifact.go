package sim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Files of an artifact folder.
const (
	artifactScenario = "scenario.toml"
	artifactResult   = "result.json"
	artifactTrace    = "trace.txt"
	artifactHTML     = "linearizability.html"
	artifactReadme   = "README.txt"
)

// ErrNondeterministic reports that running a seed again gave a different
// trace hash. WriteArtifact still writes the folder when it returns it.
var ErrNondeterministic = errors.New("seed is not deterministic")

// artifactResultFile is result.json: the result, and the commit that made it.
type artifactResultFile struct {
	Result
	Commit string `json:"commit"`
}

// WriteArtifact writes what is needed to study and replay a run into
// dir/<scenario>-seed<seed>/ and returns that folder. It runs the seed again
// to write the trace, which also checks that the seed replays: if the hash
// differs from res.TraceHash, the README says so and the error wraps
// ErrNondeterministic (the folder is still complete).
func WriteArtifact(dir string, sc Scenario, seed uint64, res Result, commit string) (string, error) {
	folder := filepath.Join(dir, artifactName(sc.Name, seed))
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return "", fmt.Errorf("create artifact folder: %w", err)
	}
	if err := writeFile(folder, artifactScenario, sc.Source()); err != nil {
		return "", err
	}
	if err := writeResultFile(folder, res, commit); err != nil {
		return "", err
	}
	rerun, err := writeTrace(folder, sc, seed)
	if err != nil {
		return "", err
	}
	htmlErr := writeHTML(folder, &rerun)
	var replayErr error
	if rerun.TraceHash != res.TraceHash {
		replayErr = fmt.Errorf("%w: %s seed %d ran with trace hash %q, then %q while writing %s",
			ErrNondeterministic, sc.Name, seed, res.TraceHash, rerun.TraceHash, folder)
	}
	readme := artifactReadmeText(folder, sc, seed, res, commit, replayErr, htmlErr)
	if err := writeFile(folder, artifactReadme, []byte(readme)); err != nil {
		return "", err
	}
	return folder, replayErr
}

// artifactName makes a folder name of the scenario's name that is safe on any
// file system, whatever the name holds.
func artifactName(scenario string, seed uint64) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, scenario)
	if strings.Trim(clean, ".") == "" {
		clean = "scenario"
	}
	return fmt.Sprintf("%s-seed%d", clean, seed)
}

func writeFile(folder, name string, data []byte) error {
	if err := os.WriteFile(filepath.Join(folder, name), data, 0o644); err != nil {
		return fmt.Errorf("write artifact: %w", err)
	}
	return nil
}

func writeResultFile(folder string, res Result, commit string) error {
	data, err := json.MarshalIndent(artifactResultFile{Result: res, Commit: commit}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", artifactResult, err)
	}
	return writeFile(folder, artifactResult, append(data, '\n'))
}

// writeTrace runs the seed again with the readable trace on, and returns that
// run's result.
func writeTrace(folder string, sc Scenario, seed uint64) (Result, error) {
	f, err := os.Create(filepath.Join(folder, artifactTrace))
	if err != nil {
		return Result{}, fmt.Errorf("write artifact: %w", err)
	}
	defer f.Close()
	buf := bufio.NewWriterSize(f, 1<<16)
	// A panicking run leaves its trace up to the panic, which is the part
	// worth reading; guarding keeps the rest of the artifact coming.
	rerun := Run(sc, seed, Options{Trace: buf})
	if err := buf.Flush(); err != nil {
		return Result{}, fmt.Errorf("write artifact trace: %w", err)
	}
	if err := f.Close(); err != nil {
		return Result{}, fmt.Errorf("write artifact trace: %w", err)
	}
	return rerun, nil
}

// writeHTML writes porcupine's view of the history. A failure here is noted in
// the README rather than fatal: the rest of the folder still replays.
func writeHTML(folder string, res *Result) error {
	f, err := os.Create(filepath.Join(folder, artifactHTML))
	if err != nil {
		return fmt.Errorf("create %s: %w", artifactHTML, err)
	}
	defer f.Close()
	buf := bufio.NewWriter(f)
	if err := res.VisualizeHTML(buf); err != nil {
		return fmt.Errorf("visualize history: %w", err)
	}
	if err := buf.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", artifactHTML, err)
	}
	return f.Close()
}

func artifactReadmeText(folder string, sc Scenario, seed uint64, res Result, commit string, replayErr, htmlErr error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Aspen simulation artifact\n\n")
	fmt.Fprintf(&b, "scenario:    %s\nseed:        %d\ncommit:      %s\n", sc.Name, seed, commit)
	fmt.Fprintf(&b, "passed:      %t\ntrace hash:  %s\n", res.Passed, res.TraceHash)
	fmt.Fprintf(&b, "linearizability: %s\n\n", res.Linearizability)
	if replayErr != nil {
		fmt.Fprintf(&b, "ERROR: running the seed again to write trace.txt gave a different trace hash.\n")
		fmt.Fprintf(&b, "The run is not deterministic, so a replay may not show this failure.\n%v\n\n", replayErr)
	}
	fmt.Fprintf(&b, "violations (%d):\n", len(res.Violations))
	for _, v := range res.Violations {
		fmt.Fprintf(&b, "  - %s\n", strings.ReplaceAll(v, "\n", "\n    "))
	}
	fmt.Fprintf(&b, "\nReplay (at the commit above):\n\n  aspen sim replay %s\n\n", folder)
	fmt.Fprintf(&b, "which is the same as:\n\n  aspen sim run --scenario %s --seed %d\n\n",
		filepath.Join(folder, artifactScenario), seed)
	fmt.Fprintf(&b, "Files:\n")
	fmt.Fprintf(&b, "  %-21s the scenario as run\n", artifactScenario)
	fmt.Fprintf(&b, "  %-21s the result, with the commit\n", artifactResult)
	fmt.Fprintf(&b, "  %-21s one line per event of the replayed run\n", artifactTrace)
	fmt.Fprintf(&b, "  %-21s the checked history, for a browser\n", artifactHTML)
	if htmlErr != nil {
		fmt.Fprintf(&b, "\nERROR: %s is missing or incomplete: %v\n", artifactHTML, htmlErr)
	}
	return b.String()
}

// ReadArtifact reads back what a replay needs from a folder that
// WriteArtifact wrote: the scenario, the seed, and the recorded trace hash.
func ReadArtifact(folder string) (sc Scenario, seed uint64, recordedHash string, err error) {
	info, err := os.Stat(folder)
	if err != nil {
		return Scenario{}, 0, "", fmt.Errorf("artifact: %w", err)
	}
	if !info.IsDir() {
		return Scenario{}, 0, "", fmt.Errorf("artifact %s: not a folder", folder)
	}
	name, seed, hash, err := readResultFile(folder)
	if err != nil {
		return Scenario{}, 0, "", err
	}
	sc, err = LoadScenario(filepath.Join(folder, artifactScenario))
	if err != nil {
		return Scenario{}, 0, "", fmt.Errorf("artifact %s: %w", folder, err)
	}
	switch {
	case sc.Name == "":
		// The harness named the run after its file; keep that name.
		sc.Name = name
	case sc.Name != name:
		return Scenario{}, 0, "", fmt.Errorf("artifact %s: %s names scenario %q but %s names %q",
			folder, artifactScenario, sc.Name, artifactResult, name)
	}
	return sc, seed, hash, nil
}

// recordedRun is what a replay needs from result.json. Pointers tell a
// missing key from a zero value: seed 0 is a seed, and a run that panicked
// has an empty hash.
type recordedRun struct {
	Scenario  *string `json:"scenario"`
	Seed      *uint64 `json:"seed"`
	TraceHash *string `json:"trace_hash"`
}

func readResultFile(folder string) (scenario string, seed uint64, hash string, err error) {
	data, err := os.ReadFile(filepath.Join(folder, artifactResult))
	if err != nil {
		return "", 0, "", fmt.Errorf("artifact %s: %w", folder, err)
	}
	var rec recordedRun
	if err := json.Unmarshal(data, &rec); err != nil {
		return "", 0, "", fmt.Errorf("artifact %s: corrupt %s: %w", folder, artifactResult, err)
	}
	if rec.Scenario == nil || rec.Seed == nil || rec.TraceHash == nil {
		return "", 0, "", fmt.Errorf("artifact %s: corrupt %s: want keys scenario, seed and trace_hash",
			folder, artifactResult)
	}
	return *rec.Scenario, *rec.Seed, *rec.TraceHash, nil
}
