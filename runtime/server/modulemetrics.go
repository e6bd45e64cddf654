package server

import (
	"sync/atomic"
	"time"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/sched"
	"github.com/prometheus/client_golang/prometheus"
)

// The job queue's and the schedules' metrics. The loop reads them from the
// replica after every round, with the status (readModules), and publishes
// the reading; a scrape only loads the latest one, so no HTTP goroutine
// touches a module. Gauges are replicated state as this replica applied it
// (jobs per state); counters are what this replica applied since its
// process started (jobs.Counters, sched.Counters), reset by a restart as
// Prometheus expects; the lag is read at the replica's query time
// (node.QueryNowNs: the leader's clock, a follower's replicated time).

// moduleReading is one reading of the modules, taken on the loop.
type moduleReading struct {
	jobs        jobs.Counts
	jobCounters jobs.Counters
	ticks       sched.Counters
	lagNs       int64
}

// readModules reads the job and schedule tables; only the loop may call it.
func readModules(n *node.Node) moduleReading {
	jt := n.Hosted("jobs").(*jobs.Module).Table()
	st := n.Hosted("schedules").(*sched.Module).Table()
	return moduleReading{jobs: jt.Counts(), jobCounters: jt.Counters(), ticks: st.Counters(), lagNs: st.LagNs(n.QueryNowNs())}
}

// moduleCollector serves the latest reading as Prometheus metrics.
type moduleCollector struct {
	reading                                atomic.Pointer[moduleReading]
	jobs, expiries, retries, deadLetters   *prometheus.Desc
	missedTicks, skippedTicks, scheduleLag *prometheus.Desc
}

func newModuleCollector() *moduleCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &moduleCollector{
		jobs:         d("aspen_jobs", "Jobs held in each state, as this node applied them.", "state"),
		expiries:     d("aspen_job_lease_expiries_total", "Job leases this node applied the expiry of since it started."),
		retries:      d("aspen_job_retries_total", "Leases of a job leased before (attempts after the first) this node applied since it started."),
		deadLetters:  d("aspen_job_dead_letters_total", "Jobs this node saw run out of attempts (become dead letters) since it started."),
		missedTicks:  d("aspen_schedule_missed_ticks_total", "Schedule ticks catch-up passed over, as this node applied them since it started."),
		skippedTicks: d("aspen_schedule_skipped_ticks_total", "Schedule ticks the overlap policy dropped or the job queue refused, as this node applied them since it started."),
		scheduleLag:  d("aspen_schedule_lag_seconds", "How long the oldest due tick of an unpaused schedule has waited unfired (0: none due)."),
	}
}

func (c *moduleCollector) observe(r moduleReading) { c.reading.Store(&r) }

func (c *moduleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.jobs, c.expiries, c.retries, c.deadLetters, c.missedTicks, c.skippedTicks, c.scheduleLag} {
		ch <- d
	}
}

func (c *moduleCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.reading.Load()
	if r == nil {
		return // the loop has not read the replica yet
	}
	j := r.jobs
	for _, s := range []struct {
		state string
		n     int
	}{{"pending", j.Pending}, {"leased", j.Leased}, {"succeeded", j.Succeeded}, {"failed", j.Failed}, {"dead", j.Dead}, {"cancelled", j.Cancelled}} {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(s.n), s.state)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.expiries, r.jobCounters.LeaseExpiries)
	counter(c.retries, r.jobCounters.Retries)
	counter(c.deadLetters, r.jobCounters.DeadLetters)
	counter(c.missedTicks, r.ticks.Missed)
	counter(c.skippedTicks, r.ticks.Skipped)
	ch <- prometheus.MustNewConstMetric(c.scheduleLag, prometheus.GaugeValue, time.Duration(r.lagNs).Seconds())
}
