package groups

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/core/topics"
)

// Records on disk: one per group, one per unsettled message, one per dead
// letter. Names are length-prefixed in keys, so no name is a prefix of another's keys.
var (
	prefix        = []byte("g/")
	prefixGroup   = []byte("g/g/")
	prefixPending = []byte("g/p/")
	prefixDead    = []byte("g/d/")
)

// Bounds on the leader's own proposals.
const (
	expireGroupsMax = 64  // groups one Due names expiries for
	expireItemsMax  = 256 // members and leases one expiry command names
	proposeRetryNs  = 1e9 // a proposal not applied after this is made again
)

// Module is the consumer groups as a replicated module. It reads topics
// through log, which must be the replicated topics state at the same index.
type Module struct {
	limits Limits
	log    topics.Log
	groups map[string]*group
	names  []string // group names, sorted
	digest uint64
	// graceTerm is the leader term whose grace applied last: a leader
	// expires no session or lease before its own grace has applied.
	graceTerm uint64

	// The leader's memory of what it proposed and when; not replicated.
	asked      map[string]int64
	graceAsked [2]int64

	report  bool
	changed []Change

	// Bugs plants defects, for tests that prove a checker catches them
	// (planted_bugs.go; aspenbugs builds only).
	Bugs bugs.Set
}

// NewModule returns an empty group table reading topics from log.
func NewModule(limits Limits, log topics.Log) *Module {
	return &Module{limits: limits, log: log, groups: map[string]*group{}, asked: map[string]int64{}}
}

func (m *Module) Name() string    { return "groups" }
func (m *Module) Version() uint64 { return 1 }
func (m *Module) Kinds() []byte {
	return []byte{CmdCreate, CmdDelete, CmdJoin, CmdHeartbeat, CmdLeave, CmdCommit, CmdReset, CmdFetch, CmdSettle, CmdDead, CmdExpire, CmdGrace, CmdSettleBatch}
}
func (m *Module) QueryKinds() []byte {
	return []byte{QueryDescribe, QueryList, QueryDead, QueryFetchable}
}
func (m *Module) Prefixes() [][]byte { return [][]byte{prefix} }
func (m *Module) Hash() uint64 {
	return mix64(m.digest ^ mix64(m.graceTerm+0x9e3779b97f4a7c15))
}

// Validate refuses malformed commands and commands over a limit before they
// are proposed, and the leader's own kinds from clients.
func (m *Module) Validate(kind byte, body []byte) module.Answer {
	if kind == CmdExpire || kind == CmdGrace {
		return refusal(fmt.Errorf("%w: group command %d is the leader's own", errInvalid, kind))
	}
	c, err := decode(kind, body)
	if err == nil {
		err = m.check(kind, &c)
	}
	if err != nil {
		return refusal(err)
	}
	return module.Answer{}
}

// check refuses a decoded command the limits do not allow.
func (m *Module) check(kind byte, c *cmd) error {
	l := m.limits
	if kind == CmdCreate {
		return m.checkDef(&c.def)
	}
	if err := m.checkName("group", c.group); err != nil {
		return err
	}
	switch kind {
	case CmdJoin, CmdHeartbeat, CmdLeave, CmdCommit, CmdFetch, CmdSettle, CmdSettleBatch:
		if err := m.checkName("member", c.member); err != nil {
			return err
		}
	}
	switch kind {
	case CmdHeartbeat:
		if len(c.parts) > l.PartitionsMax {
			return fmt.Errorf("%w: %d partitions released, max %d", errInvalid, len(c.parts), l.PartitionsMax)
		}
	case CmdReset:
		if c.to < ToEarliest || c.to > ToOffset || c.p < AllPartitions {
			return fmt.Errorf("%w: reset to %d of partition %d", errInvalid, c.to, c.p)
		}
		if c.to == ToOffset && c.value < 0 {
			return fmt.Errorf("%w: reset to offset %d", errInvalid, c.value)
		}
	case CmdFetch:
		if c.n < 1 || c.n > l.FetchMax {
			return fmt.Errorf("%w: fetch of %d messages, want 1 to %d", errInvalid, c.n, l.FetchMax)
		}
	case CmdSettle:
		return m.checkSettle(SettleItem{Verb: c.verb, Handle: c.handle, DelayNs: c.delayNs})
	case CmdSettleBatch:
		return m.checkSettleBatch(c.items)
	case CmdDead:
		if c.verb != Replay && c.verb != Drop || len(c.seqs) == 0 || len(c.seqs) > l.ListMax {
			return fmt.Errorf("%w: dead-letter verb %d on %d letters, want 1 to %d", errInvalid, c.verb, len(c.seqs), l.ListMax)
		}
	}
	return nil
}

