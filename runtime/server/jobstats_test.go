package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// jobStats reads /v1/aspen/job/stats from node i.
func (c *cluster) jobStats(i int) JobStats {
	c.t.Helper()
	var st JobStats
	code, _, body := do(c.t, "GET", c.url(i, "/v1/aspen/job/stats"), "")
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		c.t.Fatalf("job stats from node %d: got %d %s", i+1, code, body)
	}
	return st
}

// metric reads one sample (name with its labels, as exposed) from node i's
// /metrics, and whether it is there.
func (c *cluster) metric(i int, sample string) (float64, bool) {
	c.t.Helper()
	code, _, body := do(c.t, "GET", c.url(i, "/metrics"), "")
	if code != http.StatusOK {
		c.t.Fatalf("/metrics of node %d: got %d", i+1, code)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				c.t.Fatalf("/metrics of node %d: %q: %v", i+1, line, err)
			}
			return f, true
		}
	}
	return 0, false
}

// A job's life shows in /v1/aspen/job/stats and in every node's /metrics:
// one job of each kind of ending, one waiting, one held, and one leased
// again after its lease ran out.
func TestJobStatsAndMetrics(t *testing.T) {
	c := startCluster(t, 3)
	done := c.jobOK(0, "submit", `{"Type": "echo"}`)
	l := c.jobLease(1, "w", "echo", 1)[0]
	c.jobOK(2, "complete", fmt.Sprintf(`{"ID": %d, "Token": %d}`, done.ID, l.Token))
	c.jobOK(0, "cancel", fmt.Sprintf(`{"ID": %d}`, c.jobOK(0, "submit", `{"Type": "echo"}`).ID))
	once := c.jobOK(0, "submit", `{"Type": "once", "MaxAttempts": 1}`)
	l = c.jobLease(0, "w", "once", 1)[0]
	c.jobOK(0, "fail", fmt.Sprintf(`{"ID": %d, "Token": %d, "Retryable": true}`, once.ID, l.Token)) // a dead letter
	c.jobOK(1, "submit", `{"Type": "echo"}`)                                                        // stays pending
	slow := c.jobOK(0, "submit", `{"Type": "slow", "MaxAttempts": 3, "TimeoutMs": 1000}`)
	c.jobLease(0, "w", "slow", 1) // never heartbeaten: expires after 1 s
	eventually(t, "the slow job's lease to expire", func() bool {
		return c.jobOK(2, "get", fmt.Sprintf(`{"ID": %d}`, slow.ID)).State == "pending"
	})
	again := c.jobLease(2, "w2", "slow", 1)
	if len(again) != 1 || again[0].Attempts != 2 {
		t.Fatalf("lease after the expiry: got %+v, want job %d on its second attempt", again, slow.ID)
	}
	c.jobOK(2, "complete", fmt.Sprintf(`{"ID": %d, "Token": %d}`, slow.ID, again[0].Token))
	c.jobOK(1, "submit", `{"Type": "long", "TimeoutMs": 600000}`)
	c.jobLease(1, "w", "long", 1) // held for the rest of the test

	wantCounts := JobCounts{Pending: 1, Leased: 1, Succeeded: 2, Dead: 1, Cancelled: 1}
	wantCounters := JobCounters{LeaseExpiries: 1, Retries: 1, DeadLetters: 1}
	for i := range 3 {
		// The stats query reads after a ReadIndex; /metrics follows within
		// the loop's module read interval (moduleReadEvery).
		st := c.jobStats(i)
		if st.Counts != wantCounts || st.Counters != wantCounters || st.Node != uint64(i+1) {
			t.Errorf("job stats from node %d: got %+v, want counts %+v, counters %+v", i+1, st, wantCounts, wantCounters)
		}
		wantMetrics := map[string]float64{
			`aspen_jobs{state="pending"}`: 1, `aspen_jobs{state="leased"}`: 1, `aspen_jobs{state="succeeded"}`: 2,
			`aspen_jobs{state="failed"}`: 0, `aspen_jobs{state="dead"}`: 1, `aspen_jobs{state="cancelled"}`: 1,
			"aspen_job_lease_expiries_total": 1, "aspen_job_retries_total": 1, "aspen_job_dead_letters_total": 1,
			"aspen_schedule_missed_ticks_total": 0, "aspen_schedule_skipped_ticks_total": 0, "aspen_schedule_lag_seconds": 0,
		}
		eventually(t, fmt.Sprintf("/metrics of node %d to show the job counts", i+1), func() bool {
			for sample, want := range wantMetrics {
				if got, ok := c.metric(i, sample); !ok || got != want {
					return false
				}
			}
			return true
		})
	}
	if code, _, body := do(t, "POST", c.url(0, "/v1/aspen/job/stats"), `{"State": "dead"}`); code != http.StatusBadRequest {
		t.Errorf("stats with a field it does not take: got %d %s, want 400", code, body)
	}

	// A schedule whose job nobody leases skips every tick after its first.
	code, _, body := do(t, "POST", c.url(0, "/v1/aspen/schedule/add"), `{"Name": "tick", "Every": "1s", "Type": "nobody", "Overlap": "skip"}`)
	if code != http.StatusOK {
		t.Fatalf("schedule add: got %d %s", code, body)
	}
	eventually(t, "node 2 to count a skipped tick", func() bool {
		v, _ := c.metric(1, "aspen_schedule_skipped_ticks_total")
		return v >= 1
	})
}
