package hooks

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Command kinds of the hooks module. Clients send the first five; the
// leader proposes pumps itself (Due). Queries are served after a ReadIndex.
const (
	CmdCreate  byte = 80
	CmdDelete  byte = 81
	CmdEnable  byte = 82
	CmdDisable byte = 83
	CmdTrigger byte = 84
	CmdPump    byte = 85 // the leader's: hand waiting deliveries to the queue

	QueryGet  byte = 88
	QueryList byte = 89
)

// Records on disk: one per hook, one per delivery in a backlog.
var (
	prefix      = []byte("h/")
	prefixHook  = []byte("h/h/")
	prefixQueue = []byte("h/q/")
)

// Bounds on the leader's own proposals and on a trigger.
const (
	pumpBatchMax    = 64  // hooks one pump names
	proposeRetryNs  = 1e9 // a pump not applied after this is proposed again
	triggerKeyBytes = 4096
)

// Module is the hook table as a replicated module. It sees every KV change
// in the apply that makes it (kv.Observer) and hands deliveries to the job
// queue.
type Module struct {
	limits Limits
	jobs   Jobs
	topics Publisher // for topic hooks; nil: none may be made
	hooks  map[string]*hook
	order  []*hook // the enabled hooks, by name: what a change is matched against
	digest uint64

	asked map[string]int64 // the leader's memory of pumps it proposed; not replicated

	module.Reports[Change] // what the entry being applied did (report.go)

	// Bugs plants defects, for tests that prove a checker catches them
	// (planted_bugs.go; aspenbugs builds only).
	Bugs    bugs.Set
	planted planted
}

// NewModule returns an empty hook table that delivers through q.
func NewModule(limits Limits, q Jobs) *Module {
	return &Module{limits: limits, jobs: q, hooks: map[string]*hook{}, asked: map[string]int64{}}
}

func (m *Module) Name() string    { return "hooks" }
func (m *Module) Version() uint64 { return 1 }
func (m *Module) Kinds() []byte {
	return append([]byte{CmdCreate, CmdDelete, CmdEnable, CmdDisable, CmdTrigger, CmdPump}, plantedKinds()...)
}
func (m *Module) QueryKinds() []byte { return []byte{QueryGet, QueryList} }
func (m *Module) Prefixes() [][]byte { return [][]byte{prefix} }
func (m *Module) Hash() uint64       { return m.digest }

// Create asks to add a hook.
func Create(d Def) module.Command { return module.Command{Kind: CmdCreate, Body: appendDef(nil, &d)} }

// Delete, Enable and Disable name one hook.
func Delete(name string) module.Command  { return nameCommand(CmdDelete, name) }
func Enable(name string) module.Command  { return nameCommand(CmdEnable, name) }
func Disable(name string) module.Command { return nameCommand(CmdDisable, name) }
func Get(name string) module.Command     { return nameCommand(QueryGet, name) }

// Trigger asks to deliver a synthetic event with key and value to hook name.
func Trigger(name string, key, value []byte) module.Command {
	b := module.AppendBytes(nil, []byte(name))
	b = module.AppendBytes(b, key)
	return module.Command{Kind: CmdTrigger, Body: module.AppendBytes(b, value)}
}

// List asks for at most n hooks named after after (n 0: the page size).
func List(after string, n int) module.Command {
	return module.Command{Kind: QueryList, Body: binary.AppendUvarint(module.AppendBytes(nil, []byte(after)), uint64(n))}
}

func nameCommand(kind byte, name string) module.Command {
	return module.Command{Kind: kind, Body: module.AppendBytes(nil, []byte(name))}
}

type triggerCmd struct {
	name       string
	key, value []byte
}

func decodeTrigger(body []byte) (triggerCmd, error) {
	r := &module.Reader{B: body}
	c := triggerCmd{name: r.String(), key: r.Bytes(), value: r.Bytes()}
	return c, done(r, "hook trigger")
}

func decodeName(body []byte) (string, error) {
	r := &module.Reader{B: body}
	name := r.String()
	return name, done(r, "hook name")
}

