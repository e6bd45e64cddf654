package server

import (
	"go.etcd.io/raft/v3"
	"net/http"
	"time"

	"github.com/aspen-db/aspen/core/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics live in a registry of their own, so several nodes can share a
// process (aspen dev, tests).
type metrics struct {
	reg            *prometheus.Registry
	term           prometheus.Gauge
	commit         prometheus.Gauge
	applied        prometheus.Gauge
	revision       prometheus.Gauge
	leader         prometheus.Gauge
	proposals      prometheus.Counter
	droppedInbound prometheus.Counter
	fsync          prometheus.Histogram
	write          prometheus.Histogram // a Ready's batch into the write-ahead log, before its sync
	settle         prometheus.Histogram // synced batches' state into Badger, by the store's state writer
	ready          prometheus.Histogram // the core's step: node.Ready
	requests       *prometheus.HistogramVec
	modules        *moduleCollector // jobs and schedules (modulemetrics.go)
}

func newMetrics() *metrics {
	m := &metrics{
		reg:            prometheus.NewRegistry(),
		term:           prometheus.NewGauge(prometheus.GaugeOpts{Name: "aspen_raft_term", Help: "Current raft term."}),
		commit:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "aspen_raft_commit_index", Help: "Highest log index known committed."}),
		applied:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "aspen_raft_applied_index", Help: "Highest log index applied to the state machine."}),
		revision:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "aspen_kv_revision", Help: "Current KV revision."}),
		leader:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "aspen_raft_is_leader", Help: "1 when this node leads."}),
		proposals:      prometheus.NewCounter(prometheus.CounterOpts{Name: "aspen_proposals_total", Help: "Client writes proposed through this node."}),
		droppedInbound: prometheus.NewCounter(prometheus.CounterOpts{Name: "aspen_peer_messages_dropped_total", Help: "Peer messages dropped because the node loop was behind."}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "aspen_fsync_seconds", Help: "Latency of disk syncs.",
			Buckets: prometheus.ExponentialBuckets(latencyBucketSecondsMin, 2, fsyncBuckets)}),
		write: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "aspen_batch_write_seconds", Help: "Time to write one Ready's batch to the write-ahead log, before its sync.",
			Buckets: prometheus.ExponentialBuckets(stepBucketSecondsMin, 2, stepBuckets)}),
		settle: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "aspen_state_write_seconds", Help: "Time to write synced batches' state into Badger, on the store's own goroutine.",
			Buckets: prometheus.ExponentialBuckets(stepBucketSecondsMin, 2, stepBuckets)}),
		ready: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "aspen_ready_seconds", Help: "Time the replica's step takes to make one Ready: proposing, applying what committed, answering.",
			Buckets: prometheus.ExponentialBuckets(stepBucketSecondsMin, 2, stepBuckets)}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "aspen_http_request_seconds", Help: "HTTP request latency by route and status code.",
			Buckets: prometheus.ExponentialBuckets(latencyBucketSecondsMin, 2, requestBuckets)}, []string{"route", "code"}),
		modules: newModuleCollector(),
	}
	m.reg.MustRegister(m.term, m.commit, m.applied, m.revision, m.leader, m.proposals, m.droppedInbound, m.fsync, m.write, m.settle, m.ready, m.requests, m.modules,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeStatus(st node.Status) {
	m.term.Set(float64(st.Term))
	m.commit.Set(float64(st.Commit))
	m.applied.Set(float64(st.Applied))
	m.revision.Set(float64(st.Revision))
	if st.Role == raft.StateLeader {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// instrument times every request of a route.
func (m *metrics) instrument(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h(rec, r)
		m.requests.WithLabelValues(route, http.StatusText(rec.code)).Observe(time.Since(t0).Seconds())
	}
}
