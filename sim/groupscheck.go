package sim

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/aspen-db/aspen/core/groups"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/topics"
)

// groupsChecker follows the consumer groups through the changes replicas
// report (groups.Change in node.Applied.Reports), read once per index from
// the first replica to apply it; every other replica must report the same
// changes at the same index. From them it keeps, per group, the owner of
// every partition, the generation, each member's epoch (the generation it
// joined, released at, or last gained a partition at, as the module sets
// it), the committed offsets, and every message's latest lease. It checks:
//
//   - ownership moves only through release: a partition passes from one
//     member to another in one entry only when the first released it (its
//     heartbeat) or owns nothing after it (it left or expired), and the
//     generation goes up with every change;
//   - a commit comes from the partition's owner under that owner's epoch
//     (no stale generation accepted), and committed offsets never go
//     backwards except by a reset;
//   - a lease is delivered in order (delivery numbers counting up), and an
//     ack is accepted only for the latest delivery of a message, by the
//     member holding it, before its deadline (unless a leader's grace
//     applied since, which may have moved the deadline); an ack a member
//     saw acknowledged was reported settled, and an ack it saw refused was
//     refused rightly: the lease had moved on (delivered again, settled,
//     dead, or past its deadline by the time of the answer);
//   - at the end, every message its topic ever held was processed by some
//     member of the group (recorded when the member processed it), or, in
//     the competing group, went to the dead letters; and the converged
//     replica shows no lag: committed offsets at each partition's end
//     (partitioned), nothing unsettled (competing).
//
// Each kind of violation is reported three times at most.
type groupsChecker struct {
	seenMax   uint64
	timeNs    int64  // replicated time of the highest index seen
	graceIdx  uint64 // the last grace entry applied
	changes   map[uint64][]groups.Change
	models    map[string]*cgroupModel
	processed map[groupMsg]bool
	classes   map[string]int
}

type groupMsg struct {
	group string
	p     int
	off   uint64
}

type cgroupModel struct {
	owners  []string
	gen     uint64
	epoch   map[string]uint64
	offsets []uint64
	leases  map[groupMsg]*leaseRecord // group unused
	dead    map[groupMsg]bool
}

type leaseRecord struct {
	delivery   uint32
	member     string
	deadlineNs int64
	index      uint64
	settled    bool
}

func (w *World) newGroupsChecker() {
	w.gpc = &groupsChecker{changes: map[uint64][]groups.Change{}, models: map[string]*cgroupModel{},
		processed: map[groupMsg]bool{}, classes: map[string]int{}}
}

func (w *World) groupFail(kind, format string, args ...any) {
	if w.gpc.classes[kind]++; w.gpc.classes[kind] <= topicViolationsPerKind {
		w.check.fail(format, args...)
	}
}

func groupChangesOf(a *node.Applied) []groups.Change {
	for _, r := range a.Reports {
		if c, ok := r.([]groups.Change); ok {
			return c
		}
	}
	return nil
}

// groupRecords reads a replica's applied records, as topicRecords does.
func (w *World) groupRecords(sn *simNode, recs []node.Applied) {
	gc := w.gpc
	for i := range recs {
		a := &recs[i]
		cs := groupChangesOf(a)
		if a.Index <= gc.seenMax {
			if first := gc.changes[a.Index]; !reflect.DeepEqual(first, cs) && len(first)+len(cs) > 0 {
				w.groupFail("replicas", "replicas report group changes differently at index %d: node %d %s, the first to apply it %s",
					a.Index, sn.id, describeGroupChanges(cs), describeGroupChanges(first))
			}
			continue
		}
		gc.seenMax, gc.timeNs = a.Index, a.TimeNs
		if a.Kind == groups.CmdGrace {
			gc.graceIdx = a.Index
		}
		if len(cs) > 0 {
			gc.changes[a.Index] = cs
		}
		for j := range cs {
			w.groupApplied(a, &cs[j])
		}
	}
}

