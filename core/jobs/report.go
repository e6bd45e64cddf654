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
	if !m.report {
		return
	}
	if j := m.t.jobs[id]; j != nil {
		m.changed = append(m.changed, Change{Job: m.t.view(j, false)})
		return
	}
	m.changed = append(m.changed, Change{Job: Job{ID: id}, Gone: true})
}

// Report switches the report of changed jobs on (module.Reporter).
func (m *Module) Report(on bool) { m.report = on }

// TakeReport returns the jobs the command just applied changed, as
// []Change in the order it changed them, or nil (module.Reporter).
func (m *Module) TakeReport() any {
	if len(m.changed) == 0 {
		return nil
	}
	c := m.changed
	m.changed = nil
	return c
}
