package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a 3-node cluster on loopback in this process, until Ctrl-C",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Usage: "keep data here (default: a temporary folder removed on exit)"},
			&cli.IntFlag{Name: "http-port", Usage: "first HTTP port; nodes use this and the next two", Value: 8500},
			&cli.IntFlag{Name: "peer-port", Usage: "first peer port; nodes use this and the next two", Value: 8300},
			&cli.IntFlag{Name: "tick-ms", Usage: "raft tick in milliseconds", Value: 50},
			&cli.StringFlag{Name: "log-level", Value: "warn"},
		},
		OnUsageError: onUsageError,
		Action:       runDev,
	}
}

func runDev(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	dir, cleanup, err := devDataDir(c.String("data-dir"))
	if err != nil {
		return failure("%v", err)
	}
	defer cleanup()
	log := newLogger(c.String("log-level"))
	members := map[uint64]string{}
	for i := 1; i <= 3; i++ {
		members[uint64(i)] = fmt.Sprintf("127.0.0.1:%d", c.Int("peer-port")+i-1)
	}
	var servers []*server.Server
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	// One cluster key for the three nodes, made once in the dev dir.
	keyFile := filepath.Join(dir, "token.key")
	if _, err := os.Stat(keyFile); err != nil {
		if err := server.GenerateKeyFile(keyFile); err != nil {
			return failure("cluster key: %v", err)
		}
	}
	for i := 1; i <= 3; i++ {
		s, err := server.Start(server.Config{TokenKeyFile: keyFile,
			ID: uint64(i), DataDir: filepath.Join(dir, fmt.Sprintf("node%d", i)), PeerAddr: members[uint64(i)],
			HTTPAddr: fmt.Sprintf("127.0.0.1:%d", c.Int("http-port")+i-1), Cluster: members,
			Tick: time.Duration(c.Int("tick-ms")) * time.Millisecond, Logger: log.With("node", i),
		})
		if err != nil {
			return failure("start node %d: %v", i, err)
		}
		servers = append(servers, s)
	}
	printDevHelp(c, servers, dir, members)
	err = waitForStop(log, servers...)
	servers = nil // waitForStop closed them
	return err
}

func devDataDir(dir string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o755)
	}
	tmp, err := os.MkdirTemp("", "aspen-dev-")
	if err != nil {
		return "", nil, err
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

func printDevHelp(c *cli.Context, servers []*server.Server, dir string, members map[uint64]string) {
	w := c.App.Writer
	fmt.Fprintf(w, "Aspen dev cluster: 3 nodes, data in %s\n", dir)
	for i, s := range servers {
		fmt.Fprintf(w, "  node %d  http://%s  (peers: %s)\n", i+1, s.HTTPAddr(), s.PeerAddr())
	}
	addr := servers[0].HTTPAddr()
	fmt.Fprintf(w, `
Try:
  aspen kv put greeting hello          # ASPEN_HTTP_ADDR defaults to 127.0.0.1:8500
  aspen kv get greeting
  curl -X PUT -d hello http://%[1]s/v1/kv/greeting
  curl http://%[1]s/v1/kv/greeting?raw
  curl http://%[1]s/v1/aspen/status
Initial cluster for more tools: %[2]s
Ctrl-C stops the cluster.
`, addr, formatCluster(members))
}