func describeGroupChanges(cs []groups.Change) string {
	var s string
	for _, c := range cs {
		switch {
		case c.Owners != nil:
			s += fmt.Sprintf("[%s gen %d owners %v by %q]", c.Group, c.Generation, c.Owners, c.Member)
		case c.Offset != nil:
			s += fmt.Sprintf("[%s commit %d@%d by %q gen %d reset %v]", c.Group, c.P, *c.Offset, c.Member, c.Generation, c.Reset)
		case c.Delivered != nil:
			s += fmt.Sprintf("[%s deliver %d/%d #%d to %q]", c.Group, c.Delivered.P, c.Delivered.Off, c.Delivered.Delivery, c.Member)
		case c.Settled != nil:
			s += fmt.Sprintf("[%s ack %d/%d #%d]", c.Group, c.Settled.P, c.Settled.Off, c.Settled.Delivery)
		case c.Dead != nil:
			s += fmt.Sprintf("[%s dead %d/%d]", c.Group, c.Dead.P, c.Dead.Off)
		case c.Deleted:
			s += fmt.Sprintf("[%s deleted]", c.Group)
		}
	}
	return s
}

// groupApplied moves the model over one change of entry a.
func (w *World) groupApplied(a *node.Applied, c *groups.Change) {
	gc := w.gpc
	gm := gc.models[c.Group]
	if c.Deleted {
		delete(gc.models, c.Group)
		return
	}
	if gm == nil {
		if c.Owners == nil {
			w.groupFail("unknown", "index %d changed group %q, which no entry created", a.Index, c.Group)
			return
		}
		gm = &cgroupModel{owners: make([]string, len(c.Owners)), epoch: map[string]uint64{}, offsets: make([]uint64, len(c.Owners)),
			leases: map[groupMsg]*leaseRecord{}, dead: map[groupMsg]bool{}}
		gc.models[c.Group] = gm
	}
	switch {
	case c.Owners != nil:
		w.groupOwners(a, gm, c)
	case c.Offset != nil:
		w.groupOffset(a, gm, c)
	case c.Delivered != nil:
		k := groupMsg{p: c.Delivered.P, off: c.Delivered.Off}
		prev := gm.leases[k]
		if want := uint32(1); prev != nil && c.Delivered.Delivery != prev.delivery+1 || prev == nil && c.Delivered.Delivery != want {
			w.groupFail("delivery", "group %s delivered %d/%d as delivery %d at index %d, after delivery %v", c.Group, k.p, k.off, c.Delivered.Delivery, a.Index, prev)
		}
		gm.leases[k] = &leaseRecord{delivery: c.Delivered.Delivery, member: c.Member, deadlineNs: c.Delivered.DeadlineNs, index: a.Index}
	case c.Settled != nil:
		k := groupMsg{p: c.Settled.P, off: c.Settled.Off}
		l := gm.leases[k]
		switch {
		case l == nil || l.delivery != c.Settled.Delivery || l.member != c.Member || l.settled:
			w.groupFail("ack", "ack after the lease moved on accepted: group %s acked %d/%d delivery %d by %q at index %d, the lease is %+v",
				c.Group, k.p, k.off, c.Settled.Delivery, c.Member, a.Index, l)
		case a.TimeNs >= l.deadlineNs && gc.graceIdx < l.index:
			w.groupFail("ack", "ack after the ack wait accepted: group %s acked %d/%d delivery %d at index %d (time %d), the lease ended at %d",
				c.Group, k.p, k.off, c.Settled.Delivery, a.Index, a.TimeNs, l.deadlineNs)
		}
		if l != nil {
			l.settled = true
		}
	case c.Dead != nil:
		gm.dead[groupMsg{p: c.Dead.P, off: c.Dead.Off}] = true
		w.res.GroupDead++
	}
}

