package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"
)

// aspenModule is the module path of the repository root's go.mod.
const aspenModule = "github.com/aspen-db/aspen"

// findRepo walks up from dir to the directory whose go.mod is Aspen's.
func findRepo(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module "+aspenModule+"\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of %s in %s or above it: pass -repo", aspenModule, dir)
		}
	}
}

// buildAspen builds ./cmd/aspen of repo into dir and says which commit it is.
func buildAspen(repo, dir string) (bin, commit string, err error) {
	bin = filepath.Join(dir, "aspen")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/aspen")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build ./cmd/aspen in %s: %w\n%s", repo, err, out)
	}
	return bin, gitDescribe(repo), nil
}

// gitDescribe is repo's short commit, marked when the tree has changes.
func gitDescribe(repo string) string {
	out, err := exec.Command("git", "-C", repo, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		commit += "+changes"
	}
	return commit
}

// newAspenCluster lays out 3 Aspen nodes under dir the way
// tools/bench/compare-etcd.sh starts them. ports holds 6 free ports.
func newAspenCluster(bin, dir string, ports []int, pprof bool) *cluster {
	c := &cluster{system: "aspen"}
	var members []string
	for i := range nodesPerCluster {
		members = append(members, fmt.Sprintf("%d=127.0.0.1:%d", i+1, ports[i]))
	}
	peerAddrs := map[string]int{}
	for i := range nodesPerCluster {
		id := strconv.Itoa(i + 1)
		data := filepath.Join(dir, "aspen"+id)
		httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[nodesPerCluster+i])
		peerAddrs[fmt.Sprintf("127.0.0.1:%d", ports[i])] = i
		args := []string{"node", "start", "--id", id, "--data-dir", data, "--http-addr", httpAddr,
			"--initial-cluster", strings.Join(members, ","), "--log-level", "warn"}
		if pprof {
			args = append(args, "--pprof")
		}
		c.procs = append(c.procs, &proc{name: "aspen node " + id, bin: bin, logPath: data + ".log", args: args})
		c.dataDirs = append(c.dataDirs, data)
		c.addrs = append(c.addrs, httpAddr)
	}
	c.dial = func(node, conns int) (kvClient, error) { return dialAspen(c.addrs[node], conns, peerAddrs, node) }
	return c
}

// aspenKV is HashiCorp's Consul client bound to one Aspen node.
type aspenKV struct {
	client    *api.Client
	transport *http.Transport
	node      int
	peerAddrs map[string]int // peer address -> node index, to read /v1/status/leader
}

// dialAspen makes a Consul client for addr. Its transport keeps an idle
// connection for each of conns callers: with cleanhttp's pooled default
// (GOMAXPROCS+1 per host) most requests would dial a new connection, and
// the run would measure TCP setup.
func dialAspen(addr string, conns int, peerAddrs map[string]int, node int) (*aspenKV, error) {
	tr := cleanhttp.DefaultPooledTransport()
	tr.Proxy = nil
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	client, err := api.NewClient(&api.Config{Address: addr, Scheme: "http", Transport: tr})
	if err != nil {
		return nil, err
	}
	return &aspenKV{client: client, transport: tr, node: node, peerAddrs: peerAddrs}, nil
}

func (a *aspenKV) put(ctx context.Context, key string, value []byte) error {
	_, err := a.client.KV().Put(&api.KVPair{Key: key, Value: value}, (&api.WriteOptions{}).WithContext(ctx))
	return err
}

// consistent asks for a consistent read (?consistent). Consul's default
// mode may answer from a leader that lost its lease; Aspen answers every
// read without ?stale after a ReadIndex, so for Aspen the two are the same.
func consistent(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
}

func (a *aspenKV) get(ctx context.Context, key string) error {
	pair, _, err := a.client.KV().Get(key, consistent(ctx))
	if err == nil && pair == nil {
		return fmt.Errorf("get %s: not found", key)
	}
	return err
}

func (a *aspenKV) count(ctx context.Context, prefix string) (int64, error) {
	keys, _, err := a.client.KV().Keys(prefix, "", consistent(ctx))
	return int64(len(keys)), err
}

func (a *aspenKV) isLeader(ctx context.Context) (bool, error) {
	addr, err := a.client.Status().LeaderWithQueryOptions(consistent(ctx))
	if err != nil {
		return false, err
	}
	node, ok := a.peerAddrs[addr]
	if !ok {
		return false, fmt.Errorf("leader %q is no peer address of ours", addr)
	}
	return node == a.node, nil
}

func (a *aspenKV) close() error {
	a.transport.CloseIdleConnections()
	return nil
}