func decodeNames(body []byte) ([]string, error) {
	r := &module.Reader{B: body}
	var names []string
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		names = append(names, r.String())
	}
	return names, done(r, "hook pump")
}

func done(r *module.Reader, what string) error {
	if err := r.Done(what); err != nil {
		return fmt.Errorf("%w: %v", errInvalid, err)
	}
	return nil
}

// Validate refuses malformed commands before they are proposed, and the
// leader's pump from clients.
func (m *Module) Validate(kind byte, body []byte) module.Answer {
	var err error
	switch kind {
	case CmdCreate:
		r := &module.Reader{B: body}
		d := readDef(r)
		if err = done(r, "hook definition"); err == nil {
			err = m.checkDef(&d)
		}
	case CmdDelete, CmdEnable, CmdDisable:
		_, err = decodeName(body)
	case CmdTrigger:
		var c triggerCmd
		if c, err = decodeTrigger(body); err == nil && (len(c.key) > triggerKeyBytes || len(c.value) > m.limits.ValueInlineMax) {
			err = fmt.Errorf("%w: trigger key over %d bytes or value over %d", errInvalid, triggerKeyBytes, m.limits.ValueInlineMax)
		}
	default:
		err = fmt.Errorf("%w: hook command %d is the leader's own", errInvalid, kind)
	}
	if err != nil {
		return refusal(err)
	}
	return module.Answer{}
}

// checkDef checks a definition, and that the queue takes its deliveries'
// jobs (attempts, timeout, backoff within the queue's limits).
func (m *Module) checkDef(d *Def) error {
	if err := m.limits.check(d); err != nil {
		return err
	}
	if d.Handler.Kind == HandlerShell && !json.Valid(d.Handler.Grant) {
		return fmt.Errorf("%w: the shell handler's grant is not JSON", errInvalid)
	}
	if d.Handler.Kind == HandlerTopic {
		if m.topics == nil {
			return fmt.Errorf("%w: topics are not enabled", errInvalid)
		}
		return nil
	}
	h := &hook{Def: *d}
	return m.jobs.CheckSpec(h.spec(&Delivery{Kind: KindTrigger}))
}

// Publisher is the topics module as topic hooks need it (core/topics
// provides it): publish one message in the apply at hand.
type Publisher interface {
	HasTopic(name string) bool
	PublishEvent(env *module.Env, topic string, key, value []byte) error
}

// PublishTo connects the topics a topic hook publishes to.
func (m *Module) PublishTo(p Publisher) { m.topics = p }

// publishNow publishes delivery d of topic hook h in the change's own
// apply: the event is committed with the change or not at all, with no
// window between them. A topic that is gone or full counts the delivery
// failed; nothing is retried, the change is not refused.
func (m *Module) publishNow(env *module.Env, h *hook, d *Delivery, matched bool) {
	if matched {
		h.stats.Matched++
	}
	h.stats.Submitted++
	m.noteDelivery(h, d)
	if err := m.topics.PublishEvent(env, h.Handler.Topic, d.Key, h.payload(d)); err != nil {
		h.stats.Failed++
	} else {
		h.stats.Delivered++
	}
	m.noteSubmit(h, d, 0)
}

// Apply applies one hook command at replicated time env.NowNs.
func (m *Module) Apply(env *module.Env, kind byte, body []byte) module.Answer {
	if m.plantApply(env, kind, body) {
		return module.Answer{}
	}
	if kind == CmdPump {
		names, err := decodeNames(body)
		assert.That(err == nil, "hook pump at %d does not decode: %v", env.Index, err)
		for _, name := range names {
			if h := m.hooks[name]; h != nil && !h.Disabled {
				m.touch(env, h, func() { m.pump(env, h) })
			}
			delete(m.asked, name)
		}
		return module.Answer{}
	}
	h, err := m.apply(env, kind, body)
	if err != nil {
		return refusal(err)
	}
	return answer(Answer{Hooks: []Hook{h.view()}})
}

