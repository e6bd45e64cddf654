package server

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aspen-db/aspen/core/groups"
	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/sched"
	"github.com/aspen-db/aspen/core/topics"
	"github.com/prometheus/client_golang/prometheus"
)

// The job queue's, the schedules', the hooks' and the consumer groups'
// metrics. The loop reads them from the replica (at most every
// moduleReadEvery, with the status: readModules) and publishes the
// reading; a scrape only loads the latest one, so no HTTP goroutine
// touches a module. Gauges are replicated state as this replica applied it
// (jobs per state); counters are what this replica applied since its
// process started (jobs.Counters, sched.Counters), reset by a restart as
// Prometheus expects; the lag is read at the replica's query time
// (node.QueryNowNs: the leader's clock, a follower's replicated time).
//
// A hook's counts (matched, delivered, failed, retried, dead) are its
// replicated Stats, the same on every replica at one index; they are
// exported as counters, since they only grow while the hook exists (a hook
// deleted and created again starts from 0, which Prometheus reads as a
// reset). Backlog, in flight, lagging and lag are gauges.
//
// A topic's published count is replicated too (topics.Info.Published), so
// the publish rate (rate() of it) reads the same from every node and a
// node's restart does not reset it; a topic deleted and created again
// starts from 0. Each partition's end offset is a gauge.

// moduleReading is one reading of the modules, taken on the loop.
type moduleReading struct {
	jobs        jobs.Counts
	jobCounters jobs.Counters
	ticks       sched.Counters
	lagNs       int64
	hooks       []hookReading
	topics      []topics.Info
	groups      []groups.Reading // aliases nothing of the module (groups.Readings)
}

// hookReading is one hook's numbers; nothing in it aliases the module.
type hookReading struct {
	name              string
	stats             hooks.Stats
	backlog, inFlight int
	lagging           bool
	lagRevs, lagNs    int64
}

// readModules reads the job, schedule and hook tables at KV revision
// revision (the status's); only the loop may call it.
func readModules(n *node.Node, revision int64) moduleReading {
	jt := n.Hosted("jobs").(*jobs.Module).Table()
	st := n.Hosted("schedules").(*sched.Module).Table()
	nowNs := n.QueryNowNs()
	return moduleReading{jobs: jt.Counts(), jobCounters: jt.Counters(), ticks: st.Counters(), lagNs: st.LagNs(nowNs),
		hooks: readHooks(n.Hosted("hooks").(*hooks.Module), revision, nowNs), topics: n.Hosted("topics").(*topics.Module).Infos(),
		groups: n.Hosted("groups").(*groups.Module).Readings()}
}

// readHooks reads every hook's numbers; only the loop may call it.
func readHooks(m *hooks.Module, revision, nowNs int64) []hookReading {
	views := m.Hooks()
	out := make([]hookReading, 0, len(views))
	for i := range views {
		h := &views[i]
		r := hookReading{name: h.Name, stats: h.Stats, backlog: h.Backlog, inFlight: h.InFlight, lagging: h.Lagging}
		if h.OldestRev != 0 {
			r.lagRevs, r.lagNs = max(0, revision-h.OldestRev), max(0, nowNs-h.OldestNs)
		}
		out = append(out, r)
	}
	return out
}

// moduleCollector serves the latest reading as Prometheus metrics.
type moduleCollector struct {
	reading                                atomic.Pointer[moduleReading]
	jobs, expiries, retries, deadLetters   *prometheus.Desc
	missedTicks, skippedTicks, scheduleLag *prometheus.Desc
	hookMatched, hookDelivered, hookFailed *prometheus.Desc
	hookRetried, hookDead, hookBacklog     *prometheus.Desc
	hookInFlight, hookLagging              *prometheus.Desc
	hookLagRevisions, hookLagSeconds       *prometheus.Desc
	topicPublished, topicEnd               *prometheus.Desc
	groupOffset, groupLag, groupMembers    *prometheus.Desc
	groupGeneration, groupRebalances       *prometheus.Desc
	groupRedeliveries, groupDeadLettered   *prometheus.Desc
	groupDeadLetters, groupPending         *prometheus.Desc
	groupExpired, groupExpiries            *prometheus.Desc
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

		hookMatched:      d("aspen_hook_matched_total", "Committed changes that matched the hook (replicated).", "hook"),
		hookDelivered:    d("aspen_hook_delivered_total", "The hook's deliveries whose job succeeded (replicated).", "hook"),
		hookFailed:       d("aspen_hook_failed_total", "The hook's deliveries whose job failed for good (replicated).", "hook"),
		hookRetried:      d("aspen_hook_retried_total", "Attempts after the first over the hook's finished deliveries (replicated).", "hook"),
		hookDead:         d("aspen_hook_dead_total", "The hook's deliveries whose job ran out of attempts (replicated).", "hook"),
		hookBacklog:      d("aspen_hook_backlog", "The hook's deliveries waiting to be handed to the job queue.", "hook"),
		hookInFlight:     d("aspen_hook_in_flight", "The hook's deliveries in the job queue, not yet seen finished.", "hook"),
		hookLagging:      d("aspen_hook_lagging", "1 while the hook's backlog overflowed and changes wait for one resync delivery.", "hook"),
		hookLagRevisions: d("aspen_hook_lag_revisions", "The KV revision minus that of the hook's oldest unfinished delivery (0: none).", "hook"),
		hookLagSeconds:   d("aspen_hook_lag_seconds", "How long ago the change of the hook's oldest unfinished delivery was applied (0: none).", "hook"),

		topicPublished:    d("aspen_topic_published_total", "Messages ever published to the topic (replicated).", "topic"),
		topicEnd:          d("aspen_topic_partition_end_offset", "The offset the partition's next message will get: messages ever published to it.", "topic", "partition"),
		groupOffset:       d("aspen_group_committed_offset", "The group's committed offset of the partition (competing: the first offset not settled).", "group", "partition"),
		groupLag:          d("aspen_group_lag", "Messages of the partition past the group's committed offset: its end minus the later of that and its first.", "group", "partition"),
		groupMembers:      d("aspen_group_members", "Members of the group (competing: members holding leases).", "group"),
		groupGeneration:   d("aspen_group_generation", "The group's generation: it bumps on every change of assignment (replicated).", "group"),
		groupRebalances:   d("aspen_group_rebalances_total", "Changes of the group's target assignment (replicated).", "group"),
		groupRedeliveries: d("aspen_group_redeliveries_total", "Deliveries of a message after its first (replicated).", "group"),
		groupDeadLettered: d("aspen_group_dead_lettered_total", "Messages that went to the group's dead-letter list (replicated).", "group"),
		groupDeadLetters:  d("aspen_group_dead_letters", "Messages on the group's dead-letter list now.", "group"),
		groupPending:      d("aspen_group_pending", "Competing: messages leased or waiting to go out again.", "group"),
		groupExpired:      d("aspen_group_expired_members_total", "Members whose session ended (replicated).", "group"),
		groupExpiries:     d("aspen_group_lease_expiries_total", "Leases that ran out before an ack (replicated).", "group"),
	}
}

