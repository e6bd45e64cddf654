package sim

import (
	"fmt"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/node"
)

// watchShadow replays a node's change events (what the runtime streams to
// watchers) into a map, so the end of the run can check that the events told
// the whole truth: the shadow must equal the node's state, and revisions must
// never go backwards. A restart or snapshot install resets it from the state,
// as watchers must start over then.
type watchShadow struct {
	keys map[string]kv.Record
	rev  int64

	// A watcher that read the state at revision R and then watched from R+1
	// (etcd's get-then-watch, and the runtime's resume rule: events at or
	// after the revision asked for) must end up with the state: marks are
	// such reads, log the events since the oldest.
	marks []resumeMark
	log   []node.Event
}

// resumeMark is the state a watcher read, at the revision it read it.
type resumeMark struct {
	rev  int64
	keys map[string]kv.Record
}

// Bounds on the resume check's memory per node incarnation.
const (
	resumeMarksMax     = 4
	resumeLogEventsMax = 50_000
	resumeMarkProb     = 0.01 // per carried-out Ready, drawn from the checkers' stream
)

func (w *World) resetShadow(sn *simNode) {
	sh := &watchShadow{keys: dumpState(sn.n), rev: sn.n.Status().Revision}
	sn.shadow = sh
}

func dumpState(n *node.Node) map[string]kv.Record {
	keys := map[string]kv.Record{}
	n.Dump(func(key []byte, r kv.Record) bool {
		keys[string(key)] = r
		return true
	})
	return keys
}

// maybeMark takes, now and then, a watcher's read of the state to replay the
// events after it at the end.
func (w *World) maybeMark(sn *simNode) {
	sh := sn.shadow
	if len(sh.marks) >= resumeMarksMax || len(sh.log) >= resumeLogEventsMax || w.checkRng.Float64() >= resumeMarkProb {
		return
	}
	sh.marks = append(sh.marks, resumeMark{rev: sn.n.Status().Revision, keys: dumpState(sn.n)})
}

func (w *World) shadowEvents(sn *simNode) {
	rd := &sn.rd
	if rd.Reset {
		w.resetShadow(sn)
		return
	}
	for _, e := range rd.Events {
		if e.Revision < sn.shadow.rev {
			w.check.fail("node %d: watch event for %q at revision %d after revision %d", sn.id, e.Key, e.Revision, sn.shadow.rev)
		}
		if !e.Deleted && e.Revision != e.Record.ModRev {
			w.check.fail("node %d: watch event for %q at revision %d, but the write that made it is at revision %d", sn.id, e.Key, e.Revision, e.Record.ModRev)
		}
		if len(sn.shadow.marks) > 0 && len(sn.shadow.log) < resumeLogEventsMax {
			sn.shadow.log = append(sn.shadow.log, e)
		}
		sn.shadow.rev = e.Revision
		if e.Deleted {
			delete(sn.shadow.keys, string(e.Key))
		} else {
			sn.shadow.keys[string(e.Key)] = e.Record
		}
	}
}

// checkShadow compares a node's event-built shadow with its state, and so
// does every resumed watcher's.
func (w *World) checkShadow(sn *simNode) {
	if diff := diffState(sn.n, sn.shadow.keys); diff != "" {
		w.check.fail("node %d: watch events disagree with the state: %s", sn.id, diff)
	}
	if len(sn.shadow.log) >= resumeLogEventsMax {
		return // the log stopped growing; replaying it would prove nothing
	}
	for _, m := range sn.shadow.marks {
		keys := replay(m, sn.shadow.log)
		if diff := diffState(sn.n, keys); diff != "" {
			w.check.fail("node %d: a watcher that read at revision %d and watched from %d ends wrong: %s", sn.id, m.rev, m.rev+1, diff)
		}
	}
}

// replay applies to a mark's state the events a watcher resuming from its
// revision + 1 receives.
func replay(m resumeMark, log []node.Event) map[string]kv.Record {
	keys := make(map[string]kv.Record, len(m.keys))
	for k, r := range m.keys {
		keys[k] = r
	}
	for _, e := range log {
		switch {
		case e.Revision < m.rev+1:
		case e.Deleted:
			delete(keys, string(e.Key))
		default:
			keys[string(e.Key)] = e.Record
		}
	}
	return keys
}

// diffState describes the first difference between a node's state and keys.
func diffState(n *node.Node, keys map[string]kv.Record) string {
	seen := 0
	var diff string
	n.Dump(func(key []byte, r kv.Record) bool {
		seen++
		got, ok := keys[string(key)]
		if !ok || string(got.Value) != string(r.Value) || got.ModRev != r.ModRev || got.CreateRev != r.CreateRev || got.Version != r.Version {
			diff = fmt.Sprintf("key %q: events say %+v (present %v), state has %+v", key, got, ok, r)
			return false
		}
		return true
	})
	if diff == "" && seen != len(keys) {
		diff = fmt.Sprintf("events leave %d keys, state has %d", len(keys), seen)
	}
	return diff
}