func (m *Module) apply(env *module.Env, kind byte, body []byte) (*hook, error) {
	if kind == CmdCreate {
		r := &module.Reader{B: body}
		d := readDef(r)
		assert.That(r.Done("hook definition") == nil, "hook create at %d does not decode", env.Index)
		return m.create(env, d)
	}
	if kind == CmdTrigger {
		c, err := decodeTrigger(body)
		assert.That(err == nil, "hook trigger at %d does not decode: %v", env.Index, err)
		return m.trigger(env, c)
	}
	name, err := decodeName(body)
	assert.That(err == nil, "hook command %d at %d does not decode: %v", kind, env.Index, err)
	h := m.hooks[name]
	if h == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	switch kind {
	case CmdDelete:
		m.remove(env, h)
	case CmdEnable, CmdDisable:
		m.touch(env, h, func() {
			h.Disabled = kind == CmdDisable
			m.reorder()
			if !h.Disabled {
				m.pump(env, h)
			}
		})
		m.note(h.Name, nil)
	}
	return h, nil
}

func (m *Module) create(env *module.Env, d Def) (*hook, error) {
	if err := m.checkDef(&d); err != nil {
		return nil, err
	}
	if m.hooks[d.Name] != nil {
		return nil, fmt.Errorf("%w: %q", ErrExists, d.Name)
	}
	if d.Handler.Kind == HandlerTopic && !m.topics.HasTopic(d.Handler.Topic) {
		return nil, fmt.Errorf("%w: topic %q does not exist", ErrNotFound, d.Handler.Topic)
	}
	if len(m.hooks) >= m.limits.HooksMax {
		return nil, fmt.Errorf("%w: %d held", ErrFull, len(m.hooks))
	}
	h := &hook{Def: d, createdNs: env.NowNs, tokensMilli: d.Burst * 1000, refillNs: env.NowNs}
	m.hooks[d.Name] = h
	m.reorder()
	m.save(env.Batch, h)
	m.note(h.Name, nil)
	return h, nil
}

func (m *Module) trigger(env *module.Env, c triggerCmd) (*hook, error) {
	h := m.hooks[c.name]
	switch {
	case h == nil:
		return nil, fmt.Errorf("%w: %q", ErrNotFound, c.name)
	case h.Disabled:
		return nil, fmt.Errorf("%w: hook %q is disabled", errState, c.name)
	case h.lagging || len(h.backlog) >= m.limits.BacklogMax:
		// A synthetic event has no revision a resync could cover: it
		// would pass into the lag as revision 0 and be lost.
		return nil, fmt.Errorf("%w: hook %q's backlog is full", errState, c.name)
	}
	d := Delivery{Kind: KindTrigger, Key: clone(c.key), Value: clone(c.value), ValueSize: int64(len(c.value)), AtNs: env.NowNs, Index: env.Index}
	if h.Handler.Kind == HandlerTopic {
		m.touch(env, h, func() { m.publishNow(env, h, &d, false) })
		return h, nil
	}
	m.touch(env, h, func() { m.enqueue(env, h, d, false) })
	return h, nil
}

// remove deletes a hook and its backlog. Deliveries already in the queue
// run on: they are jobs now.
func (m *Module) remove(env *module.Env, h *hook) {
	for i := range h.backlog {
		m.digest ^= deliveryHash(h.Name, &h.backlog[i])
		env.Batch.Delete(queueKey(h.Name, h.backlog[i].Seq))
	}
	m.digest ^= h.sum
	env.Batch.Delete(hookKey(h.Name))
	delete(m.hooks, h.Name)
	delete(m.asked, h.Name)
	m.reorder()
	m.note(h.Name, nil)
}

// reorder rebuilds the list of enabled hooks changes are matched against.
func (m *Module) reorder() {
	m.order = m.order[:0]
	for _, name := range sortedNames(m.hooks) {
		if h := m.hooks[name]; !h.Disabled {
			m.order = append(m.order, h)
		}
	}
}

