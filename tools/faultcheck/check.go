package faultcheck

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Report is the verdict on one history.
type Report struct {
	Seed   uint64
	Counts Counts
	// Illegal lists keys whose history is not linearizable; Undecided lists
	// keys porcupine could not decide within the check's timeout.
	Illegal   []string
	Undecided []string
	// Lost lists acknowledged writes the final reads contradict.
	Lost []string
	// IndexConflicts lists values seen with more than one ModifyIndex.
	IndexConflicts []string
	// Unread lists keys whose final read never got an answer.
	Unread []string

	history *History
}

// Counts sums up a history.
type Counts struct {
	Gets, Puts, CASHeld, CASFailed, Unknown, FinalReads int
}

// problemsShownMax bounds each list in a report; the rest are counted.
const problemsShownMax = 20

// Check judges h: linearizability per key (each key's check bounded by
// timeout), durability of acknowledged writes, and index agreement.
func Check(h *History, timeout time.Duration) *Report {
	r := &Report{Seed: h.Seed, Counts: count(h.Ops), Unread: h.Unread, history: h}
	r.Illegal, r.Undecided = checkLinearizable(h, timeout)
	r.Lost = checkDurable(h)
	r.IndexConflicts = checkIndexes(h.Ops)
	return r
}

func count(ops []Op) Counts {
	var c Counts
	for _, op := range ops {
		switch {
		case op.Final:
			c.FinalReads++
		case op.Unknown:
			c.Unknown++
		case op.Kind == Get:
			c.Gets++
		case op.Kind == Put:
			c.Puts++
		case op.OK:
			c.CASHeld++
		default:
			c.CASFailed++
		}
	}
	return c
}

// Err is nil when every check passed, else it lists what failed.
func (r *Report) Err() error {
	var errs []error
	add := func(what string, items []string) {
		if len(items) > 0 {
			errs = append(errs, fmt.Errorf("%s (%d):\n  %s", what, len(items), strings.Join(capList(items), "\n  ")))
		}
	}
	add("keys whose history is not linearizable", r.Illegal)
	add("keys whose linearizability check timed out (undecided)", r.Undecided)
	add("acknowledged writes lost", r.Lost)
	add("values seen at more than one index", r.IndexConflicts)
	add("keys never read back after the load", r.Unread)
	return errors.Join(errs...)
}

func capList(items []string) []string {
	if len(items) <= problemsShownMax {
		return items
	}
	return append(items[:problemsShownMax:problemsShownMax], fmt.Sprintf("... and %d more", len(items)-problemsShownMax))
}

// String is a one-line summary.
func (r *Report) String() string {
	c := r.Counts
	verdict := "ok"
	if r.Err() != nil {
		verdict = "FAILED"
	}
	return fmt.Sprintf("seed %d: %s: %d gets, %d puts, %d cas held, %d cas failed, %d unknown, %d final reads",
		r.Seed, verdict, c.Gets, c.Puts, c.CASHeld, c.CASFailed, c.Unknown, c.FinalReads)
}

// byKey groups ops per key, in h.Keys order.
func byKey(h *History) [][]Op {
	index := map[string]int{}
	for i, k := range h.Keys {
		index[k] = i
	}
	out := make([][]Op, len(h.Keys))
	for _, op := range h.Ops {
		i, ok := index[op.Key]
		if !ok {
			panic(fmt.Sprintf("faultcheck: op on key %q outside the key space", op.Key))
		}
		out[i] = append(out[i], op)
	}
	return out
}

// checkLinearizable runs porcupine on each key's history, a few keys at a
// time, so that the verdict names the keys that failed.
func checkLinearizable(h *History, timeout time.Duration) (illegal, undecided []string) {
	groups := byKey(h)
	results := make([]porcupine.CheckResult, len(groups))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, ops := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = porcupine.CheckOperationsTimeout(registerModel, toOperations(ops), timeout)
		}()
	}
	wg.Wait()
	for i, res := range results {
		switch res {
		case porcupine.Illegal:
			illegal = append(illegal, h.Keys[i])
		case porcupine.Unknown:
			undecided = append(undecided, h.Keys[i])
		}
	}
	return illegal, undecided
}

func toOperations(ops []Op) []porcupine.Operation {
	out := make([]porcupine.Operation, len(ops))
	for i, op := range ops {
		out[i] = toOperation(op)
	}
	return out
}

// WriteHTML writes porcupine's visualization of the keys that failed the
// linearizability check (of every key when none did) to path.
func (r *Report) WriteHTML(path string, timeout time.Duration) error {
	keys := r.Illegal
	if len(keys) == 0 {
		keys = r.history.Keys
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	var ops []porcupine.Operation
	for _, op := range r.history.Ops {
		if want[op.Key] {
			ops = append(ops, toOperation(op))
		}
	}
	_, info := porcupine.CheckOperationsVerbose(registerModel, ops, timeout)
	if err := porcupine.VisualizePath(registerModel, info, path); err != nil {
		return fmt.Errorf("write visualization %s: %w", path, err)
	}
	return nil
}
