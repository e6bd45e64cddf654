package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// countTimeout bounds counting the keys of the large case (Aspen lists
// them all through ?keys).
const countTimeout = 2 * time.Minute

// largeSystem is what the large key space case measured on one system.
type largeSystem struct {
	System           string   `json:"system"`
	IdleMemory       []memory `json:"idle_memory"`
	Put              result   `json:"put"`
	KeysStored       int64    `json:"keys_stored"`
	Memory           []memory `json:"memory"` // right after the puts
	DiskBytes        []int64  `json:"disk_bytes"`
	RestartSeconds   float64  `json:"restart_to_first_write_seconds"`
	KeysAfterRestart int64    `json:"keys_after_restart"`
	RestartMemory    []memory `json:"memory_after_restart"` // at the first write after the restart
}

type largeReport struct {
	Load    load          `json:"load"`
	Systems []largeSystem `json:"systems"` // aspen, then etcd
}

// runLarge runs the large key space case on a fresh cluster of each
// system, one system at a time: puts over the whole key space, then what
// is stored and the memory it takes, then a kill of every node and the
// time from their restart to the first write.
func runLarge(ctx context.Context, cfg config, e env) (*largeReport, error) {
	l := load{Name: "large", Op: "put", Clients: cfg.LargeClients, Keys: cfg.LargeKeys,
		ValueBytes: cfg.ValueBytes, Duration: cfg.LargeDuration}
	rep := &largeReport{Load: l}
	makers := []func(string, []int) *cluster{
		func(d string, p []int) *cluster { return newAspenCluster(e.aspenBin, d, p, e.pprof) },
		func(d string, p []int) *cluster { return newEtcdCluster(e.etcdBin, d, p) },
	}
	for _, mk := range makers {
		s, err := largeOne(ctx, e, l, mk)
		if err != nil {
			return nil, err
		}
		rep.Systems = append(rep.Systems, s)
	}
	return rep, nil
}

func largeOne(ctx context.Context, e env, l load, mk func(string, []int) *cluster) (largeSystem, error) {
	c, _, err := startCluster(ctx, filepath.Join(e.dir, "large"), mk)
	if c != nil {
		defer c.close()
	}
	if err == nil {
		err = c.connect(l.Clients)
	}
	if err != nil {
		return largeSystem{}, err
	}
	s := largeSystem{System: c.system}
	sleep(ctx, settleDelay)
	if s.IdleMemory, err = c.memory(); err != nil {
		return s, err
	}
	fmt.Fprintf(e.progress, "large %s: %s of puts over %d keys, %d clients\n", c.system, l.Duration, l.Keys, l.Clients)
	if s.Put, err = runOne(ctx, c, l, 1); err != nil {
		return s, err
	}
	fmt.Fprintf(e.progress, "large %s: %s\n", c.system, s.Put.line())
	if err := largeStored(ctx, c, &s); err != nil {
		return s, err
	}
	took, err := c.crashRestart(ctx)
	if err != nil {
		return s, err
	}
	s.RestartSeconds = took.Seconds()
	if s.RestartMemory, err = c.memory(); err != nil {
		return s, err
	}
	if s.KeysAfterRestart, err = countKeys(ctx, c); err != nil {
		return s, err
	}
	fmt.Fprintf(e.progress, "large %s: %d keys, killed and restarted: first write after %.2fs, %d keys\n",
		c.system, s.KeysStored, s.RestartSeconds, s.KeysAfterRestart)
	return s, nil
}

// largeStored reads memory and disk right after the puts, then counts.
func largeStored(ctx context.Context, c *cluster, s *largeSystem) error {
	var err error
	if s.Memory, err = c.memory(); err != nil {
		return err
	}
	if s.DiskBytes, err = c.disk(); err != nil {
		return err
	}
	s.KeysStored, err = countKeys(ctx, c)
	return err
}

func countKeys(ctx context.Context, c *cluster) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, countTimeout)
	defer cancel()
	n, err := c.clients[0].count(ctx, keyPrefix)
	if err != nil {
		return 0, fmt.Errorf("%s: count keys: %w", c.system, err)
	}
	return n, nil
}
