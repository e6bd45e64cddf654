package node

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/audit"
	"github.com/aspen-db/aspen/core/groups"
	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/locks"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/sched"
	"github.com/aspen-db/aspen/core/session"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/core/tokens"
	"github.com/aspen-db/aspen/core/topics"
)

// hosted is the replicated state a replica hosts (core/module): the KV store
// and the client sessions, which the host itself uses, membership, and every
// module on top of them.
type hosted struct {
	kv       *kv.Module
	sessions *session.Table
	members  *membersModule
	states   []module.State // in snapshot section order

	byKind    [128]module.Module
	queries   [128]module.Querier
	proposers []module.Proposer
	reporters []module.Reporter
	reporting bool // a driver asked for applied records: switch reports on
}

// newHosted builds the replicated state of a replica with cfg, empty. Adding a
// module is one line in the list below; the order is the snapshot's.
func newHosted(cfg Config) *hosted {
	kvm := kv.NewModule(kvWithBugs(cfg.Bugs))
	jobsm := jobsWithBugs(cfg)
	hooksm := hooks.NewModule(cfg.Hooks, jobsm)
	hooksm.Bugs = cfg.Bugs
	kvm.Observe(hooksm)
	topicsm := topics.NewModule(cfg.Topics)
	hooksm.PublishTo(topicsm)
	kvm.UsePublisher(topicsm)
	groupsm := groups.NewModule(cfg.Groups, topicsm)
	groupsm.Bugs = cfg.Bugs
	leasesm := lease.NewModule(cfg.Leases, kvm)
	h := &hosted{kv: kvm, sessions: session.NewTable(cfg.SessionsMax), members: newMembersModule(), reporting: cfg.AppliedRecordsEnabled}
	h.register(
		kvm,
		sessionsState{h.sessions},
		h.members,
		leasesm,
		locks.NewModule(cfg.Locks, kvm, leasesm), // after the KV store and leases: it loads from both
		jobsm,
		sched.NewModule(cfg.Schedules, jobsm),
		tokens.NewModule(),
		audit.NewModule(audit.DefaultLimits()),
		hooksm,
		topicsm,
		groupsm,
	)
	return h
}

func (h *hosted) register(states ...module.State) {
	for _, s := range states {
		for _, other := range h.states {
			assert.That(!prefixesOverlap(s.Prefixes(), other.Prefixes()), "records of %s and %s share a prefix: each would load the other's", s.Name(), other.Name())
		}
		h.states = append(h.states, s)
		if m, ok := s.(module.Module); ok {
			for _, k := range m.Kinds() {
				assert.That(k > 0 && k < cmdStamped && h.byKind[k] == nil && h.queries[k] == nil, "command kind %d of %s taken", k, s.Name())
				h.byKind[k] = m
			}
		}
		if q, ok := s.(module.Querier); ok {
			for _, k := range q.QueryKinds() {
				assert.That(k > 0 && k < cmdStamped && h.byKind[k] == nil && h.queries[k] == nil, "query kind %d of %s taken", k, s.Name())
				h.queries[k] = q
			}
		}
		if p, ok := s.(module.Proposer); ok {
			h.proposers = append(h.proposers, p)
		}
		if r, ok := s.(module.Reporter); ok && h.reporting {
			r.Report(true)
			h.reporters = append(h.reporters, r)
		}
	}
}

// prefixesOverlap reports whether a key could fall under one of a and one
// of b: one prefix starts with the other.
func prefixesOverlap(a, b [][]byte) bool {
	for _, x := range a {
		for _, y := range b {
			if bytes.HasPrefix(x, y) || bytes.HasPrefix(y, x) {
				return true
			}
		}
	}
	return false
}

// reports takes every module's report on the entry just applied. Only a
// driver that asked for applied records has reporters, and it takes them at
// every entry, so none piles up.
func (h *hosted) reports() []any {
	var out []any
	for _, r := range h.reporters {
		if rep := r.TakeReport(); rep != nil {
			out = append(out, rep)
		}
	}
	return out
}

// state returns the hosted state called name, or nil.
func (h *hosted) state(name string) module.State {
	for _, s := range h.states {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// hash digests every state, each in its own lane.
func (h *hosted) hash() uint64 {
	var d uint64
	for i, s := range h.states {
		d ^= s.Hash() * (0x9E3779B97F4A7C15 + 2*uint64(i))
	}
	return d
}

// sectionSpecs names the sections a snapshot of these states holds.
func (h *hosted) sectionSpecs() []section {
	specs := make([]section, 0, len(h.states)+1)
	for _, s := range h.states {
		specs = append(specs, section{tag: s.Name(), version: s.Version()})
	}
	return append(specs, section{tag: sectionTime, version: 1})
}

// knownSections is every section this version of aspen reads.
func knownSections() []section { return newHosted(DefaultConfig(1, nil)).sectionSpecs() }

// sessionsState is the client session table as replicated state, under
// prefixClient: one record per client.
type sessionsState struct{ t *session.Table }

func (s sessionsState) Name() string       { return "sessions" }
func (s sessionsState) Version() uint64    { return 1 }
func (s sessionsState) Prefixes() [][]byte { return [][]byte{prefixClient} }
func (s sessionsState) Hash() uint64       { return s.t.Hash() }

func (s sessionsState) Load(disk storage.Reader) error {
	return module.ScanRecords(disk, prefixClient, func(key, payload []byte) error {
		e, err := session.DecodeEntry(payload)
		if err != nil || len(key) != 8 {
			return fmt.Errorf("%w: session %x: %v", storage.ErrCorrupt, key, err)
		}
		s.t.Load(binary.BigEndian.Uint64(key), e)
		return nil
	})
}

func (s sessionsState) Persist(b *storage.Batch) {
	for _, id := range s.t.Clients() {
		e, _ := s.t.Get(id)
		b.Put(clientKey(id), session.EncodeEntry(e))
	}
}

func (s sessionsState) Clear(b *storage.Batch) {
	for _, id := range s.t.Clients() {
		b.Delete(clientKey(id))
	}
}

func (s sessionsState) Freeze() module.Frozen        { return module.Encoded(s.t.Snapshot()) }
func (s sessionsState) Restore(section []byte) error { return s.t.Restore(section) }

// jobsWithBugs is an empty job table carrying the planted defects, if any.
func jobsWithBugs(cfg Config) *jobs.Module {
	m := jobs.NewModule(cfg.Jobs)
	m.Bugs = cfg.Bugs
	return m
}
