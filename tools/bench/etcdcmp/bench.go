package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// settleDelay is how long a cluster that took its first write is left
// alone before its idle memory is read and the load starts.
const settleDelay = 2 * time.Second

// standardLoads are the rounds' loads, by name; keys, value size and
// duration come from the flags.
var standardLoads = []load{
	{Name: "put64", Op: "put", Clients: 64},
	{Name: "get64", Op: "get", Clients: 64},
	{Name: "put256", Op: "put", Clients: 256},
	{Name: "put1", Op: "put", Clients: 1, ToLeader: true},
}

func roundLoads(cfg config) ([]load, error) {
	var ls []load
	for _, name := range cfg.Loads {
		i := findLoad(name)
		if i < 0 {
			return nil, fmt.Errorf("-loads: unknown load %q", name)
		}
		l := standardLoads[i]
		l.Keys, l.ValueBytes, l.Duration = cfg.Keys, cfg.ValueBytes, cfg.Duration
		ls = append(ls, l)
	}
	return ls, nil
}

func findLoad(name string) int {
	for i, l := range standardLoads {
		if l.Name == name {
			return i
		}
	}
	return -1
}

// systemRun is what a cluster of one system showed outside the loads.
type systemRun struct {
	System       string   `json:"system"`
	Version      string   `json:"version"`
	StartSeconds float64  `json:"start_to_first_write_seconds"`
	IdleMemory   []memory `json:"idle_memory"`
	AfterMemory  []memory `json:"after_memory,omitempty"`
}

// report is everything one invocation measured.
type report struct {
	Date       string       `json:"date"`
	Command    string       `json:"command"`
	CPUs       int          `json:"cpus"`
	LoadBefore string       `json:"load_average_before"`
	LoadAfter  string       `json:"load_average_after"`
	Config     config       `json:"config"`
	Aspen      string       `json:"aspen_version"` // the commit built, "+changes" if the tree had any
	Etcd       string       `json:"etcd_version"`
	Systems    []*systemRun `json:"systems,omitempty"` // aspen, then etcd
	Results    []result     `json:"results,omitempty"`
	Rows       []row        `json:"rows,omitempty"`
	Large      *largeReport `json:"large,omitempty"`
}

// env is what the runs need from the setup.
type env struct {
	dir          string
	aspenBin     string
	etcdBin      string
	aspenVersion string
	etcdVersion  string
	progress     io.Writer
	pprof        bool // Aspen nodes serve /debug/pprof/
}

func run(ctx context.Context, cfg config, progress io.Writer) (*report, error) {
	rep := &report{
		Date: time.Now().Format("2006-01-02 15:04 MST"), Command: strings.Join(os.Args, " "),
		CPUs: runtime.NumCPU(), LoadBefore: loadAverage(), Config: cfg,
	}
	e, cleanup, err := setup(cfg, progress)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rep.Aspen, rep.Etcd = e.aspenVersion, e.etcdVersion
	if cfg.Rounds > 0 {
		if err := runRounds(ctx, cfg, e, rep); err != nil {
			return nil, err
		}
	}
	if cfg.Large {
		if rep.Large, err = runLarge(ctx, cfg, e); err != nil {
			return nil, err
		}
	}
	rep.LoadAfter = loadAverage()
	return rep, nil
}

// setup finds etcd, makes the temporary directory and builds Aspen in it.
func setup(cfg config, progress io.Writer) (env, func(), error) {
	e := env{progress: progress, pprof: cfg.Pprof}
	var err error
	if e.etcdBin, e.etcdVersion, err = findEtcd(cfg.EtcdBin); err != nil {
		return e, nil, err
	}
	if e.dir, err = os.MkdirTemp("", "etcdcmp-"); err != nil {
		return e, nil, err
	}
	cleanup := func() {
		if cfg.Keep {
			fmt.Fprintf(progress, "kept %s\n", e.dir)
			return
		}
		os.RemoveAll(e.dir)
	}
	e.aspenBin, e.aspenVersion = cfg.AspenBin, "given binary"
	if e.aspenBin == "" {
		if e.aspenBin, e.aspenVersion, err = buildFromRepo(cfg.Repo, e.dir, progress); err != nil {
			cleanup()
			return e, nil, err
		}
	}
	return e, cleanup, nil
}

func buildFromRepo(repo, dir string, progress io.Writer) (bin, commit string, err error) {
	if repo == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", "", err
		}
		if repo, err = findRepo(wd); err != nil {
			return "", "", err
		}
	}
	fmt.Fprintf(progress, "building ./cmd/aspen in %s\n", repo)
	return buildAspen(repo, dir)
}

