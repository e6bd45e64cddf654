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
	// Advertise, when set, records a member's current addresses instead.
	Advertise *Member
}

// Response answers a Request. Err is empty on success, else one of the Err*
// codes (or a validation message) saying what happened.
type Response struct {
	Client uint64
	Seq    uint64
	Result kv.Response
	Err    string
	Leader uint64 // with ErrNotLeader: the leader this replica knows of, if any
}

// Error codes a client sees. Codes other than ErrInvalid say the request may be
// retried; after ErrTimeout a write may or may not have taken effect.
const (
	ErrTimeout   = "timeout"    // no answer in time: outcome unknown
	ErrDropped   = "dropped"    // not proposed (no leader, or raft refused it): not applied
	ErrBusy      = "busy"       // too many requests in flight at this replica: not applied
	ErrStale     = "stale"      // superseded by a later write of the same client: not applied
	ErrNotLeader = "not leader" // only the leader can judge this request: send it there
	ErrBehind    = "behind"     // a learner is too far behind to be promoted yet: retry later
	ErrInvalid   = "invalid: "  // prefix of a validation failure: never applied
)

var errMalformedCommand = errors.New("node: malformed command")

// Command kinds, the first byte of a normal log entry.
const (
	cmdTxn       byte = 1
	cmdAdvertise byte = 2
)

// command is a decoded log entry.
type command struct {
	kind        byte
	client, seq uint64
	txn         kv.Txn
	member      Member // cmdAdvertise
}

// encodeCommand lays out a log entry: kind, client, sequence number, body.
func encodeCommand(kind byte, client, seq uint64, body []byte) []byte {
	b := make([]byte, 0, 21+len(body))
	b = append(b, kind)
	b = binary.AppendUvarint(b, client)
	b = binary.AppendUvarint(b, seq)
	return append(b, body...)
}

func encodeAdvertise(m Member) []byte {
	b := binary.AppendUvarint(nil, m.ID)
	for _, s := range []string{m.PeerAddr, m.HTTPAddr} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeCommand(b []byte) (command, error) {
	var c command
	if len(b) == 0 {
		return c, errMalformedCommand
	}
	c.kind = b[0]
	r := byteReader{b: b[1:]}
	c.client, c.seq = r.uvarint(), r.uvarint()
	if r.err != nil {
		return c, errMalformedCommand
	}
	switch c.kind {
	case cmdTxn:
		txn, err := kv.DecodeTxn(r.b)
		c.txn = txn
		return c, err
	case cmdAdvertise:
		c.member = Member{ID: r.uvarint(), PeerAddr: r.str(), HTTPAddr: r.str()}
		if r.err != nil || len(r.b) != 0 {
			return c, errMalformedCommand
		}
		return c, nil
	}
	return c, errMalformedCommand
}
