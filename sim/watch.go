package sim

import (
	"fmt"

	"github.com/aspen-db/aspen/core/kv"
)

// watchShadow replays a node's change events (what the runtime streams to
// watchers) into a map, so the end of the run can check that the events told
// the whole truth: the shadow must equal the node's state, and revisions must
// never go backwards. A restart or snapshot install resets it from the state,
// as watchers must start over then.
type watchShadow struct {
	keys map[string]kv.Record
	rev  int64
}

func (w *World) resetShadow(sn *simNode) {
	sh := &watchShadow{keys: map[string]kv.Record{}}
	sn.n.Dump(func(key []byte, r kv.Record) bool {
		sh.keys[string(key)] = r
		return true
	})
	sh.rev = sn.n.Status().Revision
	sn.shadow = sh
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
		sn.shadow.rev = e.Revision
		if e.Deleted {
			delete(sn.shadow.keys, string(e.Key))
		} else {
			sn.shadow.keys[string(e.Key)] = e.Record
		}
	}
}

// checkShadow compares a node's event-built shadow with its state.
func (w *World) checkShadow(sn *simNode) {
	seen := 0
	var diff string
	sn.n.Dump(func(key []byte, r kv.Record) bool {
		seen++
		got, ok := sn.shadow.keys[string(key)]
		if !ok || string(got.Value) != string(r.Value) || got.ModRev != r.ModRev || got.CreateRev != r.CreateRev || got.Version != r.Version {
			diff = fmt.Sprintf("key %q: events say %+v (present %v), state has %+v", key, got, ok, r)
			return false
		}
		return true
	})
	if diff == "" && seen != len(sn.shadow.keys) {
		diff = fmt.Sprintf("events leave %d keys, state has %d", len(sn.shadow.keys), seen)
	}
	if diff != "" {
		w.check.fail("node %d: watch events disagree with the state: %s", sn.id, diff)
	}
}