func (m *Module) checkName(what, s string) error {
	if s == "" || len(s) > m.limits.NameBytesMax {
		return fmt.Errorf("%w: %s name of %d bytes, want 1 to %d", errInvalid, what, len(s), m.limits.NameBytesMax)
	}
	return nil
}

func (m *Module) checkDef(d *Def) error {
	l := m.limits
	if err := m.checkName("group", d.Name); err != nil {
		return err
	}
	if err := m.checkName("topic", d.Topic); err != nil {
		return err
	}
	switch d.Mode {
	case Partitioned:
		if d.SessionNs < l.SessionMinNs || d.SessionNs > l.SessionMaxNs || d.AckWaitNs != 0 || d.DeliveriesMax != 0 || d.InFlightMax != 0 {
			return fmt.Errorf("%w: session %dns, want %d to %d (and no competing settings)", errInvalid, d.SessionNs, l.SessionMinNs, l.SessionMaxNs)
		}
	case Competing:
		switch {
		case d.SessionNs != 0:
			return fmt.Errorf("%w: a competing group has no sessions", errInvalid)
		case d.AckWaitNs < l.AckWaitMinNs || d.AckWaitNs > l.AckWaitMaxNs:
			return fmt.Errorf("%w: ack wait %dns, want %d to %d", errInvalid, d.AckWaitNs, l.AckWaitMinNs, l.AckWaitMaxNs)
		case d.DeliveriesMax < 1 || d.DeliveriesMax > l.DeliveriesMax:
			return fmt.Errorf("%w: max deliveries %d, want 1 to %d", errInvalid, d.DeliveriesMax, l.DeliveriesMax)
		case d.InFlightMax < 1 || d.InFlightMax > l.InFlightMax:
			return fmt.Errorf("%w: max in flight %d, want 1 to %d", errInvalid, d.InFlightMax, l.InFlightMax)
		}
	default:
		return fmt.Errorf("%w: mode %d", errInvalid, d.Mode)
	}
	return nil
}

// Apply applies one group command at replicated time env.NowNs. Every
// refusal is decided before anything changes.
func (m *Module) Apply(env *module.Env, kind byte, body []byte) module.Answer {
	c, err := decode(kind, body)
	assert.That(err == nil, "group command %d at %d does not decode: %v", kind, env.Index, err)
	switch kind {
	case CmdCreate:
		return reply(m.create(env, c.def))
	case CmdExpire:
		m.expire(env, &c)
		return module.Answer{}
	case CmdGrace:
		m.grace(env, c.term, c.byNs)
		return module.Answer{}
	}
	g := m.groups[c.group]
	if g == nil {
		return refusal(fmt.Errorf("%w: group %q", ErrNotFound, c.group))
	}
	if want := modeOf(kind); want != 0 && g.Mode != want {
		return refusal(fmt.Errorf("%w: group %q is %s", ErrState, g.Name, g.Mode))
	}
	switch kind {
	case CmdDelete:
		m.remove(env, g)
		return reply(Answer{}, nil)
	case CmdJoin:
		return reply(m.join(env, g, c.member))
	case CmdHeartbeat:
		return reply(m.heartbeat(env, g, c.member, c.parts))
	case CmdLeave:
		return reply(m.leave(env, g, c.member))
	case CmdCommit:
		return reply(m.commit(env, g, &c))
	case CmdReset:
		return reply(m.reset(env, g, c.p, c.to, c.value))
	case CmdFetch:
		return reply(m.fetch(env, g, c.member, c.n))
	case CmdSettle:
		return reply(m.settle(env, g, &c))
	case CmdSettleBatch:
		return reply(m.settleBatch(env, g, c.member, c.items), nil)
	case CmdDead:
		return reply(m.deadCmd(env, g, c.verb, c.seqs))
	}
	panic(fmt.Sprintf("group command %d reached apply", kind))
}

