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

// Response answers a Request: OK with a Result, or another Outcome with a
// Detail saying why.
type Response struct {
	Client  uint64
	Seq     uint64
	Result  kv.Response
	Outcome Outcome
	Detail  string
	Leader  uint64 // with NotLeader: the leader this replica knows of, if any
}

// Err returns the response's outcome as an error, or nil for OK.
func (r Response) Err() error {
	if r.Outcome == OK {
		return nil
	}
	return &Error{Outcome: r.Outcome, Detail: r.Detail}
}

var errMalformedCommand = errors.New("node: malformed command")

// Command kinds, the first byte of a normal log entry. A leader sets
// cmdStamped on the entries it proposes and follows the kind with its clock
// reading (see stampEntries): that reading is the replicated time.
const (
	cmdTxn       byte = 1
	cmdAdvertise byte = 2
	cmdStamped   byte = 0x80
)

// command is a decoded log entry.
type command struct {
	kind        byte
	stamped     bool
	stampNs     int64 // the proposing leader's clock, when stamped
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

// stampCommand returns an encoded command with the stamp set after its kind.
func stampCommand(data []byte, stampNs int64) []byte {
	b := make([]byte, 0, len(data)+binary.MaxVarintLen64)
	b = append(b, data[0]|cmdStamped)
	b = binary.AppendUvarint(b, uint64(stampNs))
	return append(b, data[1:]...)
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
	c.kind, c.stamped = b[0]&^cmdStamped, b[0]&cmdStamped != 0
	r := byteReader{b: b[1:]}
	if c.stamped {
		c.stampNs = int64(r.uvarint())
	}
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
