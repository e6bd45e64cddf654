// Package module is the seam between the replica host (core/node: raft, the
// log, sessions, replicated time, snapshots) and the replicated state
// machines it hosts: the KV store, membership, leases, and whatever comes
// next. A module owns a range of command kinds, its records under its own key
// prefix, its part of the state hash and its own snapshot section; the host
// owns everything else. Adding a module is a package that implements Module
// plus one line in the host's registry (core/node/modules.go).
//
// Everything a module does happens inside apply, so it must be a pure
// function of the commands applied so far: no clock but Env.NowNs, no
// randomness, no map order reaching any output.
package module

import (
	"errors"
	"fmt"

	"github.com/aspen-db/aspen/core/storage"
)

// Env is what the host hands a module applying one committed command.
type Env struct {
	Index uint64         // the log index being applied
	NowNs int64          // replicated time: the leader's stamp, never a replica's clock
	Batch *storage.Batch // the module's record changes go here, durable with the index
}

// Answer is a module's reply to one command. Data is its encoding, which the
// host saves with the client's session so a retry gets the same reply; Value,
// when set, is the same reply decoded, for a caller on this replica. Data
// must not start with byte 0xFE: the host marks a saved refusal with it.
type Answer struct {
	Outcome Outcome
	Detail  string
	Data    []byte
	Value   any
}

// Refuse is the answer to a command the state turned down: nothing changed.
func Refuse(o Outcome, err error) Answer { return Answer{Outcome: o, Detail: err.Error()} }

// State is replicated state the host keeps on disk and in snapshots. The
// client sessions are state without commands of their own; every Module is
// a State.
type State interface {
	// Name tags the state's snapshot section.
	Name() string
	// Version is the encoding version of the snapshot section it writes.
	Version() uint64
	// Prefixes lists the key prefixes of its records on disk.
	Prefixes() [][]byte
	// Hash digests the state; equal states hash equally.
	Hash() uint64
	// Load rebuilds the state from its records on disk.
	Load(disk storage.Reader) error
	// Persist writes every record of the state (after a restore).
	Persist(b *storage.Batch)
	// Clear deletes every record of the state (before a snapshot replaces it).
	Clear(b *storage.Batch)
	// Freeze returns the state as of now, unaffected by later commands, to be
	// encoded when raft sends a snapshot.
	Freeze() Frozen
	// Restore replaces the state with a snapshot section's; nil is the
	// section of a snapshot written before the state existed, which the state
	// refuses if it cannot have been absent.
	Restore(section []byte) error
}

// Module is a replicated state machine: state plus the commands that change it.
type Module interface {
	State
	// Kinds lists the command kinds it applies (1..127; the host keeps the
	// top bit for the time stamp).
	Kinds() []byte
	// Apply applies one committed command. Only commands of its kinds reach
	// it, and only bodies the proposer checked (Validator), so a body that no
	// longer decodes means a broken replica: panic. An answer other than OK
	// must have changed nothing.
	Apply(env *Env, kind byte, body []byte) Answer
	// DecodeAnswer decodes an Answer's Data into its Value, for the retry of
	// a command whose answer the host saved.
	DecodeAnswer(data []byte) (any, error)
}

// Frozen is a module's state at one index, encoded on demand.
type Frozen interface{ Encode() []byte }

// Encoded is a state encoded at freeze time, for modules whose state is small.
type Encoded []byte

func (e Encoded) Encode() []byte { return e }

// Leader is what a module may learn about the leader it runs on.
type Leader struct {
	Term    uint64
	NowNs   int64 // the leader's clock (what its next stamp will be at least)
	GraceNs int64 // one election timeout: how long a failover may keep clients from the leader
}

// Proposer is a module that proposes commands of its own while this replica
// leads: expiries, timers, anything the passing of time decides. The leader
// asks on every tick; a command it returns is proposed stamped, and applies
// like any other. Commands may be lost (a failover, a full queue): Due asks
// again later, so a module keeps no promise that a proposal applies.
type Proposer interface {
	Due(l Leader) []Command
}

// Command is a command a module proposes for itself.
type Command struct {
	Kind byte
	Body []byte
}

// Reporter is a module that tells checkers what the command just applied did
// that its state no longer shows (a lease's end, with the keys it deleted).
// The host switches reports on when a driver asked for applied records, then
// takes the report after every entry and passes it on in them.
type Reporter interface {
	// Report switches reports on; off (the default), the module keeps none,
	// so production apply does no work for checkers.
	Report(on bool)
	// TakeReport returns the report and forgets it; nil when there is none.
	TakeReport() any
}

// Validator is a module that checks a command before it is proposed: a
// malformed or oversized one is refused at once and never reaches the log.
// Whatever the state decides (an unknown id, a full table) is Apply's to
// refuse, since only apply sees the state the command meets.
type Validator interface {
	Validate(kind byte, body []byte) Answer
}

// Querier is a module that answers reads, of kinds apart from its commands'.
// The host serves them after a ReadIndex, like KV reads; a query changes
// nothing. nowNs is the time to answer at: on the leader its clock (never
// below replicated time), the clock that decides when timers fire; on a
// follower replicated time as of the read, since its own clock says nothing
// about the leader's.
type Querier interface {
	QueryKinds() []byte
	Query(kind byte, body []byte, nowNs int64) Answer
}

// ScanRecords visits the records under prefix, each checked against its
// seal, with the prefix cut off the key. An error fn returns fails the scan
// as storage.ErrCorrupt (unless it says so already): a record that is sealed
// right but does not decode was written wrongly.
func ScanRecords(disk storage.Reader, prefix []byte, fn func(key, payload []byte) error) error {
	return disk.Scan(prefix, func(key, v []byte) error {
		payload, err := storage.Open(key, v)
		if err != nil {
			return err
		}
		err = fn(key[len(prefix):], payload)
		if err != nil && !errors.Is(err, storage.ErrCorrupt) {
			err = fmt.Errorf("%w: %v", storage.ErrCorrupt, err)
		}
		return err
	})
}

// Reports keeps what the entry being applied did, for a module that is a
// Reporter: embedded, it gives the module Report and TakeReport. Off (the
// default) it keeps nothing, so production apply does no work for checkers.
type Reports[T any] struct {
	on    bool
	items []T
}

// Report switches reports on or off (Reporter).
func (r *Reports[T]) Report(on bool) { r.on = on }

// Reporting says whether reports are on: a module builds a report only then.
func (r *Reports[T]) Reporting() bool { return r.on }

// Note keeps c for the entry's report, when reports are on.
func (r *Reports[T]) Note(c T) {
	if r.on {
		r.items = append(r.items, c)
	}
}

// TakeReport returns what the entry did, as []T in order, and forgets it;
// nil when there is nothing (Reporter).
func (r *Reports[T]) TakeReport() any {
	if len(r.items) == 0 {
		return nil
	}
	c := r.items
	r.items = nil
	return c
}

// Forget drops what was kept (a module replaced from disk or a snapshot).
func (r *Reports[T]) Forget() { r.items = nil }
