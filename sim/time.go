package sim

// checkTime holds replicated time (the leader's stamps on the log, which
// every replica applies alike: it is in the state hash) to what the clocks
// allow: on one node it never goes back, and it is never ahead of every
// node's clock, skewed and drifting as they are. Across a crash a node may
// come back at an earlier time, having lost applied entries it will apply
// again, so the first rule holds within an incarnation.
func (w *World) checkTime(sn *simNode) {
	t := sn.n.TimeNs()
	if t < sn.timeNs {
		w.check.fail("node %d: replicated time went back from %d to %d", sn.id, sn.timeNs, t)
	}
	sn.timeNs = t
	if ahead := w.clockMax(); t > ahead {
		w.check.fail("node %d: replicated time %d is ahead of every clock (the furthest reads %d)", sn.id, t, ahead)
	}
}

// clockMax is the furthest any node's clock reads now.
func (w *World) clockMax() int64 {
	var most int64
	for _, sn := range w.nodes {
		most = max(most, w.localNow(sn))
	}
	return most
}
