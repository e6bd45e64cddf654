package groups

// Change is one thing an applied entry did to a group, as the module
// reports it to checkers (module.Reporter). Exactly one of the pointer
// fields is set, or Deleted.
type Change struct {
	Group   string
	Deleted bool
	// Owners: the owner of every partition after a membership or
	// ownership change, with the generation it happened at; Member names
	// the member whose join, heartbeat (releasing) or leave it was ("" for
	// a create or an expiry).
	Owners     []string
	Generation uint64
	// Offset: a commit (Member set) or a reset (Reset set) of partition P.
	Offset    *uint64
	P         int
	Member    string
	Reset     bool
	Delivered *Delivery   // a message leased (without its value)
	Settled   *Handle     // a lease acked
	Dead      *DeadLetter // a message that went to the dead letters
}

func (m *Module) noteGroup(g *group) { m.noteMembers(g, "") }

// noteMembers records the owners after a change of membership or
// ownership that member's command made ("" for none).
func (m *Module) noteMembers(g *group, member string) {
	if m.report {
		m.changed = append(m.changed, Change{Group: g.Name, Owners: append([]string(nil), g.owner...), Generation: g.gen, Member: member})
	}
}

func (m *Module) noteOffset(g *group, p int, member string, gen uint64, reset bool) {
	if m.report {
		off := g.offsets[p]
		m.changed = append(m.changed, Change{Group: g.Name, Offset: &off, P: p, Member: member, Generation: gen, Reset: reset})
	}
}

func (m *Module) noteDelivery(g *group, d *Delivery) {
	if m.report {
		cp := *d
		cp.Message.Value, cp.Message.Key, cp.Message.Headers = nil, nil, nil
		m.changed = append(m.changed, Change{Group: g.Name, Delivered: &cp, Member: d.Member})
	}
}

func (m *Module) noteSettled(g *group, e *entry, _ string) {
	if m.report {
		m.changed = append(m.changed, Change{Group: g.Name, Settled: &Handle{P: e.P, Off: e.Off, Delivery: e.Delivery}, Member: e.Member})
	}
}

func (m *Module) noteDead(g *group, d *DeadLetter) {
	if m.report {
		cp := *d
		m.changed = append(m.changed, Change{Group: g.Name, Dead: &cp})
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
