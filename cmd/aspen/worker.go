package main

import (
	"errors"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/aspen-db/aspen/runtime/server"
	"github.com/aspen-db/aspen/runtime/worker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"
)

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "run jobs (shell commands) from a cluster's queue on this machine, until interrupted",
		Description: "The worker leases jobs over the HTTP API of the nodes given, runs each under the policy in\n" +
			"its config (command and environment allowlists, directories, limits), heartbeats the lease,\n" +
			"and reports the outcome. It needs the cluster key to check each job's grant and to sign\n" +
			"audit records. It keeps retrying while the cluster is away, and stops a job whose lease\n" +
			"it cannot renew in time.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "worker TOML file (name, addrs, key_file, types, concurrency, poll_ms, [shell])", Required: true, TakesFile: true},
			&cli.StringSliceFlag{Name: "addr", EnvVars: []string{"ASPEN_HTTP_ADDR"}, Usage: "a node's HTTP address (repeat; added to the config's addrs)"},
			&cli.StringFlag{Name: "key", Usage: "the cluster key file (default: the config's key_file)", TakesFile: true},
			&cli.StringFlag{Name: "name", Usage: "this worker's name, as leases show it (default: the config's, else host-pid)"},
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at http://ADDR/metrics"},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
		},
		OnUsageError: onUsageError,
		Action:       runWorker,
	}
}

func runWorker(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := worker.LoadConfig(c.String("config"))
	if err != nil {
		return usageError("%v", err)
	}
	addrs := append(cfg.Addrs, c.StringSlice("addr")...)
	if c.IsSet("name") {
		cfg.Name = c.String("name")
	}
	keyFile := cfg.KeyFile
	if c.IsSet("key") {
		keyFile = c.String("key")
	}
	switch {
	case len(addrs) == 0:
		return usageError("worker: no node address: give --addr or addrs in the config")
	case keyFile == "":
		return usageError("worker: no cluster key: give --key or key_file in the config")
	}
	key, err := server.ReadKeyFile(keyFile)
	if err != nil {
		return usageError("%v", err)
	}
	log := newLogger(c.String("log-level"))
	reg := prometheus.NewRegistry()
	if a := c.String("metrics-addr"); a != "" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return failure("metrics: %v", err)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "err", err)
			}
		}()
		defer srv.Close()
	}
	pool, err := worker.Start(cfg, addrs, key, log, reg)
	if err != nil {
		return usageError("%v", err)
	}
	log.Info("worker started", "addrs", addrs, "types", cfg.Types)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	got := <-sig
	log.Info("stopping: jobs are stopped and their outcomes sent", "signal", got.String())
	pool.Stop()
	return nil
}