// groupOwners takes an owners change: ownership moves only through a
// release, and each member that gains a partition, joins or releases takes
// the generation as its epoch.
func (w *World) groupOwners(a *node.Applied, gm *cgroupModel, c *groups.Change) {
	if len(c.Owners) != len(gm.owners) || c.Generation <= gm.gen && gm.gen != 0 {
		w.groupFail("owners", "group %s at index %d: owners of %d partitions at generation %d, after %d partitions at generation %d",
			c.Group, a.Index, len(c.Owners), c.Generation, len(gm.owners), gm.gen)
		return
	}
	for p, o := range c.Owners {
		prev := gm.owners[p]
		if o == prev || o == "" {
			continue
		}
		released := a.Kind == groups.CmdHeartbeat && c.Member == prev
		if prev != "" && !released && slices.Contains(c.Owners, prev) {
			w.groupFail("owners", "two live members own partition %d of group %s in generation %d: %q took it from %q, which neither released it nor left (index %d)",
				p, c.Group, c.Generation, o, prev, a.Index)
		}
		gm.epoch[o] = c.Generation
	}
	if c.Member != "" && (a.Kind == groups.CmdJoin || a.Kind == groups.CmdHeartbeat) {
		gm.epoch[c.Member] = c.Generation
	}
	copy(gm.owners, c.Owners)
	gm.gen = c.Generation
}

// groupOffset takes a commit or a reset.
func (w *World) groupOffset(a *node.Applied, gm *cgroupModel, c *groups.Change) {
	if c.P < 0 || c.P >= len(gm.offsets) {
		w.groupFail("offset", "group %s at index %d: offset of partition %d", c.Group, a.Index, c.P)
		return
	}
	if !c.Reset {
		if o := gm.owners[c.P]; o != c.Member {
			w.groupFail("stale", "commit by a non-owner accepted: group %s partition %d committed to %d by %q at index %d, owned by %q",
				c.Group, c.P, *c.Offset, c.Member, a.Index, o)
		} else if e := gm.epoch[c.Member]; e != c.Generation {
			w.groupFail("stale", "commit from a stale generation accepted: group %s partition %d committed to %d by %q under generation %d at index %d, its generation is %d",
				c.Group, c.P, *c.Offset, c.Member, c.Generation, a.Index, e)
		}
		if *c.Offset < gm.offsets[c.P] {
			w.groupFail("backwards", "committed offset went backwards: group %s partition %d from %d to %d at index %d", c.Group, c.P, gm.offsets[c.P], *c.Offset, a.Index)
		}
	}
	gm.offsets[c.P] = *c.Offset
}

// process records that member m processed msg.
func (gc *groupsChecker) process(w *World, m *memberState, msg topics.Message) {
	g := groupShapes[m.group]
	if msg.Topic != topicName(g.topic) {
		w.groupFail("topic", "member %s of %s processed a message of %s (%q)", m.id, g.name, msg.Topic, msg.Value)
		return
	}
	w.topicObserve(msg, "member "+m.id)
	gc.processed[groupMsg{group: g.name, p: msg.Partition, off: msg.Offset}] = true
	w.res.GroupProcessed++
}

// publishedBefore reports whether msg's publish was sent before atNs.
func (gc *groupsChecker) publishedBefore(w *World, msg topics.Message, atNs int64) bool {
	pub, _, ok := parseTopicValue(msg.Value)
	return ok && pub < len(w.tpc.pubs) && w.tpc.pubs[pub].sentAt < atNs
}

// settled checks a settle's answer (accepted, else refused with err)
// against the lease the reports show.
func (gc *groupsChecker) settled(w *World, m *memberState, it groups.SettleItem, accepted bool, err error) {
	if it.Verb != groups.Ack {
		return
	}
	name := groupShapes[m.group].name
	gm := gc.models[name]
	if gm == nil {
		return
	}
	h := it.Handle
	l := gm.leases[groupMsg{p: h.P, off: h.Off}]
	mine := l != nil && l.delivery == h.Delivery && l.member == m.id
	switch {
	case accepted && !(mine && l.settled):
		w.groupFail("ack", "member %s's ack of %d/%d delivery %d was acknowledged, but no replica reported it settled (lease %+v)", m.id, h.P, h.Off, h.Delivery, l)
	case accepted:
	case mine && !l.settled && !gm.dead[groupMsg{p: h.P, off: h.Off}] && l.deadlineNs > gc.timeNs:
		w.groupFail("ack", "member %s's ack of %d/%d delivery %d was refused (%v) while its lease stood until %d (time now %d)", m.id, h.P, h.Off, h.Delivery, err, l.deadlineNs, gc.timeNs)
	default:
		w.res.GroupRefusedAcks++
	}
}

