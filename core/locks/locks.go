// Package locks holds Consul-style sessions and the locks they hold on KV
// keys, as replicated state.
//
// A session is created with an id its caller chose (Consul's servers make a
// UUID before the write is replicated; so does Aspen's HTTP layer), a name, a
// node, a behavior and, optionally, a TTL. A session with a TTL rides on a
// lease (core/lease) of twice the TTL, Consul's rule that a session may live
// up to 2×TTL unrenewed: renewing it keeps the lease alive, and the lease's
// end, by expiry on replicated time, invalidates the session in the same
// apply. Invalidation, by that or by destroy, releases every key the
// session holds (or deletes it, with behavior delete) at one revision, and
// keeps each key from being acquired for the session's lock delay.
//
// The locks themselves live on the KV records (kv.Record.Session and
// LockIndex; kv.Op's LockAcquire and LockRelease): this package tells the
// KV store which sessions are live and which keys are in their lock delay
// (kv.Locks), and keeps, derived from the records, which keys each session
// holds.
package locks

import (
	"errors"
	"fmt"
	"time"
)

// Behavior is what a session's invalidation does to the keys it holds.
type Behavior uint8

// The behaviors Consul offers.
const (
	Release Behavior = iota // clear the lock, keep the key
	Delete                  // delete the key
)

func (b Behavior) String() string {
	if b == Delete {
		return "delete"
	}
	return "release"
}

// ParseBehavior reads Consul's names; "" is release, the default.
func ParseBehavior(s string) (Behavior, error) {
	switch s {
	case "", "release":
		return Release, nil
	case "delete":
		return Delete, nil
	}
	return 0, fmt.Errorf("%w: behavior %q: want release or delete", ErrInvalid, s)
}

// Session is one session as clients see it.
type Session struct {
	ID          string
	Name        string
	Node        string
	Behavior    Behavior
	TTLNs       int64 // 0: no TTL, the session lives until destroyed
	LockDelayNs int64
	CreateIndex uint64 // the log index that created it
	ModifyIndex uint64
	Lease       int64 // the lease its TTL rides on; 0 without a TTL
}

// Limits bound the table.
type Limits struct {
	SessionsMax  int
	IDBytesMax   int
	NameBytesMax int
	NodeBytesMax int
	TTLMinNs     int64 // Consul's session_ttl_min
	TTLMaxNs     int64
	LockDelayMax int64 // Consul caps lock delay at 60 s
	DelaysMax    int   // keys in their lock delay at once; past it the oldest is forgotten
}

// DefaultLimits are Consul's bounds on TTL and lock delay.
func DefaultLimits() Limits {
	return Limits{
		SessionsMax: 10_000, IDBytesMax: 128, NameBytesMax: 256, NodeBytesMax: 256,
		TTLMinNs: int64(10 * time.Second), TTLMaxNs: int64(86400 * time.Second),
		LockDelayMax: int64(60 * time.Second), DelaysMax: 100_000,
	}
}

// LockDelayDefault is the lock delay of a session created without one.
const LockDelayDefault = int64(15 * time.Second)

// Refusals.
var (
	ErrInvalid  = errors.New("invalid session request")
	ErrNotFound = errors.New("session not found")
	ErrExists   = errors.New("session exists")
	ErrFull     = errors.New("session table full")
)

func (l Limits) check(s *Session) error {
	switch {
	case s.ID == "" || len(s.ID) > l.IDBytesMax:
		return fmt.Errorf("%w: id must be 1 to %d bytes", ErrInvalid, l.IDBytesMax)
	case len(s.Name) > l.NameBytesMax:
		return fmt.Errorf("%w: name of %d bytes, at most %d", ErrInvalid, len(s.Name), l.NameBytesMax)
	case s.Node == "" || len(s.Node) > l.NodeBytesMax:
		return fmt.Errorf("%w: node must be 1 to %d bytes", ErrInvalid, l.NodeBytesMax)
	case s.Behavior > Delete:
		return fmt.Errorf("%w: behavior %d", ErrInvalid, s.Behavior)
	case s.TTLNs != 0 && (s.TTLNs < l.TTLMinNs || s.TTLNs > l.TTLMaxNs):
		return fmt.Errorf("%w: TTL %v: want between %v and %v, or none", ErrInvalid,
			time.Duration(s.TTLNs), time.Duration(l.TTLMinNs), time.Duration(l.TTLMaxNs))
	case s.LockDelayNs < 0 || s.LockDelayNs > l.LockDelayMax:
		return fmt.Errorf("%w: lock delay %v: want 0 to %v", ErrInvalid, time.Duration(s.LockDelayNs), time.Duration(l.LockDelayMax))
	}
	return nil
}
