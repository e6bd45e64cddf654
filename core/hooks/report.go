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
	if !m.Reporting() {
		return
	}
	c := Change{Hook: name}
	if h := m.hooks[name]; h != nil {
		v := h.view()
		c.State = &v
	}
	m.Note(c)
}

func (m *Module) noteDelivery(h *hook, d *Delivery) {
	if m.Reporting() {
		cp := *d
		m.Note(Change{Hook: h.Name, Queued: &cp})
	}
}

func (m *Module) notePass(h *hook, d *Delivery) {
	if m.Reporting() {
		cp := *d
		cp.Key, cp.Value = clone(d.Key), nil
		m.Note(Change{Hook: h.Name, Passed: &cp})
	}
}

func (m *Module) noteSubmit(h *hook, d *Delivery, id jobs.ID) {
	if m.Reporting() {
		cp := *d
		m.Note(Change{Hook: h.Name, Submitted: &cp, Job: id})
	}
}