// Changed matches a committed change against every enabled hook, in the
// change's own apply (kv.Observer).
func (m *Module) Changed(env *module.Env, e *kv.Event) {
	if len(m.order) == 0 {
		return
	}
	kind := OnPut
	if e.Deleted {
		kind = OnDelete
		if e.Expired {
			kind = OnExpire
		}
	}
	// A put creates the key when it takes the key's create revision: a txn
	// that writes a new key twice leaves version 2, and one that deletes
	// and writes a key again leaves version 1 on a key that was there.
	created := !e.Deleted && e.Record.CreateRev == e.Revision
	for _, h := range m.order {
		if h.matches(e.Key, kind, created) {
			if d := m.deliveryOf(env, e, kind); h.Handler.Kind == HandlerTopic {
				m.touch(env, h, func() { m.publishNow(env, h, &d, true) })
			} else if m.plantMatched(h, &d) {
				m.touch(env, h, func() { m.enqueue(env, h, d, true) })
			}
		}
	}
}

func (m *Module) deliveryOf(env *module.Env, e *kv.Event, kind uint8) Delivery {
	d := Delivery{Revision: e.Revision, Key: e.Key, AtNs: env.NowNs, Index: env.Index}
	switch kind {
	case OnPut:
		d.Kind, d.CreateRev, d.ModRev, d.Version = KindPut, e.Record.CreateRev, e.Record.ModRev, e.Record.Version
		d.ValueSize = int64(len(e.Record.Value))
		if len(e.Record.Value) <= m.limits.ValueInlineMax {
			d.Value = e.Record.Value
		} else {
			sum := sha256.Sum256(e.Record.Value)
			d.ValueSHA = sum[:]
		}
	case OnDelete:
		d.Kind = KindDelete
	case OnExpire:
		d.Kind = KindExpire
	}
	return d
}

// enqueue adds a delivery to hook h's backlog, or lets it pass into the
// lag range when the backlog is full, then hands what it can to the queue.
func (m *Module) enqueue(env *module.Env, h *hook, d Delivery, matched bool) {
	if matched {
		h.stats.Matched++
	}
	if h.lagging {
		m.endLag(env, h)
	}
	if full := h.lagging || len(h.backlog) >= m.limits.BacklogMax; full && m.plantDropWhenFull() {
		m.pump(env, h)
		return
	}
	if h.lagging || len(h.backlog) >= m.limits.BacklogMax {
		if !h.lagging {
			h.lagging, h.lagFrom = true, d.Revision
		}
		h.lagTo, h.passIndex = d.Revision, env.Index
		h.stats.Lagged++
		m.notePass(h, &d)
	} else {
		d.Key, d.Value = clone(d.Key), clone(d.Value) // the event's bytes belong to the KV store
		m.push(h, d)
	}
	m.pump(env, h)
}

// push appends d to h's backlog with the next sequence number.
func (m *Module) push(h *hook, d Delivery) {
	d.Seq = h.nextSeq
	h.nextSeq++
	h.backlog = append(h.backlog, d)
	m.digest ^= deliveryHash(h.Name, &h.backlog[len(h.backlog)-1])
	m.noteDelivery(h, &h.backlog[len(h.backlog)-1])
}

// endLag enqueues the resync delivery of a lagging hook whose backlog has room.
func (m *Module) endLag(env *module.Env, h *hook) {
	if !h.lagging || len(h.backlog) >= m.limits.BacklogMax || h.passIndex == env.Index {
		return
	}
	d := Delivery{Kind: KindResync, Revision: h.lagTo, FromRev: h.lagFrom, ToRev: h.lagTo, AtNs: env.NowNs, Index: env.Index}
	h.lagging, h.lagFrom, h.lagTo = false, 0, 0
	h.stats.Resyncs++
	m.push(h, d)
}

