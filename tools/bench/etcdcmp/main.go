// Command etcdcmp compares a 3-node Aspen cluster with a 3-node etcd
// cluster on this machine, each through its official client: Aspen
// through HashiCorp's Consul API client, etcd through its gRPC client
// (go.etcd.io/etcd/client/v3). It starts both clusters on loopback in a
// temporary directory, runs the same closed-loop load generator against
// each in alternating rounds, and prints both systems' figures with their
// ratio per row. It removes its servers and their data on exit and on
// interrupt.
//
// etcd is Debian's etcd-server (apt-get install -y etcd-server); Aspen is
// built from the repository this directory sits in.
//
//	cd tools/bench/etcdcmp && go run . [-duration 8s] [-rounds 8] [-large] [-json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// config is what the command line asks for.
type config struct {
	Duration      time.Duration `json:"duration_ns"`
	Rounds        int           `json:"rounds"`
	Keys          int           `json:"keys"`
	ValueBytes    int           `json:"value_bytes"`
	Loads         []string      `json:"loads"`
	Large         bool          `json:"large"`
	LargeDuration time.Duration `json:"large_duration_ns"`
	LargeKeys     int           `json:"large_keys"`
	LargeClients  int           `json:"large_clients"`
	Repo          string        `json:"-"`
	AspenBin      string        `json:"-"`
	EtcdBin       string        `json:"-"`
	JSON          bool          `json:"-"`
	Keep          bool          `json:"-"`
	Pprof         bool          `json:"-"`
}

// Bounds on the flags, so that a typo cannot ask for a day or a terabyte.
const (
	roundsMax     = 100
	durationMax   = 10 * time.Minute
	keysMax       = 10_000_000
	valueBytesMax = 1 << 20
	clientsMax    = 4096
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "etcdcmp:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second interrupt kills at once; the servers die with us (Pdeathsig)
	}()
	rep, err := run(ctx, cfg, os.Stderr)
	if err == nil {
		err = output(os.Stdout, cfg, rep)
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "etcdcmp: interrupted; servers stopped and their data removed")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "etcdcmp:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("etcdcmp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&cfg.Duration, "duration", 8*time.Second, "length of one run of one load on one system")
	fs.IntVar(&cfg.Rounds, "rounds", 8, "rounds; each runs every load on both systems, the order of the systems alternating (0: only -large)")
	fs.IntVar(&cfg.Keys, "keys", 10_000, "distinct keys of the rounds, chosen uniformly")
	fs.IntVar(&cfg.ValueBytes, "value-bytes", 256, "bytes per value")
	loads := fs.String("loads", "put64,get64,put256,put1", "loads of the rounds, from put64, get64, put256, put1")
	fs.BoolVar(&cfg.Large, "large", false, "also run the large key space case on fresh clusters (a few minutes)")
	fs.DurationVar(&cfg.LargeDuration, "large-duration", 40*time.Second, "length of the large case's puts")
	fs.IntVar(&cfg.LargeKeys, "large-keys", 1_000_000, "key space of the large case")
	fs.IntVar(&cfg.LargeClients, "large-clients", 64, "clients of the large case")
	fs.StringVar(&cfg.Repo, "repo", "", "Aspen repository to build ./cmd/aspen from (default: found above the working directory)")
	fs.StringVar(&cfg.AspenBin, "aspen", "", "aspen binary to run instead of building one")
	fs.StringVar(&cfg.EtcdBin, "etcd", "", "etcd binary (default: etcd on PATH; apt-get install -y etcd-server)")
	fs.BoolVar(&cfg.JSON, "json", false, "print the report as JSON instead of a table")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the temporary directory (data and logs) instead of removing it")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "start the Aspen nodes with --pprof, to profile them under load (their addresses are in the log)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: etcdcmp [flags]\n\nStarts 3 Aspen and 3 etcd nodes on loopback and compares them under the same load.\n"+
			"Needs etcd on PATH: Debian's etcd-server 3.4 (apt-get install -y etcd-server).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Loads = strings.Split(*loads, ",")
	return cfg, cfg.check()
}

func (cfg config) check() error {
	switch {
	case cfg.Duration <= 0 || cfg.Duration > durationMax:
		return fmt.Errorf("-duration %s: want more than 0 and at most %s", cfg.Duration, durationMax)
	case cfg.LargeDuration <= 0 || cfg.LargeDuration > durationMax:
		return fmt.Errorf("-large-duration %s: want more than 0 and at most %s", cfg.LargeDuration, durationMax)
	case cfg.Rounds < 0 || cfg.Rounds > roundsMax:
		return fmt.Errorf("-rounds %d: want 0 to %d", cfg.Rounds, roundsMax)
	case cfg.Rounds == 0 && !cfg.Large:
		return errors.New("-rounds 0 without -large runs nothing")
	case cfg.Keys < 1 || cfg.Keys > keysMax || cfg.LargeKeys < 1 || cfg.LargeKeys > keysMax:
		return fmt.Errorf("-keys %d, -large-keys %d: want 1 to %d", cfg.Keys, cfg.LargeKeys, keysMax)
	case cfg.ValueBytes < 0 || cfg.ValueBytes > valueBytesMax:
		return fmt.Errorf("-value-bytes %d: want 0 to %d", cfg.ValueBytes, valueBytesMax)
	case cfg.LargeClients < 1 || cfg.LargeClients > clientsMax:
		return fmt.Errorf("-large-clients %d: want 1 to %d", cfg.LargeClients, clientsMax)
	}
	_, err := roundLoads(cfg)
	return err
}

func output(w io.Writer, cfg config, rep *report) error {
	if cfg.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printTable(w, rep)
}