// settledBatch checks a batch settle's answer item by item, as settled
// checks one; a batch refused whole (it never is: its items are well
// formed) refused each of them.
func (gc *groupsChecker) settledBatch(w *World, m *memberState, op *topicOp, r node.Response) {
	gans, _ := r.Value.(groups.Answer)
	if r.Outcome == node.OK && len(gans.Items) != len(op.items) {
		w.groupFail("batch", "member %s's batch of %d settles was answered with %d items", m.id, len(op.items), len(gans.Items))
		return
	}
	w.res.GroupBatchItems += len(op.items)
	for i, it := range op.items {
		if r.Outcome != node.OK {
			gc.settled(w, m, it, false, r.Err())
			continue
		}
		gc.settled(w, m, it, gans.Items[i].Outcome == module.OK, errors.New(gans.Items[i].Detail))
	}
}

// checkGroupsEnd runs after the healed phase on the first live replica:
// every message delivered (or dead), no lag.
func (w *World) checkGroupsEnd() {
	var sn *simNode
	for _, n := range w.nodes {
		if !n.gone && n.n != nil {
			sn = n
			break
		}
	}
	if sn == nil {
		return
	}
	mod := sn.n.Hosted("groups").(*groups.Module)
	for _, g := range groupShapes {
		tm := w.tpc.topics[topicName(g.topic)]
		gm := w.gpc.models[g.name]
		if tm == nil || gm == nil {
			w.groupFail("end", "group %s or its topic was never created", g.name)
			continue
		}
		w.checkDelivered(g.name, g.mode, tm, gm)
		ans := mod.Query(groups.QueryDescribe, groups.Describe(g.name).Body, 0)
		ga, ok := ans.Value.(groups.Answer)
		if !ok || len(ga.Groups) != 1 {
			w.groupFail("end", "node %d cannot describe group %s at the end: %s", sn.id, g.name, ans.Detail)
			continue
		}
		v := ga.Groups[0]
		for _, pv := range v.Offsets {
			if pv.Offset != pv.End {
				w.groupFail("lag", "group %s partition %d has lag %d after heal: offset %d, end %d (node %d)", g.name, pv.P, pv.Lag, pv.Offset, pv.End, sn.id)
			}
			if g.mode == groups.Partitioned && pv.P < len(gm.offsets) && gm.offsets[pv.P] != pv.Offset {
				w.groupFail("end", "group %s partition %d: node %d holds offset %d, the reports say %d", g.name, pv.P, sn.id, pv.Offset, gm.offsets[pv.P])
			}
		}
		if v.Pending != 0 {
			w.groupFail("lag", "group %s has %d messages unsettled after heal (node %d)", g.name, v.Pending, sn.id)
		}
	}
}

// checkDelivered: every message the topic ever held was processed by a
// member, or is a dead letter.
func (w *World) checkDelivered(name string, mode groups.Mode, tm *topicModel, gm *cgroupModel) {
	for p := range tm.parts {
		for off := uint64(0); off < tm.parts[p].end(); off++ {
			if w.gpc.processed[groupMsg{group: name, p: p, off: off}] || mode == groups.Competing && gm.dead[groupMsg{p: p, off: off}] {
				continue
			}
			w.groupFail("undelivered", "message at %s/%d offset %d (index %d) was never processed by group %s nor dead-lettered after heal",
				tm.def.Name, p, off, tm.parts[p].slots[off].index, name)
		}
	}
}