func (c *moduleCollector) observe(r moduleReading) { c.reading.Store(&r) }

func (c *moduleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.jobs, c.expiries, c.retries, c.deadLetters, c.missedTicks, c.skippedTicks, c.scheduleLag,
		c.hookMatched, c.hookDelivered, c.hookFailed, c.hookRetried, c.hookDead, c.hookBacklog, c.hookInFlight, c.hookLagging,
		c.hookLagRevisions, c.hookLagSeconds, c.topicPublished, c.topicEnd,
		c.groupOffset, c.groupLag, c.groupMembers, c.groupGeneration, c.groupRebalances,
		c.groupRedeliveries, c.groupDeadLettered, c.groupDeadLetters, c.groupPending, c.groupExpired, c.groupExpiries} {
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
	for _, h := range r.hooks {
		c.collectHook(ch, &h)
	}
	for i := range r.topics {
		t := &r.topics[i]
		ch <- prometheus.MustNewConstMetric(c.topicPublished, prometheus.CounterValue, float64(t.Published), t.Name)
		for p, b := range t.Partitions {
			ch <- prometheus.MustNewConstMetric(c.topicEnd, prometheus.GaugeValue, float64(b.End), t.Name, strconv.Itoa(p))
		}
	}
	for i := range r.groups {
		c.collectGroup(ch, &r.groups[i])
	}
}

// collectGroup exports one group's numbers. Counts that only grow while the
// group exists are counters (a group deleted and created again starts from
// 0, which Prometheus reads as a reset).
func (c *moduleCollector) collectGroup(ch chan<- prometheus.Metric, g *groups.Reading) {
	for _, m := range []struct {
		d *prometheus.Desc
		t prometheus.ValueType
		v float64
	}{
		{c.groupMembers, prometheus.GaugeValue, float64(g.Members)},
		{c.groupGeneration, prometheus.GaugeValue, float64(g.Generation)},
		{c.groupRebalances, prometheus.CounterValue, float64(g.Stats.Rebalances)},
		{c.groupRedeliveries, prometheus.CounterValue, float64(g.Stats.Redeliveries)},
		{c.groupDeadLettered, prometheus.CounterValue, float64(g.Stats.DeadLettered)},
		{c.groupDeadLetters, prometheus.GaugeValue, float64(g.DeadLetters)},
		{c.groupPending, prometheus.GaugeValue, float64(g.Pending)},
		{c.groupExpired, prometheus.CounterValue, float64(g.Stats.Expired)},
		{c.groupExpiries, prometheus.CounterValue, float64(g.Stats.Expiries)},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, m.t, m.v, g.Name)
	}
	for _, p := range g.Partitions {
		part := strconv.Itoa(p.P)
		ch <- prometheus.MustNewConstMetric(c.groupOffset, prometheus.GaugeValue, float64(p.Offset), g.Name, part)
		ch <- prometheus.MustNewConstMetric(c.groupLag, prometheus.GaugeValue, float64(p.Lag), g.Name, part)
	}
}

func (c *moduleCollector) collectHook(ch chan<- prometheus.Metric, h *hookReading) {
	for _, m := range []struct {
		d *prometheus.Desc
		t prometheus.ValueType
		v float64
	}{
		{c.hookMatched, prometheus.CounterValue, float64(h.stats.Matched)},
		{c.hookDelivered, prometheus.CounterValue, float64(h.stats.Delivered)},
		{c.hookFailed, prometheus.CounterValue, float64(h.stats.Failed)},
		{c.hookRetried, prometheus.CounterValue, float64(h.stats.Retried)},
		{c.hookDead, prometheus.CounterValue, float64(h.stats.Dead)},
		{c.hookBacklog, prometheus.GaugeValue, float64(h.backlog)},
		{c.hookInFlight, prometheus.GaugeValue, float64(h.inFlight)},
		{c.hookLagging, prometheus.GaugeValue, map[bool]float64{false: 0, true: 1}[h.lagging]},
		{c.hookLagRevisions, prometheus.GaugeValue, float64(h.lagRevs)},
		{c.hookLagSeconds, prometheus.GaugeValue, time.Duration(h.lagNs).Seconds()},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, m.t, m.v, h.name)
	}
}
