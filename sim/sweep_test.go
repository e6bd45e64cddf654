package sim

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// shortScenario is a small, fast scenario with faults, so that seeds differ.
func shortScenario(t *testing.T, name string) Scenario {
	t.Helper()
	src := "name = \"" + name + "\"\n" + `
[run]
fault_seconds = 1
heal_seconds = 2
[faults]
interval_ms = 200
partition = 1
crash = 1
`
	sc, err := ParseScenario([]byte(src), name)
	if err != nil {
		t.Fatalf("ParseScenario: %v", err)
	}
	return sc
}

func TestSweepReportsEveryJobOnce(t *testing.T) {
	a, b := shortScenario(t, "a"), shortScenario(t, "b")
	var jobs []Job
	for seed := uint64(1); seed <= 4; seed++ {
		jobs = append(jobs, Job{Scenario: a, Seed: seed}, Job{Scenario: b, Seed: seed})
	}
	for _, parallel := range []int{0, 1, 3, 100} {
		var got []string
		Sweep(jobs, parallel, func(res Result) {
			got = append(got, fmt.Sprintf("%s/%d", res.Scenario, res.Seed))
		})
		slices.Sort(got)
		want := []string{"a/1", "a/2", "a/3", "a/4", "b/1", "b/2", "b/3", "b/4"}
		if !slices.Equal(got, want) {
			t.Errorf("parallel %d: got results %v, want %v", parallel, got, want)
		}
	}
}

func TestSweepWithNoJobsReturns(t *testing.T) {
	calls := 0
	Sweep(nil, 4, func(Result) { calls++ })
	if calls != 0 {
		t.Errorf("got %d calls, want 0", calls)
	}
}

// A sweep's results must be the results of running each seed alone:
// workers share nothing that can leak from one run into another.
func TestSweepMatchesRunningAlone(t *testing.T) {
	sc := shortScenario(t, "alone")
	var jobs []Job
	want := map[uint64]string{}
	for seed := uint64(1); seed <= 6; seed++ {
		jobs = append(jobs, Job{Scenario: sc, Seed: seed})
		want[seed] = Run(sc, seed, Options{}).TraceHash
	}
	if distinct := len(slices.Compact(slices.Sorted(maps.Values(want)))); distinct < 2 {
		t.Fatalf("got %d distinct trace hashes over 6 seeds, want seeds that differ", distinct)
	}
	Sweep(jobs, 3, func(res Result) {
		if res.TraceHash != want[res.Seed] {
			t.Errorf("seed %d: got trace hash %s in a sweep, want %s as run alone", res.Seed, res.TraceHash, want[res.Seed])
		}
	})
}

func TestSummaryTable(t *testing.T) {
	var s Summary
	s.Track("second") // tracked first, so it leads although its results come later
	s.Add(Result{Scenario: "first", Passed: true, VirtualSeconds: 10, WallSeconds: 0.5, Events: 1000})
	s.Add(Result{Scenario: "second", Passed: false, VirtualSeconds: 20, WallSeconds: 1, Events: 3000})
	s.Add(Result{Scenario: "first", Passed: false, VirtualSeconds: 10, WallSeconds: 0.5, Events: 1000})

	var buf bytes.Buffer
	if err := s.Table(&buf); err != nil {
		t.Fatalf("Table: %v", err)
	}
	want := strings.Join([]string{
		"SCENARIO  RUNS  FAILED  VIRTUAL_S  WALL_S  VIRTUAL/WALL  EVENTS  EVENTS/WALL_S",
		"second    1     1       20.0       1.00    20.0          3000    3000",
		"first     2     1       20.0       1.00    20.0          2000    2000",
		"total     3     2       40.0       2.00    20.0          5000    2500",
		"",
	}, "\n")
	if got := buf.String(); got != want {
		t.Errorf("got table\n%s\nwant\n%s", got, want)
	}
}

func TestSummaryRatesWithoutWallTime(t *testing.T) {
	var s Summary
	s.Add(Result{Scenario: "instant", Passed: true, VirtualSeconds: 5})
	if got := s.Total().VirtualPerWall(); got != 0 {
		t.Errorf("got %v virtual seconds per wall second with no wall time, want 0", got)
	}
}
