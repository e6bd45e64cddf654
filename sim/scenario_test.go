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