// startClusters starts a fresh Aspen and a fresh etcd cluster under dir,
// and returns them with the clients for conns concurrent callers made.
// On error the ones started are stopped.
func startClusters(ctx context.Context, e env, dir string, conns int) ([]*cluster, []*systemRun, error) {
	makers := []func(string, []int) *cluster{
		func(d string, p []int) *cluster { return newAspenCluster(e.aspenBin, d, p, e.pprof) },
		func(d string, p []int) *cluster { return newEtcdCluster(e.etcdBin, d, p) },
	}
	versions := []string{e.aspenVersion, e.etcdVersion}
	var cs []*cluster
	var runs []*systemRun
	stopAll := func() {
		for _, c := range cs {
			c.close()
		}
	}
	for i, mk := range makers {
		c, took, err := startCluster(ctx, dir, mk)
		if c != nil {
			cs = append(cs, c)
		}
		if err == nil {
			err = c.connect(conns)
		}
		if err != nil {
			stopAll()
			return nil, nil, err
		}
		runs = append(runs, &systemRun{System: c.system, Version: versions[i], StartSeconds: took.Seconds()})
		fmt.Fprintf(e.progress, "%s: 3 nodes took their first write %.2fs after start\n", c.system, took.Seconds())
	}
	return cs, runs, nil
}

func startCluster(ctx context.Context, dir string, mk func(string, []int) *cluster) (*cluster, time.Duration, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	ports, err := freePorts(2 * nodesPerCluster)
	if err != nil {
		return nil, 0, err
	}
	c := mk(dir, ports)
	took, err := c.start(ctx)
	return c, took, err
}

// runRounds runs every load on both systems, round after round, the
// system that goes first alternating, so that a change in the machine's
// background load hits both alike.
func runRounds(ctx context.Context, cfg config, e env, rep *report) error {
	loads, err := roundLoads(cfg)
	if err != nil {
		return err
	}
	conns := 0
	for _, l := range loads {
		conns = max(conns, l.Clients)
	}
	cs, runs, err := startClusters(ctx, e, filepath.Join(e.dir, "rounds"), conns)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range cs {
			c.close()
		}
	}()
	rep.Systems = runs
	sleep(ctx, settleDelay)
	for i, c := range cs {
		if runs[i].IdleMemory, err = c.memory(); err != nil {
			return err
		}
		if err := preload(ctx, c.clients, cfg.Keys, 64, cfg.ValueBytes); err != nil {
			return fmt.Errorf("%s: %w", c.system, err)
		}
	}
	for round := 1; round <= cfg.Rounds; round++ {
		for _, l := range loads {
			for _, c := range roundOrder(cs, round) {
				r, err := runOne(ctx, c, l, round)
				if err != nil {
					return err
				}
				rep.Results = append(rep.Results, r)
				fmt.Fprintf(e.progress, "round %d/%d %-7s %-5s %s\n", round, cfg.Rounds, l.Name, c.system, r.line())
			}
		}
	}
	for i, c := range cs {
		if runs[i].AfterMemory, err = c.memory(); err != nil {
			return err
		}
	}
	rep.Rows = summaryRows(loads, rep.Results)
	return nil
}

// roundOrder is cs in odd rounds and cs reversed in even ones.
func roundOrder(cs []*cluster, round int) []*cluster {
	if round%2 == 1 {
		return cs
	}
	out := make([]*cluster, len(cs))
	for i, c := range cs {
		out[len(cs)-1-i] = c
	}
	return out
}

// runOne runs one load on one system; a load that goes to the leader asks
// who leads just before.
func runOne(ctx context.Context, c *cluster, l load, round int) (result, error) {
	kvs := c.clients
	if l.ToLeader {
		lead, err := c.leader(ctx)
		if err != nil {
			return result{}, err
		}
		kvs = kvs[lead : lead+1]
	}
	nodes0, err := c.cpu()
	if err != nil {
		return result{}, err
	}
	client0 := selfCPU()
	r := runLoad(ctx, kvs, l, uint64(round))
	client := selfCPU() - client0
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	if err := c.exited(); err != nil {
		return r, c.failure(err)
	}
	nodes1, err := c.cpu()
	if err != nil {
		return r, err
	}
	if r.Ops > 0 {
		nodes := nodes1.minus(nodes0)
		r.NodeCPUUsPerOp = float64(nodes.total().Microseconds()) / float64(r.Ops)
		r.NodeKernelCPUUsPerOp = float64(nodes.Sys.Microseconds()) / float64(r.Ops)
		r.ClientCPUUsPerOp = float64(client.Microseconds()) / float64(r.Ops)
	}
	r.System, r.Load, r.Round = c.system, l.Name, round
	return r, nil
}

func (r result) line() string {
	s := fmt.Sprintf("%8.0f ops/s  p50 %6.2f ms  p99 %7.2f ms  errors %d", r.OpsPerSecond, r.P50Ms, r.P99Ms, r.Errors)
	if r.FirstError != "" {
		s += "  first error: " + r.FirstError
	}
	return s
}
