package module

import "fmt"

// Outcome says how a request ended. Drivers map it onto their protocol (an
// HTTP status, retry or give up) by value; the detail that comes with it is
// for people, never parsed.
type Outcome uint8

// The outcomes a client sees. Only OK applied anything; after Timeout a
// write may or may not have taken effect.
const (
	OK        Outcome = iota
	Invalid           // malformed: never applied, and a retry will not help
	TooLarge          // over a size limit (key, value, ops in a txn): never applied
	Conflict          // refused by the replicated state (a membership rule, a transfer target): never applied
	NotLeader         // only the leader judges this; Response.Leader names it when known
	Behind            // a learner too far behind to be promoted yet: retry later
	Busy              // too many requests in flight at this replica: not applied, retry
	Dropped           // not proposed (no leader, or raft refused it): not applied, retry
	Stale             // superseded by a later write of the same client: not applied
	Timeout           // no answer in time: a write's outcome is unknown
	NotFound          // names something the replicated state does not hold (a lease): never applied
)

var outcomeNames = [...]string{OK: "ok", Invalid: "invalid", TooLarge: "too large", Conflict: "conflict",
	NotLeader: "not leader", Behind: "behind", Busy: "busy", Dropped: "dropped", Stale: "stale", Timeout: "timeout", NotFound: "not found"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Refused reports whether the request was judged and turned down: asking the
// same again gets the same answer.
func (o Outcome) Refused() bool {
	return o == Invalid || o == TooLarge || o == Conflict || o == NotFound
}

// Error is an outcome other than OK as an error value. errors.Is matches two
// Errors of the same outcome when the target has no detail, so callers can
// test for a kind of outcome: errors.Is(err, &module.Error{Outcome: module.Conflict}).
type Error struct {
	Outcome Outcome
	Detail  string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Outcome.String()
	}
	return e.Outcome.String() + ": " + e.Detail
}

// Is matches an Error target of the same outcome and no detail, or the same detail.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Outcome == e.Outcome && (t.Detail == "" || t.Detail == e.Detail)
}
