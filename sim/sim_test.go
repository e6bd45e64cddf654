package sim

import (
	"flag"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var seedsFlag = flag.Int("sim.seeds", 3, "seeds per scenario in TestScenariosPass (make sweep runs many more)")

func loadScenario(t testing.TB, path string) Scenario {
	t.Helper()
	sc, err := LoadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func scenarioFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("../scenarios/*.toml")
	if err != nil || len(files) < 6 {
		t.Fatalf("got %d scenario files (err %v), want at least 6", len(files), err)
	}
	return files
}

func TestScenariosPass(t *testing.T) {
	for _, f := range scenarioFiles(t) {
		sc := loadScenario(t, f)
		t.Run(sc.Name, func(t *testing.T) {
			for seed := uint64(1); seed <= uint64(*seedsFlag); seed++ {
				r := Run(sc, seed, Options{})
				if !r.Passed {
					t.Errorf("seed %d: %v", seed, r.Violations)
				}
				if r.Ops == 0 && sc.Workload.Clients > 0 {
					t.Errorf("seed %d: no operations completed", seed)
				}
			}
		})
	}
}

// TestFaultsHappen guards against a simulator that quietly stopped injecting:
// the crash scenario must crash nodes, lose writes and catch flipped bits.
func TestFaultsHappen(t *testing.T) {
	sc := loadScenario(t, "../scenarios/crashes.toml")
	var crashes, caught, installs int
	for seed := uint64(1); seed <= 8; seed++ {
		r := Run(sc, seed, Options{})
		crashes += r.Crashes
		caught += r.CorruptionsCaught
		installs += r.SnapshotInstalls
	}
	if crashes == 0 || caught == 0 || installs == 0 {
		t.Fatalf("over 8 seeds: %d crashes, %d corruptions caught, %d snapshot installs; want all > 0", crashes, caught, installs)
	}
	part := loadScenario(t, "../scenarios/partitions.toml")
	if r := Run(part, 1, Options{}); r.Partitions == 0 {
		t.Fatalf("partitions scenario made no partitions")
	}
}

func TestSameSeedSameTrace(t *testing.T) {
	sc := loadScenario(t, "../scenarios/swarm.toml")
	a, b := Run(sc, 7, Options{}), Run(sc, 7, Options{Trace: &strings.Builder{}})
	if a.TraceHash != b.TraceHash || a.Events != b.Events {
		t.Fatalf("same seed: hashes %s (%d events) and %s (%d events)", a.TraceHash, a.Events, b.TraceHash, b.Events)
	}
	if c := Run(sc, 8, Options{}); c.TraceHash == a.TraceHash {
		t.Fatalf("seeds 7 and 8 gave the same trace hash %s", a.TraceHash)
	}
}

// TestParallelRunsIndependent runs seeds concurrently and one by one: parallel
// simulations in one process must not leak randomness into each other.
func TestParallelRunsIndependent(t *testing.T) {
	sc := loadScenario(t, "../scenarios/crashes.toml")
	sc.Run.FaultSeconds, sc.Run.HealSeconds = 5, 3
	want := map[uint64]string{}
	for seed := uint64(1); seed <= 4; seed++ {
		want[seed] = Run(sc, seed, Options{}).TraceHash
	}
	var mu sync.Mutex
	got := map[uint64]string{}
	var wg sync.WaitGroup
	for seed := uint64(1); seed <= 4; seed++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := Run(sc, seed, Options{}).TraceHash
			mu.Lock()
			got[seed] = h
			mu.Unlock()
		}()
	}
	wg.Wait()
	for seed, h := range want {
		if got[seed] != h {
			t.Errorf("seed %d: parallel hash %s, sequential %s", seed, got[seed], h)
		}
	}
}

func TestTraceIsReadable(t *testing.T) {
	sc := loadScenario(t, "../scenarios/crashes.toml")
	sc.Run.FaultSeconds, sc.Run.HealSeconds = 3, 2
	sc.Faults.IntervalMs = 100 // faults every 100 ms on average: a crash is all but certain
	var b strings.Builder
	Run(sc, 3, Options{Trace: &b})
	for _, want := range []string{"deliver", "tick", "request", "response", "crash node"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("trace lacks %q", want)
		}
	}
}

// The replace-all scenario must really replace every original node, and the
// cluster must agree on it (checkMembership compares every node to this).
func TestReplaceAllReplacesEveryOriginal(t *testing.T) {
	sc := loadScenario(t, "../scenarios/replace-all.toml")
	r := Run(sc, 1, Options{})
	if !r.Passed {
		t.Fatalf("seed 1 failed: %v", r.Violations)
	}
	if len(r.FinalVoters) != 3 {
		t.Fatalf("final voters %v, want 3", r.FinalVoters)
	}
	for _, id := range r.FinalVoters {
		if id <= uint64(sc.Cluster.Nodes) {
			t.Fatalf("final voters %v still hold original node %d", r.FinalVoters, id)
		}
	}
}
