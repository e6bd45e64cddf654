// Package groups is the consumer groups module: groups of members that read
// a topic (core/topics) together, in one of two modes.
//
// Partitioned (Kafka-like): members join and heartbeat; each partition has
// at most one owner; ownership moves incrementally (revoked, released, then
// assigned) and every change bumps the group's generation; members commit
// offsets through the log under their generation.
//
// Competing (a work queue, NATS-like): any member fetches the next messages,
// each leased to it for an ack wait on replicated time; ack, nak, in
// progress and terminate settle or renew a lease by its handle; a message
// delivered too often goes to the group's dead-letter list.
//
// Everything is replicated state changed only in apply, at the leader's
// stamp (module.Env.NowNs).
package groups

import (
	"errors"
	"slices"

	"github.com/google/btree"
)

// Mode is how a group's members share its topic.
type Mode uint8

const (
	Partitioned Mode = 1 // each partition owned by one member, offsets committed
	Competing   Mode = 2 // every message leased to one member at a time, acked one by one
)

func (m Mode) String() string {
	switch m {
	case Partitioned:
		return "partitioned"
	case Competing:
		return "competing"
	}
	return "mode?"
}

// Def is a group's definition, fixed at create.
type Def struct {
	Name  string
	Topic string
	Mode  Mode
	// StartLatest starts a new group at each partition's end (only messages
	// published after the create); false starts at its first offset.
	StartLatest bool
	// SessionNs (partitioned): a member not heard from for this long leaves.
	SessionNs int64
	// AckWaitNs (competing): how long a fetched message is leased.
	AckWaitNs int64
	// DeliveriesMax (competing): a message delivered this often and not
	// acked goes to the dead-letter list.
	DeliveriesMax int
	// InFlightMax (competing): leases one member may hold at once.
	InFlightMax int
}

// Limits bound everything a group holds; each is checked at insert.
type Limits struct {
	GroupsMax     int   // groups held
	NameBytesMax  int   // group, topic and member names
	MembersMax    int   // members of one partitioned group
	PartitionsMax int   // a topic with more partitions cannot have a group
	SessionMinNs  int64 // session timeout range
	SessionMaxNs  int64
	AckWaitMinNs  int64 // ack wait range
	AckWaitMaxNs  int64
	DeliveriesMax int   // the highest max deliveries a group may set
	InFlightMax   int   // the highest in-flight bound a group may set
	FetchMax      int   // messages one fetch may ask for
	FetchBytesMax int   // message values one fetch answers, in all
	SettleMax     int   // settles one batch may carry
	PendingMax    int   // unsettled messages (leased or waiting) of one competing group
	DeadMax       int   // dead letters of one group; the oldest goes when a new one comes
	NakDelayMaxNs int64 // the longest delay a nak may ask for
	ListMax       int   // groups or dead letters in one page
}

// DefaultLimits are the limits a node starts with.
func DefaultLimits() Limits {
	return Limits{
		GroupsMax: 1024, NameBytesMax: 256, MembersMax: 100, PartitionsMax: 1024,
		SessionMinNs: 1e9, SessionMaxNs: 600e9, AckWaitMinNs: 1e9, AckWaitMaxNs: 12 * 3600e9,
		DeliveriesMax: 100, InFlightMax: 1000, FetchMax: 256, FetchBytesMax: 1 << 20, SettleMax: 256,
		PendingMax: 10000, DeadMax: 10000, NakDelayMaxNs: 3600e9, ListMax: 100,
	}
}

// Errors apply and validate refuse with; refusal maps them onto outcomes.
var (
	ErrNotFound = errors.New("not found")             // group, topic, member, dead letter
	ErrExists   = errors.New("group exists")          // create of a held name
	ErrFull     = errors.New("over a group limit")    // a table, a group, a list full
	ErrFenced   = errors.New("fenced")                // stale generation, not the owner, a stale handle
	ErrState    = errors.New("not in a state for it") // wrong mode, reset with members, offset backwards
	ErrCorrupt  = errors.New("group state does not decode")
	errInvalid  = errors.New("invalid group command")
)

