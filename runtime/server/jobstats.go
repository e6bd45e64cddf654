package server

import (
	"errors"
	"net/http"

	"github.com/aspen-db/aspen/core/jobs"
)

// GET or POST /v1/aspen/job/stats (no body, or {}): how many jobs are in
// each state, served after a ReadIndex like list, and the counters of the
// node that answered. The counts are replicated state: every node answers
// the same at one index. The counters count what that node applied since
// it started (jobs.Counters): another node, or the same one after a
// restart, answers other numbers; Node says whose they are.

// JobStats answers /v1/aspen/job/stats.
type JobStats struct {
	Counts   JobCounts
	Counters JobCounters
	Node     uint64 // the node whose counters these are
}

// JobCounts is the number of jobs in each state.
type JobCounts struct {
	Pending, Leased, Succeeded, Failed, Dead, Cancelled int
}

// JobCounters count what one node applied since it started.
type JobCounters struct {
	LeaseExpiries uint64 // leases that ran out before the worker finished
	Retries       uint64 // attempts after a job's first
	DeadLetters   uint64 // jobs that ran out of attempts
}

func (s *Server) jobStatsRoute(route func(pattern, name string, h http.HandlerFunc)) {
	route("/v1/aspen/job/stats", "aspen_job_stats", s.handleJobStats)
}

func (s *Server) handleJobStats(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, true) {
		return
	}
	if err := decodeStrict(r.Body, jobBodyBytesMax, &struct{}{}); err != nil && !errors.Is(err, errEmptyBody) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	answerCall(s, w, r, "job stats", false, jobs.StatsQuery(), func(st jobs.Stats) any {
		c := st.Counts
		return JobStats{
			Counts:   JobCounts{Pending: c.Pending, Leased: c.Leased, Succeeded: c.Succeeded, Failed: c.Failed, Dead: c.Dead, Cancelled: c.Cancelled},
			Counters: JobCounters{LeaseExpiries: st.LeaseExpiries, Retries: st.Retries, DeadLetters: st.DeadLetters},
			Node:     s.cfg.ID,
		}
	})
}
