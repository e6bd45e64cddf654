package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/aspen-db/aspen/runtime/worker"
	"github.com/urfave/cli/v2"
)

// nodeFile is the TOML config `aspen node start --config` reads. Flags given
// on the command line override it.
type nodeFile struct {
	ID             uint64 `toml:"id"`
	DataDir        string `toml:"data_dir"`
	PeerAddr       string `toml:"peer_addr"`
	HTTPAddr       string `toml:"http_addr"`
	InitialCluster string `toml:"initial_cluster"`
	TickMs         int    `toml:"tick_ms"`
	LogLevel       string `toml:"log_level"`
	Join           bool   `toml:"join"`
	Pprof          bool   `toml:"pprof"`
	TokenKeyFile   string `toml:"token_key_file"` // the cluster key (aspen token keygen); default: data_dir/token.key
	// Worker is the node's own worker pool ([worker] with enabled = true):
	// it leases jobs through this node and runs them here.
	Worker worker.Config `toml:"worker"`
	// Hooks ([[hooks]] tables) are created once, when this node bootstraps
	// a new cluster; later starts leave the cluster's hooks as they are.
	Hooks []hookFile `toml:"hooks"`
	// There is no restore key: a restore needs an empty data dir, so a file
	// that kept asking for one would fail every restart after the first.
}

// hookFile is one [[hooks]] table: a hook as `aspen hook create` makes it.
// An http hook's secret comes from secret_file, a shell hook's token from
// token_file, so neither sits in the config itself.
type hookFile struct {
	Name             string            `toml:"name"`
	Pattern          string            `toml:"pattern"`
	Events           []string          `toml:"events"`  // put, delete, expire; default put and delete
	Filter           string            `toml:"filter"`  // any, created, updated
	Handler          string            `toml:"handler"` // http, shell or job
	URL              string            `toml:"url"`
	SecretFile       string            `toml:"secret_file"`
	JobType          string            `toml:"job_type"`
	Argv             []string          `toml:"argv"`
	Dir              string            `toml:"dir"`
	Env              map[string]string `toml:"env"`
	CommandTimeoutMs int64             `toml:"command_timeout_ms"`
	TokenFile        string            `toml:"token_file"`
	Mode             string            `toml:"mode"`
	Parallel         int64             `toml:"parallel"`
	MaxAttempts      int64             `toml:"max_attempts"`
	TimeoutMs        int64             `toml:"timeout_ms"`
	BackoffMs        int64             `toml:"backoff_ms"`
	BackoffMaxMs     int64             `toml:"backoff_max_ms"`
	RatePerSec       int64             `toml:"rate_per_sec"`
	Burst            int64             `toml:"burst"`
	Disabled         bool              `toml:"disabled"`
}

// hookRequests reads the files the [[hooks]] tables name and builds the
// requests the node makes at bootstrap; what only the cluster can judge
// (pattern, token scope) it judges then.
func hookRequests(hs []hookFile) ([]server.HookRequest, error) {
	var out []server.HookRequest
	seen := map[string]bool{}
	for i, h := range hs {
		if h.Name == "" || seen[h.Name] {
			return nil, fmt.Errorf("[[hooks]] #%d: want a name of its own, got %q", i+1, h.Name)
		}
		seen[h.Name] = true
		req := server.HookRequest{Name: h.Name, Pattern: h.Pattern, Events: h.Events, Filter: h.Filter, Handler: h.Handler,
			URL: h.URL, JobType: h.JobType, Mode: h.Mode, Parallel: h.Parallel, MaxAttempts: h.MaxAttempts,
			TimeoutMs: h.TimeoutMs, BackoffMs: h.BackoffMs, BackoffMaxMs: h.BackoffMaxMs, RatePerSec: h.RatePerSec,
			Burst: h.Burst, Disabled: h.Disabled,
			ShellCommand: server.ShellCommand{Argv: h.Argv, Dir: h.Dir, Env: h.Env, CommandTimeoutMs: h.CommandTimeoutMs}}
		for _, f := range []struct {
			key, path string
			dst       *string
		}{{"secret_file", h.SecretFile, &req.Secret}, {"token_file", h.TokenFile, &req.Capability}} {
			if f.path == "" {
				continue
			}
			b, err := os.ReadFile(f.path)
			if err != nil {
				return nil, fmt.Errorf("[[hooks]] %s: %s: %w", h.Name, f.key, err)
			}
			if *f.dst = strings.TrimSpace(string(b)); *f.dst == "" {
				return nil, fmt.Errorf("[[hooks]] %s: %s %s is empty", h.Name, f.key, f.path)
			}
		}
		out = append(out, req)
	}
	return out, nil
}

