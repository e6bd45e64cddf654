package jobs

// Change is one job as an applied command left it, as the module reports it
// to checkers (module.Reporter): the job without payload or output, or Gone
// when the command deleted it (a drop, a prune).
type Change struct {
	Job  Job
	Gone bool
}

// note records job id as it stands now, for the report on this entry.
func (m *Module) note(id ID) {
	if !m.Reporting() {
		return
	}
	if j := m.t.jobs[id]; j != nil {
		m.Note(Change{Job: m.t.view(j, false)})
		return
	}
	m.Note(Change{Job: Job{ID: id}, Gone: true})
}
