package groups

import (
	"encoding/binary"
	"fmt"

	"github.com/aspen-db/aspen/core/module"
)

// Command kinds of the groups module. Clients send 95-105; the leader
// proposes expiries and its grace itself (Due). Queries (108-111) are
// served after a ReadIndex and never reach the log.
const (
	CmdSettleBatch byte = 95 // competing: several settles, each judged alone (batch.go)
	CmdCreate      byte = 96
	CmdDelete      byte = 97
	CmdJoin        byte = 98  // partitioned: join, or rejoin as a new incarnation
	CmdHeartbeat   byte = 99  // partitioned: extend the session, release revoked partitions
	CmdLeave       byte = 100 // partitioned
	CmdCommit      byte = 101 // partitioned: an offset under the member's generation
	CmdReset       byte = 102 // an operator's: move offsets (no members, nothing in flight)
	CmdFetch       byte = 103 // competing: lease the next messages
	CmdSettle      byte = 104 // competing: ack, nak, in progress, terminate one lease
	CmdDead        byte = 105 // replay or drop dead letters
	CmdExpire      byte = 106 // the leader's: sessions and leases past their time
	CmdGrace       byte = 107 // the leader's: its grace for every session and lease

	QueryDescribe  byte = 108
	QueryList      byte = 109
	QueryDead      byte = 110
	QueryFetchable byte = 111 // competing: would a fetch lease anything now (batch.go)
)

// Settle verbs (CmdSettle).
const (
	Ack        uint8 = 1 // done: the message is settled
	Nak        uint8 = 2 // not done: deliver again after the delay
	InProgress uint8 = 3 // still working: the ack wait starts again
	Terminate  uint8 = 4 // never deliver again: to the dead-letter list at once
)

// Dead-letter verbs (CmdDead).
const (
	Replay uint8 = 1 // back to the queue, deliveries counted from zero
	Drop   uint8 = 2 // deleted
)

// ResetTo says where a reset moves offsets.
type ResetTo uint8

const (
	ToEarliest ResetTo = 1 // each partition's first offset
	ToLatest   ResetTo = 2 // its end: skip everything published so far
	ToTime     ResetTo = 3 // the first offset published at or after Value (ns)
	ToOffset   ResetTo = 4 // Value itself, which must lie within [first, end]
)

// AllPartitions names every partition in a reset.
const AllPartitions = -1

// Handle names one lease of one message: its partition, offset and the
// delivery that leased it. A handle whose delivery has been superseded
// (the lease expired and the message went out again) is refused.
type Handle struct {
	P        int
	Off      uint64
	Delivery uint32
}

// cmd is any command decoded; each kind uses its own fields.
type cmd struct {
	def     Def
	group   string
	member  string
	gen     uint64
	p       int
	off     uint64
	parts   []int // heartbeat: partitions released
	to      ResetTo
	value   int64
	n       int
	verb    uint8
	handle  Handle
	delayNs int64
	seqs    []uint64 // dead letters
	members []string // expire
	term    uint64   // grace
	byNs    int64    // grace
	items   []SettleItem
}

// Create asks for a group.
func Create(d Def) module.Command { return module.Command{Kind: CmdCreate, Body: appendDef(nil, &d)} }

// Delete removes a group with its offsets, leases and dead letters.
func Delete(group string) module.Command { return named(CmdDelete, group).cmd() }

// Join joins member to group; joining again under the same id starts a new
// incarnation (a new generation: the old one's commits are fenced).
func Join(group, member string) module.Command { return named(CmdJoin, group).str(member).cmd() }

// Heartbeat extends member's session and releases the partitions it was
// told are being revoked (released may be empty).
func Heartbeat(group, member string, released ...int) module.Command {
	return named(CmdHeartbeat, group).str(member).ints(released).cmd()
}

// Leave removes member from group at once.
func Leave(group, member string) module.Command { return named(CmdLeave, group).str(member).cmd() }

// Commit commits offset (the next to consume) of partition p for member
// under the generation its last join or heartbeat answered.
func Commit(group, member string, gen uint64, p int, offset uint64) module.Command {
	return named(CmdCommit, group).str(member).u(gen).u(uint64(p)).u(offset).cmd()
}

// Reset moves partition p's offset (AllPartitions: every one) to to.
func Reset(group string, p int, to ResetTo, value int64) module.Command {
	return named(CmdReset, group).i(int64(p)).u(uint64(to)).i(value).cmd()
}

// Fetch leases up to n messages to member.
func Fetch(group, member string, n int) module.Command {
	return named(CmdFetch, group).str(member).u(uint64(n)).cmd()
}

// Settle acks, naks (after delayNs), renews or terminates member's lease h.
func Settle(group, member string, verb uint8, h Handle, delayNs int64) module.Command {
	return named(CmdSettle, group).str(member).u(uint64(verb)).u(uint64(h.P)).u(h.Off).u(uint64(h.Delivery)).i(delayNs).cmd()
}

