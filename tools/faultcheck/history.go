// Package faultcheck drives concurrent clients against a running Aspen
// cluster through its Consul KV API, records what they saw, and checks the
// record: every key's history must be linearizable (checked with porcupine),
// every acknowledged write must survive, and every value must be seen with one
// modify index.
//
// It does not inject faults itself: a caller (a test, a script) kills and
// restarts nodes while Run drives the load.
package faultcheck

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"
)

// Kind is what an operation did.
type Kind uint8

const (
	// Get reads one key (a consistent read).
	Get Kind = iota + 1
	// Put writes a value no other operation writes.
	Put
	// CAS writes a new value only if the key still holds the version a get
	// just returned (?cas=ModifyIndex; 0 means "does not exist").
	CAS
)

func (k Kind) String() string {
	switch k {
	case Get:
		return "get"
	case Put:
		return "put"
	case CAS:
		return "cas"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// unknownReturn is the return time of an operation whose outcome is unknown:
// it may take effect at any point after its call, even after the history ends.
const unknownReturn = math.MaxInt64

// Op is one client operation as the client saw it.
type Op struct {
	// Process is porcupine's client id. A client takes a fresh one after an
	// unknown outcome, because the abandoned operation stays open forever.
	Process int
	Kind    Kind
	Key     string
	// Value is what a put or cas wrote, or what a get read ("" = absent).
	Value string
	// Expect is the value a cas required, read together with ExpectIndex.
	Expect      string
	ExpectIndex uint64
	// Index is the ModifyIndex a get read, or the X-Consul-Index an
	// acknowledged put or successful cas answered with (its own revision).
	Index uint64
	// OK is a write's answer: true, or false when a cas's compare failed.
	OK bool
	// Unknown marks a write that got no answer: it may or may not have
	// happened. Its Return is unknownReturn.
	Unknown bool
	// Final marks the reads made after the load stopped.
	Final bool
	// Call and Return are nanoseconds since the history started.
	Call, Return int64
	Addr         string
	Err          string // why the outcome is unknown
}

// Acked says whether the cluster acknowledged that this op wrote its value.
func (o Op) Acked() bool {
	return o.Kind != Get && !o.Unknown && o.OK
}

// MayHaveWritten says whether this op's value may be in the store.
func (o Op) MayHaveWritten() bool {
	return o.Acked() || (o.Unknown && o.Kind != Get)
}

func (o Op) String() string {
	ret := "?"
	if o.Return != unknownReturn {
		ret = fmt.Sprint(time.Duration(o.Return))
	}
	span := fmt.Sprintf("[%v, %s] p%d via %s", time.Duration(o.Call), ret, o.Process, o.Addr)
	switch {
	case o.Kind == Get:
		return fmt.Sprintf("get %s -> %q@%d %s", o.Key, o.Value, o.Index, span)
	case o.Unknown:
		return fmt.Sprintf("%s %s=%q (unknown: %s) %s", o.Kind, o.Key, o.Value, o.Err, span)
	case o.Kind == CAS:
		return fmt.Sprintf("cas %s %q@%d -> %q: %v %s", o.Key, o.Expect, o.ExpectIndex, o.Value, o.OK, span)
	}
	return fmt.Sprintf("put %s=%q @%d %s", o.Key, o.Value, o.Index, span)
}

// History is what Run recorded.
type History struct {
	Start time.Time // wall time of time 0
	Seed  uint64
	Keys  []string
	Ops   []Op
	// Unread lists keys whose final read never succeeded.
	Unread []string
}

// At converts a wall time into history time, for timelines of injected faults.
func (h *History) At(t time.Time) time.Duration { return t.Sub(h.Start) }

// WriteJSON saves h to path, for a closer look at a failed run.
func (h *History) WriteJSON(path string) error {
	b, err := json.MarshalIndent(h, "", " ")
	if err != nil {
		return fmt.Errorf("encode history: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	return nil
}
