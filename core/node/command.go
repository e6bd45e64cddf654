package node

import (
	"encoding/binary"
	"errors"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
)

// Request is a client's call. Writes carry the client's session id and a
// sequence number that grows by one per new write, so a retry is recognised.
// A request is a txn unless one of Call, Members or Advertise is set.
type Request struct {
	Client uint64
	Seq    uint64
	Txn    kv.Txn
	Stale  bool // a read served from this replica's state at once, without ReadIndex
	// Call, when set, is a module's command or query (lease.Grant, ...).
	Call *module.Command
	// Members, when set, makes this a membership change.
	Members []MemberChange
	// Advertise, when set, records a member's current addresses.
	Advertise *Member
}

// Response answers a Request: OK with a Result, or another Outcome with a
// Detail saying why.
type Response struct {
	Client  uint64
	Seq     uint64
	Result  kv.Response // a txn's answer
	Value   any         // a module call's answer, of the module's type (lease.Answer, ...)
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

// cmdStamped marks, in the kind byte, an entry a leader stamped with its
// clock reading, which follows the kind (see stampEntries): that reading is
// the replicated time. Kinds themselves belong to modules (modules.go).
const cmdStamped byte = 0x80

// command is a decoded log entry.
type command struct {
	kind        byte
	stamped     bool
	stampNs     int64 // the proposing leader's clock, when stamped
	client, seq uint64
	body        []byte // the module's encoding; aliases the entry
}

// encodeCommand lays out a log entry: kind, client, sequence number, body.
// Client 0 is the leader's own command (a module's, through Proposer): it
// has no session and no one waits for its answer.
func encodeCommand(kind byte, client, seq uint64, body []byte) []byte {
	b := make([]byte, 0, 21+len(body))
	b = append(b, kind)
	b = binary.AppendUvarint(b, client)
	b = binary.AppendUvarint(b, seq)
	return append(b, body...)
}

// stampCommand returns an encoded command with the stamp set after its kind,
// in place of the one it carried. A stamp that does not decode is left as it
// is: the command would not decode at apply either.
func stampCommand(data []byte, stampNs int64) []byte {
	rest := data[1:]
	if data[0]&cmdStamped != 0 {
		_, n := binary.Uvarint(rest)
		if n <= 0 {
			return data
		}
		rest = rest[n:]
	}
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(rest))
	b = append(b, data[0]|cmdStamped)
	b = binary.AppendUvarint(b, uint64(stampNs))
	return append(b, rest...)
}

func encodeAdvertise(m Member) []byte {
	b := binary.AppendUvarint(nil, m.ID)
	for _, s := range []string{m.PeerAddr, m.HTTPAddr} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeAdvertise(b []byte) (Member, error) {
	r := module.Reader{B: b}
	m := Member{ID: r.Uvarint(), PeerAddr: r.String(), HTTPAddr: r.String()}
	if r.Err != nil || len(r.B) != 0 {
		return m, errMalformedCommand
	}
	return m, nil
}

func decodeCommand(b []byte) (command, error) {
	var c command
	if len(b) == 0 {
		return c, errMalformedCommand
	}
	c.kind, c.stamped = b[0]&^cmdStamped, b[0]&cmdStamped != 0
	r := module.Reader{B: b[1:]}
	if c.stamped {
		c.stampNs = int64(r.Uvarint())
	}
	c.client, c.seq = r.Uvarint(), r.Uvarint()
	if r.Err != nil {
		return c, errMalformedCommand
	}
	c.body = r.B
	return c, nil
}