// pump forgets finished deliveries, ends a lag the backlog has room for,
// and hands deliveries to the queue while the hook's bounds allow; callers
// run it inside touch. The backlog's records are written only for the
// deliveries still waiting: one handed over in the apply that made it
// never touches the disk as a delivery.
func (m *Module) pump(env *module.Env, h *hook) {
	h.reap(m.jobs)
	m.endLag(env, h)
	for len(h.backlog) > 0 && len(h.flights) < h.inFlight() && !h.Disabled {
		if !h.takeToken(env.NowNs) {
			break
		}
		d := &h.backlog[0]
		spec := h.spec(d)
		if m.jobs.CheckSpec(spec) != nil {
			// The queue can never take this one (a payload over its limit):
			// counted failed and passed, so that it cannot stall the hook.
			h.stats.Failed++
			m.noteSubmit(h, d, 0)
			m.pop(env, h)
			continue
		}
		id, _, err := m.jobs.SubmitFrom(env, spec)
		if err != nil { // the queue is full: the leader pumps again later
			if h.RatePerSec > 0 {
				h.tokensMilli += 1000 // the token taken above
			}
			break
		}
		h.flights = append(h.flights, flight{Job: id, Rev: d.Revision, AtNs: d.AtNs})
		h.stats.Submitted++
		m.noteSubmit(h, d, id)
		m.pop(env, h)
	}
	if len(h.backlog) == 0 {
		h.backlog = nil // let the array go
	}
	for i := range h.backlog {
		if d := &h.backlog[i]; !d.stored {
			env.Batch.Put(queueKey(h.Name, d.Seq), appendDelivery(nil, d))
			d.stored = true
		}
	}
}

// pop removes the head of h's backlog, and its record if it has one.
func (m *Module) pop(env *module.Env, h *hook) {
	d := &h.backlog[0]
	m.digest ^= deliveryHash(h.Name, d)
	if d.stored {
		env.Batch.Delete(queueKey(h.Name, d.Seq))
	}
	h.backlog[0] = Delivery{}
	h.backlog = h.backlog[1:]
}

// touch runs fn, which changes hook h, keeping the digest in step and
// saving the hook's record.
func (m *Module) touch(env *module.Env, h *hook, fn func()) {
	fn()
	m.save(env.Batch, h)
}

// Due proposes, on the leader, a pump for each enabled hook that has work
// its bounds now allow: a delivery in flight that finished, a waiting one
// the bucket and the in-flight bound let start, or a lag with room to end.
func (m *Module) Due(l module.Leader) []module.Command {
	planted := m.plantDue(l)
	var names []string
	for _, h := range m.order {
		if len(h.backlog) == 0 && len(h.flights) == 0 && !h.lagging {
			continue
		}
		if at, ok := m.asked[h.Name]; ok && l.NowNs-at < proposeRetryNs {
			continue
		}
		if h.finishedAny(m.jobs) || h.canStart(l.NowNs) || h.lagging && len(h.backlog) < m.limits.BacklogMax {
			m.asked[h.Name] = l.NowNs
			if names = append(names, h.Name); len(names) == pumpBatchMax {
				break
			}
		}
	}
	if len(names) == 0 {
		return planted
	}
	b := binary.AppendUvarint(nil, uint64(len(names)))
	for _, n := range names {
		b = module.AppendBytes(b, []byte(n))
	}
	return append(planted, module.Command{Kind: CmdPump, Body: b})
}

// errState refuses a command the hook is not in a state for.
var errState = errors.New("hook is not in a state for this")

// refusal maps the table's errors onto outcomes; the job queue's come as
// *module.Error and keep theirs.
func refusal(err error) module.Answer {
	var me *module.Error
	switch {
	case errors.As(err, &me):
		return module.Refuse(me.Outcome, err)
	case errors.Is(err, ErrNotFound):
		return module.Refuse(module.NotFound, err)
	case errors.Is(err, ErrExists), errors.Is(err, errState):
		return module.Refuse(module.Conflict, err)
	case errors.Is(err, ErrFull):
		return module.Refuse(module.TooLarge, err)
	}
	return module.Refuse(module.Invalid, err)
}

// Answer is the reply to a command or query.
type Answer struct {
	Hooks []Hook // the hook a command touched, or a page of a list
	Next  string // list: pass as after for the next page; "" at the end
}

func answer(a Answer) module.Answer { return module.Answer{Data: a.Encode(), Value: a} }

// answerVersion opens an encoded answer, clear of the host's refusal mark.
const answerVersion = 1

// Encode lays the answer out hook by hook.
func (a Answer) Encode() []byte {
	b := binary.AppendUvarint([]byte{answerVersion}, uint64(len(a.Hooks)))
	for i := range a.Hooks {
		b = appendView(b, &a.Hooks[i])
	}
	return module.AppendBytes(b, []byte(a.Next))
}

