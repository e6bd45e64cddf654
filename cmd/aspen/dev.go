package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/aspen-db/aspen/runtime/worker"
	"github.com/aspen-db/aspen/runtime/worker/shell"
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
			&cli.BoolFlag{Name: "no-worker", Usage: "start the nodes without their worker pools (jobs then wait for aspen worker)"},
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
	var pools []*worker.Running
	var tokenFile string
	if !c.Bool("no-worker") {
		if pools, tokenFile, err = startDevWorkers(servers, dir, keyFile, log); err != nil {
			return failure("%v", err)
		}
	}
	printDevHelp(c, servers, dir, members, tokenFile)
	err = waitForStop(log, pools, servers...)
	servers = nil // waitForStop closed them
	return err
}

// devCommands are what the dev workers may run and the dev token allows:
// the system's programs, no shell.
var devCommands = []string{"/bin/*", "/usr/bin/*", "/usr/local/bin/*"}

// startDevWorkers starts a shell worker pool in each node, allowed to run
// the system's programs in the temporary directory, and writes a token for
// them (a month long, subject "aspen dev") to the dev dir.
func startDevWorkers(servers []*server.Server, dir, keyFile string, log *slog.Logger) ([]*worker.Running, string, error) {
	key, err := server.ReadKeyFile(keyFile)
	if err != nil {
		return nil, "", err
	}
	root, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		return nil, "", fmt.Errorf("temporary directory: %w", err)
	}
	now := time.Now()
	tok, err := token.Sign(key, token.Claims{ID: "dev", Subject: "aspen dev", Commands: devCommands, Dirs: []string{root},
		IssuedNs: now.UnixNano(), ExpiresNs: now.Add(devTokenTTL).UnixNano()})
	if err != nil {
		return nil, "", err
	}
	tokenFile := filepath.Join(dir, "dev.token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		return nil, "", fmt.Errorf("dev token: %w", err)
	}
	var pools []*worker.Running
	for i, s := range servers {
		wcfg := worker.Config{Name: fmt.Sprintf("dev-node%d", i+1), Concurrency: 2,
			Shell: shell.Config{Commands: devCommands, DirRoots: []string{root}, EnvAllow: []string{"*"}}}
		p, err := startNodeWorker(s, wcfg, log.With("node", i+1))
		if err != nil {
			for _, p := range pools {
				p.Stop()
			}
			return nil, "", err
		}
		pools = append(pools, p)
	}
	return pools, tokenFile, nil
}

// devTokenTTL is how long the token aspen dev writes is valid.
const devTokenTTL = 30 * 24 * time.Hour

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

func printDevHelp(c *cli.Context, servers []*server.Server, dir string, members map[uint64]string, tokenFile string) {
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
`, addr, formatCluster(members))
	if tokenFile != "" {
		fmt.Fprintf(w, `
Each node runs a worker pool for shell jobs. Schedule a first command with
the token written for this cluster (it allows %[2]s, run in the
temporary directory):
  aspen schedule add hello --every 10s --token @%[1]s -- /bin/echo hello from aspen
  aspen schedule history hello
  aspen job list --state succeeded
  aspen job output ID
  aspen audit list
`, tokenFile, strings.Join(devCommands, " "))
	}
	fmt.Fprintln(w, "Ctrl-C stops the cluster.")
}
