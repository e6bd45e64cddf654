package hooks

import "github.com/aspen-db/aspen/core/jobs"

// Change is one thing an applied entry did to the hooks, as the module
// reports it to checkers (module.Reporter).
type Change struct {
	Hook      string
	State     *Hook     // a command's: the hook as the entry left it (nil: deleted)
	Queued    *Delivery // a delivery made: a match, a resync, a trigger
	Passed    *Delivery // a match let pass into a lagging hook's range
	Submitted *Delivery // a delivery handed to the queue, as job Job (0: the queue
	Job       jobs.ID   // could never take it, and it was counted failed)
}

// note records hook name as the entry left it.
func (m *Module) note(name string, _ *Delivery) {
	if !m.report {
		return
	}
	c := Change{Hook: name}
	if h := m.hooks[name]; h != nil {
		v := h.view()
		c.State = &v
	}
	m.changed = append(m.changed, c)
}

func (m *Module) noteDelivery(h *hook, d *Delivery) {
	if m.report {
		cp := *d
		m.changed = append(m.changed, Change{Hook: h.Name, Queued: &cp})
	}
}

func (m *Module) notePass(h *hook, d *Delivery) {
	if m.report {
		cp := *d
		cp.Key, cp.Value = clone(d.Key), nil
		m.changed = append(m.changed, Change{Hook: h.Name, Passed: &cp})
	}
}

func (m *Module) noteSubmit(h *hook, d *Delivery, id jobs.ID) {
	if m.report {
		cp := *d
		m.changed = append(m.changed, Change{Hook: h.Name, Submitted: &cp, Job: id})
	}
}

// Report switches the report of changes on (module.Reporter).
func (m *Module) Report(on bool) { m.report = on }

// TakeReport returns what the entry just applied did, as []Change, or nil
// (module.Reporter).
func (m *Module) TakeReport() any {
	if len(m.changed) == 0 {
		return nil
	}
	c := m.changed
	m.changed = nil
	return c
}
