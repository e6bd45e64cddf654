package worker

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what a pool did with the jobs it leased. A nil *Metrics
// counts nothing.
type Metrics struct {
	jobs *prometheus.CounterVec
	exec *prometheus.CounterVec
}

// NewMetrics registers the pool's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aspen_worker_jobs_total",
			Help: "Jobs this worker ran, by type and outcome: succeeded, failed, lease_lost."}, []string{"type", "outcome"}),
		exec: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aspen_worker_shell_executions_total",
			Help: "Shell commands by how they ended: exit_0, exit_nonzero, signal, timeout, refused, start_failed."}, []string{"status"}),
	}
	reg.MustRegister(m.jobs, m.exec)
	return m
}

func (m *Metrics) observe(typ, outcome string) {
	if m != nil {
		m.jobs.WithLabelValues(typ, outcome).Inc()
	}
}

func (m *Metrics) execution(status string) {
	if m != nil {
		m.exec.WithLabelValues(status).Inc()
	}
}
