package node

import (
	"encoding/binary"
	"errors"

	"github.com/aspen-db/aspen/core/kv"
)

// Request is a client's call. Writes carry the client's session id and a
// sequence number that grows by one per new write, so a retry is recognised.
type Request struct {
	Client uint64
	Seq    uint64
	Txn    kv.Txn
	Stale  bool // a read served from this replica's state at once, without ReadIndex
	// Members, when set, makes this a membership change instead of a txn.
	Members []MemberChange
}

// Response answers a Request. Err is empty on success, else one of the Err*
// codes (or a validation message) saying what happened.
type Response struct {
	Client uint64
	Seq    uint64
	Result kv.Response
	Err    string
}

// Error codes a client sees. Codes other than ErrInvalid say the request may be
// retried; after ErrTimeout a write may or may not have taken effect.
const (
	ErrTimeout   = "timeout"    // no answer in time: outcome unknown
	ErrDropped   = "dropped"    // not proposed (no leader, or raft refused it): not applied
	ErrBusy      = "busy"       // too many requests in flight at this replica: not applied
	ErrStale     = "stale"      // superseded by a later write of the same client: not applied
	ErrStopping  = "stopping"   // the replica is shutting down
	ErrNotLeader = "not leader" // only the leader can judge this request: send it there
	ErrBehind    = "behind"     // a learner is too far behind to be promoted yet: retry later
	ErrInvalid   = "invalid: "  // prefix of a validation failure: never applied
)

var errMalformedCommand = errors.New("node: malformed command")

// encodeCommand lays out a log entry: client, sequence number, then the txn.
func encodeCommand(client, seq uint64, txn kv.Txn) []byte {
	body := kv.EncodeTxn(txn)
	b := make([]byte, 0, 20+len(body))
	b = binary.AppendUvarint(b, client)
	b = binary.AppendUvarint(b, seq)
	return append(b, body...)
}

func decodeCommand(b []byte) (client, seq uint64, txn kv.Txn, err error) {
	client, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, txn, errMalformedCommand
	}
	seq, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return 0, 0, txn, errMalformedCommand
	}
	txn, err = kv.DecodeTxn(b[n+m:])
	return client, seq, txn, err
}
