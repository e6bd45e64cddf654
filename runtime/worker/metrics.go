package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count what a pool did with the jobs it leased. A nil *Metrics
// counts nothing.
type Metrics struct {
	jobs    *prometheus.CounterVec
	seconds *prometheus.HistogramVec
	exec    *prometheus.CounterVec
	hook    *prometheus.CounterVec
}

// jobSecondsBuckets span a local hook receiver's milliseconds to a long
// command's minutes.
var jobSecondsBuckets = prometheus.ExponentialBuckets(0.001, 4, 11) // 1 ms to about 17 min

// NewMetrics registers the pool's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aspen_worker_jobs_total",
			Help: "Jobs this worker ran, by type and outcome: succeeded, failed, lease_lost."}, []string{"type", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "aspen_worker_job_seconds",
			Help: "How long a job's handler ran, by type: for hook deliveries, the handler latency.", Buckets: jobSecondsBuckets}, []string{"type"}),
		exec: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aspen_worker_shell_executions_total",
			Help: "Shell commands by how they ended: exit_0, exit_nonzero, signal, timeout, refused, start_failed."}, []string{"status"}),
		hook: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aspen_worker_hook_http_answers_total",
			Help: "HTTP hook delivery attempts by the receiver's answer: 2xx, 3xx, 4xx, 5xx, network (none), refused (not sent)."}, []string{"class"}),
	}
	reg.MustRegister(m.jobs, m.seconds, m.exec, m.hook)
	return m
}

func (m *Metrics) observe(typ, outcome string) {
	if m != nil {
		m.jobs.WithLabelValues(typ, outcome).Inc()
	}
}

func (m *Metrics) ran(typ string, took time.Duration) {
	if m != nil {
		m.seconds.WithLabelValues(typ).Observe(took.Seconds())
	}
}

func (m *Metrics) execution(status string) {
	if m != nil {
		m.exec.WithLabelValues(status).Inc()
	}
}

func (m *Metrics) hookAnswer(class string) {
	if m != nil {
		m.hook.WithLabelValues(class).Inc()
	}
}