func appendView(b []byte, v *Hook) []byte {
	b = appendDef(b, &v.Def)
	for _, x := range []int64{v.CreatedNs, int64(v.Backlog), int64(v.InFlight), v.LagFrom, v.LagTo, v.OldestRev, v.OldestNs} {
		b = binary.AppendVarint(b, x)
	}
	b = appendFlag(b, v.Lagging)
	for _, p := range v.Stats.fields() {
		b = binary.AppendUvarint(b, *p)
	}
	return b
}

func readView(r *module.Reader) Hook {
	v := Hook{Def: readDef(r)}
	var backlog, inflight int64
	v.CreatedNs, backlog, inflight, v.LagFrom, v.LagTo, v.OldestRev, v.OldestNs = r.Varint(), r.Varint(), r.Varint(), r.Varint(), r.Varint(), r.Varint(), r.Varint()
	v.Backlog, v.InFlight, v.Lagging = int(backlog), int(inflight), readFlag(r)
	for _, p := range v.Stats.fields() {
		*p = r.Uvarint()
	}
	return v
}

// DecodeAnswer reads what Answer.Encode wrote.
func DecodeAnswer(b []byte) (Answer, error) {
	if len(b) == 0 || b[0] != answerVersion {
		return Answer{}, fmt.Errorf("hook answer: %w: version", module.ErrMalformed)
	}
	r := &module.Reader{B: b[1:]}
	var a Answer
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		a.Hooks = append(a.Hooks, readView(r))
	}
	a.Next = r.String()
	return a, r.Done("hook answer")
}

func (m *Module) DecodeAnswer(data []byte) (any, error) { return DecodeAnswer(data) }

// Query answers get and list.
func (m *Module) Query(kind byte, body []byte, _ int64) module.Answer {
	if kind == QueryGet {
		name, err := decodeName(body)
		if err != nil {
			return refusal(err)
		}
		h := m.hooks[name]
		if h == nil {
			return refusal(fmt.Errorf("%w: %q", ErrNotFound, name))
		}
		return answer(Answer{Hooks: []Hook{h.view()}})
	}
	r := &module.Reader{B: body}
	after, n := r.String(), r.Uvarint()
	if err := done(r, "hook list"); err != nil {
		return refusal(err)
	}
	if n == 0 || n > uint64(m.limits.ListMax) {
		n = uint64(m.limits.ListMax)
	}
	var a Answer
	names := sortedNames(m.hooks)
	for _, name := range names[sortSearch(names, after):] {
		if uint64(len(a.Hooks)) == n {
			a.Next = a.Hooks[len(a.Hooks)-1].Name
			break
		}
		a.Hooks = append(a.Hooks, m.hooks[name].view())
	}
	return answer(a)
}

// sortSearch is the index of the first name after after.
func sortSearch(names []string, after string) int {
	i, found := slices.BinarySearch(names, after)
	if found {
		i++
	}
	return i
}

// Hooks returns every hook's view, by name: for the node's metrics.
func (m *Module) Hooks() []Hook {
	out := make([]Hook, 0, len(m.hooks))
	for _, name := range sortedNames(m.hooks) {
		out = append(out, m.hooks[name].view())
	}
	return out
}

func hookKey(name string) []byte {
	return append(append(make([]byte, 0, len(prefixHook)+len(name)), prefixHook...), name...)
}

func queueKey(name string, seq uint64) []byte {
	b := append(append(make([]byte, 0, len(prefixQueue)+len(name)+9), prefixQueue...), name...)
	return binary.BigEndian.AppendUint64(append(b, '/'), seq)
}

func hookHash(record []byte) uint64 { return digest([]byte("hook"), record) }

func deliveryHash(name string, d *Delivery) uint64 {
	return digest([]byte("delivery"), []byte(name), appendDelivery(nil, d))
}

// save writes hook h's record and moves the digest from the hook's last
// record to this one: the hook is encoded once per change.
func (m *Module) save(b *storage.Batch, h *hook) {
	rec := appendHook(nil, h)
	m.digest ^= h.sum
	h.sum = hookHash(rec)
	m.digest ^= h.sum
	b.Put(hookKey(h.Name), rec)
}
