package sched

// Change is one schedule as an applied command left it, as the module
// reports it to checkers (module.Reporter): the schedule, the history
// entries the command added (all of them, even past HistoryMax), and Gone
// when the command removed it.
type Change struct {
	Schedule Schedule
	Fires    []Fire
	Gone     bool
}

// note records schedule name as it stands now, with the fires recorded
// since the last note, for the report on this entry.
func (m *Module) note(name string) {
	c := Change{Fires: m.t.fires}
	m.t.fires = nil
	if !m.report {
		return
	}
	if e := m.t.all[name]; e != nil {
		c.Schedule = e.Schedule
	} else {
		c.Schedule.Name, c.Gone = name, true
	}
	m.changed = append(m.changed, c)
}

// Report switches the report of changed schedules on (module.Reporter).
func (m *Module) Report(on bool) { m.report = on }

// TakeReport returns the schedules the command just applied changed, as
// []Change in the order it changed them, or nil (module.Reporter).
func (m *Module) TakeReport() any {
	m.t.fires = nil
	if len(m.changed) == 0 {
		return nil
	}
	c := m.changed
	m.changed = nil
	return c
}