// modeOf is the mode a command kind needs (0: either).
func modeOf(kind byte) Mode {
	switch kind {
	case CmdJoin, CmdHeartbeat, CmdLeave, CmdCommit:
		return Partitioned
	case CmdFetch, CmdSettle, CmdSettleBatch, CmdDead:
		return Competing
	}
	return 0
}

func (m *Module) create(env *module.Env, d Def) (Answer, error) {
	if err := m.checkDef(&d); err != nil {
		return Answer{}, err
	}
	if m.groups[d.Name] != nil {
		return Answer{}, fmt.Errorf("%w: %q", ErrExists, d.Name)
	}
	if len(m.groups) >= m.limits.GroupsMax {
		return Answer{}, fmt.Errorf("%w: %d groups held", ErrFull, len(m.groups))
	}
	parts, ok := m.log.Partitions(d.Topic)
	if !ok {
		return Answer{}, fmt.Errorf("%w: topic %q", ErrNotFound, d.Topic)
	}
	if parts < 1 || parts > m.limits.PartitionsMax {
		return Answer{}, fmt.Errorf("%w: topic %q has %d partitions, groups take 1 to %d", ErrFull, d.Topic, parts, m.limits.PartitionsMax)
	}
	g := newGroup(d, parts, env.NowNs)
	for p := range parts {
		first, end := m.log.Bounds(d.Topic, p)
		g.offsets[p] = first
		if d.StartLatest {
			g.offsets[p] = end
		}
	}
	m.groups[d.Name] = g
	i, _ := slices.BinarySearch(m.names, d.Name)
	m.names = slices.Insert(m.names, i, d.Name)
	m.digest ^= groupHash(g)
	m.saveGroup(env.Batch, g)
	m.noteGroup(g)
	return Answer{Groups: []Group{m.view(g, false)}}, nil
}

// remove deletes a group and every record of it.
func (m *Module) remove(env *module.Env, g *group) {
	g.pending.Ascend(func(e *entry) bool {
		m.digest ^= entryHash(g.Name, e)
		env.Batch.Delete(pendingKey(g.Name, e.P, e.Off))
		return true
	})
	for i := range g.dead {
		m.digest ^= deadHash(g.Name, &g.dead[i])
		env.Batch.Delete(deadKey(g.Name, g.dead[i].Seq))
	}
	m.digest ^= groupHash(g)
	env.Batch.Delete(groupKey(g.Name))
	delete(m.groups, g.Name)
	delete(m.asked, g.Name)
	i, _ := slices.BinarySearch(m.names, g.Name)
	m.names = slices.Delete(m.names, i, i+1)
	if m.report {
		m.changed = append(m.changed, Change{Group: g.Name, Deleted: true})
	}
}

// touch runs fn, which changes group g's record, keeping the digest in
// step and writing the record.
func (m *Module) touch(env *module.Env, g *group, fn func()) {
	m.digest ^= groupHash(g)
	fn()
	m.digest ^= groupHash(g)
	m.saveGroup(env.Batch, g)
}

func (m *Module) saveGroup(b *storage.Batch, g *group) { b.Put(groupKey(g.Name), appendGroup(nil, g)) }

func groupKey(name string) []byte {
	return module.AppendBytes(append([]byte(nil), prefixGroup...), []byte(name))
}

func pendingKey(name string, p int, off uint64) []byte {
	b := module.AppendBytes(append([]byte(nil), prefixPending...), []byte(name))
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(b, uint32(p)), off)
}

func deadKey(name string, seq uint64) []byte {
	b := module.AppendBytes(append([]byte(nil), prefixDead...), []byte(name))
	return binary.BigEndian.AppendUint64(b, seq)
}

// refusal maps the errors onto outcomes.
func refusal(err error) module.Answer {
	switch {
	case errors.Is(err, ErrNotFound):
		return module.Refuse(module.NotFound, err)
	case errors.Is(err, ErrExists), errors.Is(err, ErrFenced), errors.Is(err, ErrState):
		return module.Refuse(module.Conflict, err)
	case errors.Is(err, ErrFull):
		return module.Refuse(module.TooLarge, err)
	}
	return module.Refuse(module.Invalid, err)
}

func reply(a Answer, err error) module.Answer {
	if err != nil {
		return refusal(err)
	}
	return module.Answer{Data: a.Encode(), Value: a}
}

func (m *Module) DecodeAnswer(data []byte) (any, error) { return DecodeAnswer(data) }