func nodeCommand() *cli.Command {
	start := &cli.Command{
		Name:  "start",
		Usage: "run one node until interrupted",
		Description: "A node whose data dir is empty bootstraps the cluster named by --initial-cluster, or with\n" +
			"--join waits to be added to a running one (aspen cluster add), or with --restore FILE\n" +
			"bootstraps a new cluster from a backup (see aspen snapshot restore --help).",
		Flags: append(nodeFlags(),
			&cli.BoolFlag{Name: "join", Usage: "with an empty data dir, wait to be added to a running cluster (aspen cluster add) instead of bootstrapping one"},
			&cli.StringFlag{Name: "restore", Usage: "bootstrap a NEW cluster from this backup (aspen snapshot save); needs an empty data dir, and every member starts with the same file", TakesFile: true}),
		OnUsageError: onUsageError,
		Action:       runNodeStart,
	}
	return &cli.Command{
		Name:            "node",
		Usage:           "run an Aspen node",
		Subcommands:     []*cli.Command{start},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

// nodeFlags configure one node; snapshot restore takes them too (but not
// --join, which contradicts a restore).
func nodeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "TOML file with id, data_dir, peer_addr, http_addr, initial_cluster, tick_ms, log_level, join, pprof, token_key_file, [worker] and [[hooks]]"},
		&cli.Uint64Flag{Name: "id", Usage: "this node's id (non-zero, unique in the cluster)"},
		&cli.StringFlag{Name: "data-dir", Usage: "where this node keeps its data"},
		&cli.StringFlag{Name: "peer-addr", Usage: "host:port peers reach this node at (default: its entry in --initial-cluster)"},
		&cli.StringFlag{Name: "http-addr", Usage: "host:port for clients", Value: "127.0.0.1:8500"},
		&cli.StringFlag{Name: "initial-cluster", Usage: "members as 1=host:port,2=host:port,... (with --join: members to reach first, and this node)"},
		&cli.IntFlag{Name: "tick-ms", Usage: "raft tick in milliseconds", Value: 100},
		&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
		&cli.BoolFlag{Name: "pprof", Usage: "serve Go's profiler at /debug/pprof/ on the HTTP address (off: it exposes internals)"},
	}
}

// nodeGCPercent is the collector's target (GOGC) for a node, unless the
// environment sets GOGC. A node's live heap is mostly long-lived (the KV
// tree, Badger's memtables and table builders, the watch history), and at
// Go's default of 100 the heap grew to twice it between collections: half
// of a node's anonymous memory after the bench-etcd rounds was garbage
// waiting for the next cycle. At 50 the collector runs twice as often, a
// few percent of a busy node's CPU (gcBgMarkWorker was 2% of the leader's
// profile at 100).
const nodeGCPercent = 50

// setGCPercentUnlessSet sets the collector's target for this process, which
// the environment's GOGC overrides: each command knows its heap's shape.
func setGCPercentUnlessSet(percent int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}

func runNodeStart(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, wcfg, err := nodeConfig(c)
	if err != nil {
		return usageError("%v", err)
	}
	setGCPercentUnlessSet(nodeGCPercent)
	if path := c.String("restore"); path != "" {
		b, err := loadRestore(path, cfg)
		if err != nil {
			return err
		}
		cfg.Restore = b.data
		cfg.Logger.Info("restoring a new cluster from a backup", "file", path, "revision", b.Revision, "index", b.Index, "bytes", len(b.data))
	}
	return runNode(cfg, wcfg)
}

// runNode starts the node, and its worker pool when enabled, and serves
// until it is stopped.
func runNode(cfg server.Config, wcfg worker.Config) error {
	s, err := server.Start(cfg)
	if err != nil {
		return failure("%v", err)
	}
	cfg.Logger.Info("node started", "id", cfg.ID, "peer_addr", s.PeerAddr(), "http_addr", s.HTTPAddr(), "data_dir", cfg.DataDir, "join", cfg.Join)
	var pools []*worker.Running
	if wcfg.Enabled {
		pool, err := startNodeWorker(s, wcfg, cfg.Logger)
		if err != nil {
			s.Close()
			return failure("%v", err)
		}
		pools = append(pools, pool)
	}
	return waitForStop(cfg.Logger, pools, s)
}

// startNodeWorker starts a node's own pool: it leases through the node and
// checks grants with the node's cluster key.
func startNodeWorker(s *server.Server, wcfg worker.Config, log *slog.Logger) (*worker.Running, error) {
	if wcfg.Name == "" {
		wcfg.Name = "node-" + s.HTTPAddr()
	}
	pool, err := worker.Start(wcfg, []string{s.HTTPAddr()}, s.ClusterKey(), log, s.Metrics())
	if err != nil {
		return nil, fmt.Errorf("worker pool: %w", err)
	}
	log.Info("worker pool started", "name", wcfg.Name, "types", wcfg.Types, "concurrency", wcfg.Concurrency)
	return pool, nil
}

