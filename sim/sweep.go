package sim

import (
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
)

// Job is one seeded run of a scenario.
type Job struct {
	Scenario Scenario
	Seed     uint64
}

// Sweep runs jobs on parallel worker goroutines (at least one, at most one per
// job) and calls onResult for each result as it finishes. onResult is called
// from the caller's goroutine, one call at a time, so it needs no locking;
// Sweep returns once every job has been reported. Runs are independent, so
// the order of completion never changes what a run does.
func Sweep(jobs []Job, parallel int, onResult func(Result)) {
	parallel = max(1, min(parallel, len(jobs)))
	work := make(chan Job)
	results := make(chan Result, parallel)
	var workers sync.WaitGroup
	for range parallel {
		workers.Go(func() {
			for j := range work {
				results <- Run(j.Scenario, j.Seed, Options{})
			}
		})
	}
	go func() {
		for _, j := range jobs {
			work <- j
		}
		close(work)
		workers.Wait()
		close(results)
	}()
	for res := range results {
		onResult(res)
	}
}

// Summary aggregates results per scenario. The zero value is ready to use.
type Summary struct {
	rows  []SummaryRow
	index map[string]int // scenario -> position in rows
}

// SummaryRow holds the totals of one scenario, or of all of them. Wall seconds
// are summed over runs, so with parallel workers they exceed elapsed time:
// the rates below are per worker.
type SummaryRow struct {
	Scenario       string
	Runs           int
	Failures       int
	VirtualSeconds float64
	WallSeconds    float64
	Events         int
}

// Track gives scenario a row now, even before it has results, so that rows
// follow the order scenarios were given rather than the order in which
// parallel runs happened to finish.
func (s *Summary) Track(scenario string) {
	s.row(scenario)
}

// Add counts one result.
func (s *Summary) Add(res Result) {
	r := s.row(res.Scenario)
	r.add(res)
}

func (s *Summary) row(scenario string) *SummaryRow {
	if s.index == nil {
		s.index = map[string]int{}
	}
	i, ok := s.index[scenario]
	if !ok {
		i = len(s.rows)
		s.index[scenario] = i
		s.rows = append(s.rows, SummaryRow{Scenario: scenario})
	}
	return &s.rows[i]
}

func (r *SummaryRow) add(res Result) {
	r.Runs++
	if !res.Passed {
		r.Failures++
	}
	r.VirtualSeconds += res.VirtualSeconds
	r.WallSeconds += res.WallSeconds
	r.Events += res.Events
}

// Rows returns one row per scenario, in first-seen order.
func (s Summary) Rows() []SummaryRow {
	return append([]SummaryRow(nil), s.rows...)
}

// Total sums every row.
func (s Summary) Total() SummaryRow {
	t := SummaryRow{Scenario: "total"}
	for _, r := range s.rows {
		t.Runs += r.Runs
		t.Failures += r.Failures
		t.VirtualSeconds += r.VirtualSeconds
		t.WallSeconds += r.WallSeconds
		t.Events += r.Events
	}
	return t
}

// VirtualPerWall is how many simulated seconds one wall second bought.
func (r SummaryRow) VirtualPerWall() float64 { return ratio(r.VirtualSeconds, r.WallSeconds) }

// EventsPerWall is how many events one wall second ran.
func (r SummaryRow) EventsPerWall() float64 { return ratio(float64(r.Events), r.WallSeconds) }

func ratio(n, d float64) float64 {
	if d <= 0 {
		return 0
	}
	return n / d
}

// Table prints one aligned row per scenario, in first-seen order, and a total.
func (s Summary) Table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tRUNS\tFAILED\tVIRTUAL_S\tWALL_S\tVIRTUAL/WALL\tEVENTS\tEVENTS/WALL_S")
	for _, r := range s.rows {
		writeRow(tw, r)
	}
	writeRow(tw, s.Total())
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary table: %w", err)
	}
	return nil
}

func writeRow(w io.Writer, r SummaryRow) {
	fmt.Fprintf(w, "%s\t%d\t%d\t%.1f\t%.2f\t%.1f\t%d\t%.0f\n",
		r.Scenario, r.Runs, r.Failures, r.VirtualSeconds, r.WallSeconds,
		r.VirtualPerWall(), r.Events, r.EventsPerWall())
}
