// Package server drives one Aspen replica for real: Badger for its disk, TCP
// for its peers, HTTP for its clients, the wall clock for its ticks. It holds
// no logic of its own beyond I/O: the replica is core/node, the same code the
// simulator breaks.
package server

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/runtime/diskstore"
	"github.com/aspen-db/aspen/runtime/transport"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Config is one node's settings.
type Config struct {
	ID       uint64
	DataDir  string
	PeerAddr string            // where peers reach this node (also its listen address)
	HTTPAddr string            // where clients reach this node
	Cluster  map[uint64]string // initial members: id -> peer address, this node included
	Tick     time.Duration     // raft tick (default 100 ms)
	Logger   *slog.Logger
	// Join makes a node with an empty data dir wait to be added by the
	// cluster (aspen cluster add) instead of bootstrapping one; Cluster then
	// lists the members it can reach first.
	Join bool
	// Restore is a backup (aspen snapshot save) a new cluster starts from.
	Restore []byte
	// Profiling serves Go's profiler under /debug/pprof/. Off by default:
	// anyone who reaches the HTTP address could read stacks and profiles.
	Profiling bool

	// TokenKeyFile is the cluster key (aspen token keygen) that verifies
	// capability tokens and signed token and audit writes. Empty: the data
	// dir's token.key, which a node bootstrapping a cluster of one creates.
	TokenKeyFile string

	// Hooks are created once, when this node bootstraps a new cluster
	// (hookboot.go); later starts leave the cluster's hooks as they are.
	Hooks []HookRequest

	// Node tunes the replica; zero means node.DefaultConfig.
	Node *node.Config
}

// Server is a running node.
type Server struct {
	cfg Config
	key []byte // the cluster key, or nil (tokens.go)

	modulesReadAt time.Time // when the loop last read the modules' metrics (loop.go)
	// The members' replication progress as last read (loop.go), and when,
	// in which role: a new role reads it at once.
	progress       []node.PeerProgress
	progressRole   raft.StateType
	progressReadAt time.Time

	log     *slog.Logger
	node    *node.Node
	store   *diskstore.Store
	tr      *transport.Transport
	httpSrv *http.Server
	httpLn  net.Listener
	metrics *metrics
	hub     *hub
	// topicReaders wakes long-polling topic reads; topicsWokenAt is the
	// applied index the loop last woke them at (topicwait.go).
	topicReaders  *topicReaders
	topicsWokenAt uint64
	pool          *sessionPool
	// leadership wakes calls when the leader changes (calls.go).
	leadership *leadership
	// applied wakes blocking session queries as entries apply (consulblock.go).
	applied *appliedIndex

	inbox   chan func()
	waiters map[waitKey]chan node.Response // loop-owned
	status  atomic.Pointer[node.Status]
	members atomic.Pointer[[]node.Member]
	contact lastContact
	readSeq atomic.Uint64
	readID  uint64
	// electionTicks is the replica's election timeout in ticks, for the
	// status report: a new leader grants every lease that long.
	electionTicks int

	// ctx is canceled when the node stops, by Close or on its own; stop is
	// its Done channel, for selects.
	ctx    context.Context
	cancel context.CancelFunc
	stop   <-chan struct{}
	done   chan struct{} // closed once the loop has released ports and disk
	errMu  sync.Mutex
	err    error // why the node stopped on its own
	// closeErr is what the loop could not release; written before done closes.
	closeErr error

	// wg counts every goroutine the server starts and every HTTP handler in
	// flight (own, disown); Close waits for them. running counts the same,
	// for tests.
	ownMu      sync.Mutex
	ownClosed  bool // Close is waiting: nothing new may start
	wg         sync.WaitGroup
	running    atomic.Int64
	closeOnce  sync.Once
	closeValue error // what Close returns, every time
}

type waitKey struct{ client, seq uint64 }