// waitForStop runs until Ctrl-C, SIGTERM, or a node failing on its own, then
// stops the worker pools (their jobs stopped, outcomes sent while the nodes
// still listen) and closes every node. The exit status is a failure when a Close reports one:
// a node that failed, or one that could not release its disk. A removed node
// ends cleanly.
func waitForStop(log *slog.Logger, pools []*worker.Running, servers ...*server.Server) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	failed := make(chan *server.Server, len(servers))
	for _, s := range servers {
		go func() { <-s.Done(); failed <- s }()
	}
	running := len(servers)
wait:
	for running > 0 {
		select {
		case got := <-sig:
			log.Info("stopping", "signal", got.String())
			break wait
		case s := <-failed:
			running--
			// A removed node ends cleanly; the others (in aspen dev) go on.
			if s.Err() != nil && !errors.Is(s.Err(), server.ErrRemoved) {
				break wait
			}
		}
	}
	for _, p := range pools {
		p.Stop()
	}
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return failure("node stopped: %v", err)
	}
	return nil
}

// nodeConfig merges the config file (if any) with flags, flags winning.
func nodeConfig(c *cli.Context) (server.Config, worker.Config, error) {
	var f nodeFile
	if path := c.String("config"); path != "" {
		md, err := toml.DecodeFile(path, &f)
		if err != nil {
			return server.Config{}, worker.Config{}, fmt.Errorf("config %s: %w", path, err)
		}
		if undec := md.Undecoded(); len(undec) > 0 {
			return server.Config{}, worker.Config{}, fmt.Errorf("config %s: unknown key %q", path, undec[0].String())
		}
	}
	overrideFromFlags(c, &f)
	members, err := parseCluster(f.InitialCluster)
	if err != nil {
		return server.Config{}, worker.Config{}, err
	}
	switch {
	case f.ID == 0:
		return server.Config{}, worker.Config{}, fmt.Errorf("--id is required and must not be 0")
	case f.DataDir == "":
		return server.Config{}, worker.Config{}, fmt.Errorf("--data-dir is required")
	case members[f.ID] == "":
		return server.Config{}, worker.Config{}, fmt.Errorf("node %d is not in --initial-cluster %q", f.ID, f.InitialCluster)
	}
	if f.PeerAddr == "" {
		f.PeerAddr = members[f.ID]
	}
	hooks, err := hookRequests(f.Hooks)
	if err != nil {
		return server.Config{}, worker.Config{}, err
	}
	return server.Config{ID: f.ID, DataDir: f.DataDir, PeerAddr: f.PeerAddr, HTTPAddr: f.HTTPAddr, Join: f.Join,
		TokenKeyFile: f.TokenKeyFile, Profiling: f.Pprof, Cluster: members, Tick: time.Duration(f.TickMs) * time.Millisecond,
		Logger: newLogger(f.LogLevel), Hooks: hooks}, f.Worker, nil
}

func overrideFromFlags(c *cli.Context, f *nodeFile) {
	setIf := func(name string, dst *string) {
		if c.IsSet(name) || *dst == "" {
			*dst = c.String(name)
		}
	}
	if c.IsSet("id") || f.ID == 0 {
		f.ID = c.Uint64("id")
	}
	setIf("data-dir", &f.DataDir)
	setIf("peer-addr", &f.PeerAddr)
	setIf("http-addr", &f.HTTPAddr)
	setIf("initial-cluster", &f.InitialCluster)
	setIf("log-level", &f.LogLevel)
	if c.IsSet("tick-ms") || f.TickMs == 0 {
		f.TickMs = c.Int("tick-ms")
	}
	if c.IsSet("join") {
		f.Join = c.Bool("join")
	}
	if c.IsSet("pprof") {
		f.Pprof = c.Bool("pprof")
	}
}

// parseCluster reads "1=host:port,2=host:port".
func parseCluster(s string) (map[uint64]string, error) {
	members := map[uint64]string{}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("--initial-cluster is required, as 1=host:port,2=host:port")
	}
	for _, part := range strings.Split(s, ",") {
		idStr, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		id, err := strconv.ParseUint(idStr, 10, 64)
		if !ok || err != nil || id == 0 || addr == "" {
			return nil, fmt.Errorf("--initial-cluster entry %q: want id=host:port with a non-zero id", part)
		}
		if _, dup := members[id]; dup {
			return nil, fmt.Errorf("--initial-cluster names node %d twice", id)
		}
		members[id] = addr
	}
	return members, nil
}

func formatCluster(members map[uint64]string) string {
	ids := make([]uint64, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d=%s", id, members[id])
	}
	return strings.Join(parts, ",")
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