// Dead replays or drops the dead letters seqs of group.
func Dead(group string, verb uint8, seqs ...uint64) module.Command {
	b := named(CmdDead, group).u(uint64(verb)).u(uint64(len(seqs)))
	for _, s := range seqs {
		b = b.u(s)
	}
	return b.cmd()
}

// Describe asks for one group with its members and partitions.
func Describe(group string) module.Command { return named(QueryDescribe, group).cmd() }

// List asks for at most n groups named after after (n 0: the page size).
func List(after string, n int) module.Command { return named(QueryList, after).u(uint64(n)).cmd() }

// DeadLetters asks for at most n of group's dead letters after seq after.
func DeadLetters(group string, after uint64, n int) module.Command {
	return named(QueryDead, group).u(after).u(uint64(n)).cmd()
}

// builder appends a command's fields.
type builder struct {
	kind byte
	b    []byte
}

func named(kind byte, s string) builder { return builder{kind: kind}.str(s) }
func (b builder) str(s string) builder {
	b.b = module.AppendBytes(b.b, []byte(s))
	return b
}
func (b builder) u(v uint64) builder {
	b.b = binary.AppendUvarint(b.b, v)
	return b
}
func (b builder) i(v int64) builder {
	b.b = binary.AppendVarint(b.b, v)
	return b
}
func (b builder) ints(ps []int) builder {
	b = b.u(uint64(len(ps)))
	for _, p := range ps {
		b = b.u(uint64(p))
	}
	return b
}
func (b builder) cmd() module.Command { return module.Command{Kind: b.kind, Body: b.b} }

// decode reads a command of kind; the error wraps errInvalid.
func decode(kind byte, body []byte) (cmd, error) {
	r := &module.Reader{B: body}
	var c cmd
	if kind == CmdCreate {
		c.def = readDef(r)
		return c, done(r, "group create")
	}
	if kind == CmdGrace {
		c.term, c.byNs = r.Uvarint(), r.Varint()
		return c, done(r, "group grace")
	}
	c.group = r.String()
	switch kind {
	case CmdJoin, CmdLeave:
		c.member = r.String()
	case CmdHeartbeat:
		c.member = r.String()
		for n := r.Count(); n > 0 && r.Err == nil; n-- {
			c.parts = append(c.parts, partition(r))
		}
	case CmdCommit:
		c.member, c.gen = r.String(), r.Uvarint()
		c.p, c.off = partition(r), r.Uvarint()
	case CmdReset:
		c.p, c.to, c.value = int(r.Varint()), ResetTo(r.Uvarint()), r.Varint()
	case CmdFetch:
		c.member, c.n = r.String(), int(min(r.Uvarint(), 1<<30))
	case CmdSettle:
		c.member, c.verb = r.String(), uint8(min(r.Uvarint(), 255))
		c.handle = readHandle(r)
		c.delayNs = r.Varint()
	case CmdDead:
		c.verb = uint8(min(r.Uvarint(), 255))
		for n := r.Count(); n > 0 && r.Err == nil; n-- {
			c.seqs = append(c.seqs, r.Uvarint())
		}
	case CmdExpire:
		for n := r.Count(); n > 0 && r.Err == nil; n-- {
			c.members = append(c.members, r.String())
		}
	case CmdSettleBatch:
		c.member = r.String()
		c.items = readSettleItems(r)
	case QueryFetchable:
		c.member, c.n = r.String(), int(min(r.Uvarint(), 1<<30))
	case CmdDelete, QueryDescribe:
	case QueryList:
		c.n = int(min(r.Uvarint(), 1<<30))
	case QueryDead:
		c.off, c.n = r.Uvarint(), int(min(r.Uvarint(), 1<<30))
	default:
		r.Fail("unknown kind %d", kind)
	}
	return c, done(r, fmt.Sprintf("group command %d", kind))
}

// partition reads a partition number, failing one no topic could have.
func partition(r *module.Reader) int {
	p := r.Uvarint()
	if p > 1<<24 {
		r.Fail("partition %d", p)
	}
	return int(p)
}

func readHandle(r *module.Reader) Handle {
	h := Handle{P: partition(r), Off: r.Uvarint()}
	d := r.Uvarint()
	if d > 1<<31 {
		r.Fail("delivery %d", d)
	}
	h.Delivery = uint32(d)
	return h
}

func appendHandle(b []byte, h Handle) []byte {
	b = binary.AppendUvarint(b, uint64(h.P))
	b = binary.AppendUvarint(b, h.Off)
	return binary.AppendUvarint(b, uint64(h.Delivery))
}

func done(r *module.Reader, what string) error {
	if err := r.Done(what); err != nil {
		return fmt.Errorf("%w: %v", errInvalid, err)
	}
	return nil
}