// Stats count what a group did; they are replicated, so every node answers
// the same.
type Stats struct {
	Rebalances   uint64 // generations: assignment changes
	Expired      uint64 // members whose session ended
	Redeliveries uint64 // deliveries after a message's first
	Expiries     uint64 // message leases that ran out
	DeadLettered uint64 // messages that went to the dead-letter list
	DeadEvicted  uint64 // dead letters pushed out by newer ones when the list was full
	Trimmed      uint64 // unsettled messages retention removed before they were acked
}

func (s *Stats) fields() []*uint64 {
	return []*uint64{&s.Rebalances, &s.Expired, &s.Redeliveries, &s.Expiries, &s.DeadLettered, &s.DeadEvicted, &s.Trimmed}
}

// member is one member of a partitioned group.
type member struct {
	ID         string
	Epoch      uint64 // the generation its assignment last changed at (or it joined): commits carry it
	DeadlineNs int64  // its session ends here unless it heartbeats
}

// entry is one unsettled message of a competing group: leased to Member
// until At, or waiting (Member "") to be delivered again from At on.
type entry struct {
	P        int
	Off      uint64
	Delivery uint32 // deliveries so far; a lease's handle names it
	Member   string
	At       int64
}

func (e *entry) leased() bool { return e.Member != "" }

// Dead-letter reasons.
const (
	ReasonDeliveries uint8 = 1 // delivered DeliveriesMax times, never acked
	ReasonTerminated uint8 = 2 // a member terminated it
)

// DeadLetter is one message on a group's dead-letter list.
type DeadLetter struct {
	Seq        uint64 // per group, in the order letters came
	P          int
	Off        uint64
	Deliveries uint32
	Reason     uint8
	AtNs       int64
}

// group is one group's whole state.
type group struct {
	Def
	createdNs int64
	parts     int
	gen       uint64 // bumps on every assignment change (partitioned)
	stats     Stats

	// Partitioned.
	members map[string]*member
	ids     []string // member ids, sorted: the only order members are visited in
	target  []string // the owner each partition should have ("" only with no members)
	owner   []string // the owner it has ("" while released and not yet assigned)

	// offsets: partitioned, the committed offset (the next to consume);
	// competing, the next offset never delivered.
	offsets []uint64

	// Competing.
	rr       uint32                // the partition the next fetch looks at first
	pending  *btree.BTreeG[*entry] // by (P, Off): the floor of p is its first
	leases   *btree.BTreeG[*entry] // the leased, by (At, P, Off): At is the deadline
	waiting  *btree.BTreeG[*entry] // the rest, by (At, P, Off): At is when it may go out again
	inflight map[string]int        // leases per member (only members holding some)
	dead     []DeadLetter          // by Seq
	deadSeq  uint64
}

func newGroup(d Def, parts int, nowNs int64) *group {
	g := &group{Def: d, createdNs: nowNs, parts: parts, members: map[string]*member{},
		target: make([]string, parts), owner: make([]string, parts), offsets: make([]uint64, parts),
		inflight: map[string]int{}}
	g.pending = btree.NewG(16, pendingLess)
	g.leases = btree.NewG(16, timerLess)
	g.waiting = btree.NewG(16, timerLess)
	return g
}

func pendingLess(a, b *entry) bool {
	if a.P != b.P {
		return a.P < b.P
	}
	return a.Off < b.Off
}

func timerLess(a, b *entry) bool {
	if a.At != b.At {
		return a.At < b.At
	}
	return pendingLess(a, b)
}

// setMembers keeps ids in step with members.
func (g *group) setMembers() {
	g.ids = g.ids[:0]
	for id := range g.members {
		g.ids = append(g.ids, id)
	}
	slices.Sort(g.ids)
}

// owned returns the partitions member id owns: those it keeps and those
// being revoked from it.
func (g *group) owned(id string) (assigned, revoking []int) {
	for p, o := range g.owner {
		if o != id {
			continue
		}
		if g.target[p] == id {
			assigned = append(assigned, p)
		} else {
			revoking = append(revoking, p)
		}
	}
	return assigned, revoking
}

// floor is the first offset of partition p not yet settled.
func (g *group) floor(p int) uint64 {
	f := g.offsets[p]
	g.pending.AscendGreaterOrEqual(&entry{P: p}, func(e *entry) bool {
		if e.P == p {
			f = e.Off
		}
		return false
	})
	return f
}
