package sim

import (
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/bugs"
)

// The scenarios in scenarios/ plant nothing.
func TestShippedScenariosPlantNoBugs(t *testing.T) {
	for _, f := range scenarioFiles(t) {
		if sc := loadScenario(t, f); !sc.plantedBugs().Empty() {
			t.Errorf("%s plants a bug", f)
		}
	}
}

// A bug name that does not exist is an error in every build; a real one is an
// error only in a build that cannot plant it.
func TestScenarioBugNames(t *testing.T) {
	_, err := ParseScenario([]byte("name = \"x\"\n[bugs]\nno_such_bug = true\n"), "x")
	if err == nil || !strings.Contains(err.Error(), "unknown planted bug") {
		t.Fatalf("unknown bug: got %v, want an unknown planted bug error", err)
	}
	sc, err := ParseScenario([]byte("name = \"x\"\n[bugs]\nskip_sync = true\n"), "x")
	if bugs.Enabled {
		if err != nil || !sc.plantedBugs().Has(bugs.SkipSync) {
			t.Fatalf("aspenbugs build: got %v, planted %v; want skip_sync planted", err, sc.plantedBugs())
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "-tags aspenbugs") {
		t.Fatalf("plain build: got %v, want an error naming the aspenbugs tag", err)
	}
}

// Crash points and the reload checker are probabilities: outside [0, 1] is an
// error, and leaving them out means no crash points and the default reload rate.
func TestScenarioCrashPointKeys(t *testing.T) {
	for _, bad := range []string{"[faults]\ncrash_before_sync_prob = 1.5\n", "[faults]\ncrash_after_vote_prob = -0.1\n", "[checkers]\nreload_prob = 2\n"} {
		if _, err := ParseScenario([]byte("name = \"x\"\n"+bad), "x"); err == nil || !strings.Contains(err.Error(), "outside [0, 1]") {
			t.Errorf("%q: got %v, want a probability error", bad, err)
		}
	}
	sc, err := ParseScenario([]byte("name = \"x\"\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Faults.crashPointsOn() || sc.Checkers.ReloadProb != 0.0005 {
		t.Errorf("defaults: crash points on %v, reload_prob %v; want off and 0.0005", sc.Faults.crashPointsOn(), sc.Checkers.ReloadProb)
	}
}