// Start opens the disk, restores the replica, and starts serving peers and
// clients. A disk that fails its checksums is an error: the node does not start.
func Start(cfg Config) (*Server, error) {
	cfg = withDefaults(cfg)
	s := &Server{
		cfg: cfg, log: cfg.Logger, inbox: make(chan func(), inboxMax),
		waiters: map[waitKey]chan node.Response{}, done: make(chan struct{}),
		metrics: newMetrics(), hub: newHub(), topicReaders: newTopicReaders(), pool: newSessionPool(sessionsPerServer), leadership: newLeadership(),
		applied: newAppliedIndex(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.stop = s.ctx.Done()
	s.readID = randomID()
	opts := diskstore.DefaultOptions()
	opts.OnStateWrite = func(d time.Duration) { s.metrics.settle.Observe(d.Seconds()) }
	store, err := diskstore.Open(cfg.DataDir, opts)
	if err != nil {
		return nil, fmt.Errorf("open data dir %s: %w", cfg.DataDir, err)
	}
	s.store = store
	if s.key, err = loadKey(cfg); err != nil {
		return nil, errors.Join(err, store.Close())
	}
	if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, errors.Join(fmt.Errorf("listen for clients on %s: %w", cfg.HTTPAddr, err), store.Close())
	}
	if err := s.startReplica(); err != nil {
		return nil, errors.Join(err, s.httpLn.Close(), store.Close())
	}
	if err := s.startNetwork(); err != nil {
		return nil, errors.Join(err, s.httpLn.Close(), store.Close())
	}
	boot := s.node.Bootstrapped() // read before the loop owns the replica
	s.goOwned(s.loop)
	s.goOwned(s.advertise)
	if boot && len(cfg.Hooks) > 0 {
		s.goOwned(s.createBootHooks)
	}
	return s, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Tick == 0 {
		cfg.Tick = tickMsDefault * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

func (s *Server) startReplica() error {
	ncfg := node.DefaultConfig(s.cfg.ID, s.memberIDs())
	if s.cfg.Node != nil {
		ncfg = *s.cfg.Node
		ncfg.ID, ncfg.Peers = s.cfg.ID, s.memberIDs()
	}
	ncfg.TickNs = int64(s.cfg.Tick)
	ncfg.RequestTimeoutNs = requestTimeoutMs * int64(time.Millisecond)
	ncfg.ReadRetryNs = int64(ncfg.ElectionTicks) * int64(s.cfg.Tick)
	s.electionTicks = ncfg.ElectionTicks
	ncfg.EventsEnabled = true
	ncfg.SnapshotEntries, ncfg.CompactKeepEntries = snapshotEntries, compactKeepEntries
	ncfg.SnapshotBytes, ncfg.CompactKeepBytes = snapshotBytes, compactKeepBytes
	ncfg.Join, ncfg.Restore = s.cfg.Join, s.cfg.Restore
	// Only what every member's flags agree on goes into the bootstrap state;
	// client addresses are advertised once running (advertise).
	for _, id := range s.memberIDs() {
		ncfg.Members = append(ncfg.Members, node.Member{ID: id, PeerAddr: s.cfg.Cluster[id]})
	}
	rng := rand.New(rand.NewPCG(randomID(), randomID()))
	n, err := node.New(ncfg, rng, s.store)
	if err != nil {
		return fmt.Errorf("node %d: restore from %s: %w", s.cfg.ID, s.cfg.DataDir, err)
	}
	s.node = n
	if n.Removed() {
		return fmt.Errorf("node %d was removed from its cluster; its data dir %s cannot serve again", s.cfg.ID, s.cfg.DataDir)
	}
	st := n.Status()
	s.status.Store(&st)
	s.hub.reset(st.Revision)
	s.storeMembers()
	return nil
}

func (s *Server) memberIDs() []uint64 {
	ids := make([]uint64, 0, len(s.cfg.Cluster))
	for id := range s.cfg.Cluster {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func (s *Server) startNetwork() error {
	peers := map[uint64]string{}
	for id, addr := range s.cfg.Cluster {
		peers[id] = addr
	}
	for _, m := range *s.members.Load() { // what the disk knows wins over flags
		if m.PeerAddr != "" {
			peers[m.ID] = m.PeerAddr
		}
	}
	tr, err := transport.New(transport.Config{
		ID: s.cfg.ID, Listen: s.cfg.PeerAddr, Peers: peers,
		Logf: func(f string, a ...any) { s.log.Debug(fmt.Sprintf(f, a...), "node", s.cfg.ID) },
	}, peerHandler{s})
	if err != nil {
		return fmt.Errorf("listen for peers on %s: %w", s.cfg.PeerAddr, err)
	}
	s.tr = tr
	s.httpSrv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: readHeaderTimeoutMs * time.Millisecond}
	s.goOwned(func() {
		if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.fail(fmt.Errorf("http: %w", err))
		}
	})
	return nil
}

// HTTPAddr is the address clients reach this node at (useful with port 0).
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// ClusterKey is the node's copy of the cluster key, or nil without one: a
// worker pool in the node checks grants and signs audit records with it.
func (s *Server) ClusterKey() []byte { return slices.Clone(s.key) }

// Metrics is the node's metrics registry (served on /metrics), for what
// runs beside the node, such as its worker pool.
func (s *Server) Metrics() prometheus.Registerer { return s.metrics.reg }

// PeerAddr is the address peers reach this node at.
func (s *Server) PeerAddr() string { return s.tr.Addr() }

type peerHandler struct{ s *Server }

func (h peerHandler) Receive(m raftpb.Message) {
	h.s.contact.touch(m.From)
	select {
	case h.s.inbox <- func() { _ = h.s.node.Step(m) }:
	default: // the loop is behind; raft will resend
		h.s.metrics.droppedInbound.Inc()
	}
}

func (h peerHandler) Unreachable(peer uint64) {
	h.s.post(func() { h.s.node.ReportUnreachable(peer) })
}

func (h peerHandler) SnapshotStatus(peer uint64, ok bool) {
	h.s.post(func() { h.s.node.ReportSnapshot(peer, ok) })
}

// post queues f for the loop unless the node is stopping.
func (s *Server) post(f func()) bool {
	select {
	case s.inbox <- f:
		return true
	case <-s.stop:
		return false
	}
}

func randomID() uint64 {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return binary.LittleEndian.Uint64(b[:])&^(1<<63) | 1 // the top bit is callers' sessions' (ClientID)
}
