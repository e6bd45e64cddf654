package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdInstallHint is what to do when etcd is not on PATH.
const etcdInstallHint = "etcd is not on PATH: install Debian's etcd-server 3.4 " +
	"(apt-get install -y etcd-server), or pass -etcd /path/to/etcd"

// findEtcd is the etcd binary to run and its version line.
func findEtcd(flag string) (bin, version string, err error) {
	bin = flag
	if bin == "" {
		if bin, err = exec.LookPath("etcd"); err != nil {
			return "", "", errors.New(etcdInstallHint)
		}
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s --version: %w", bin, err)
	}
	version, _, _ = strings.Cut(string(out), "\n")
	return bin, strings.TrimPrefix(version, "etcd Version: "), nil
}

// newEtcdCluster lays out 3 etcd nodes under dir as compare-etcd.sh does.
// ports holds 6 free ports.
func newEtcdCluster(bin, dir string, ports []int) *cluster {
	c := &cluster{system: "etcd"}
	var members []string
	for i := range nodesPerCluster {
		members = append(members, fmt.Sprintf("e%d=http://127.0.0.1:%d", i+1, ports[i]))
	}
	for i := range nodesPerCluster {
		name := "e" + strconv.Itoa(i+1)
		data := filepath.Join(dir, "etcd"+strconv.Itoa(i+1))
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[i])
		clientAddr := fmt.Sprintf("127.0.0.1:%d", ports[nodesPerCluster+i])
		c.procs = append(c.procs, &proc{
			name: "etcd node " + name, bin: bin, logPath: data + ".log",
			args: []string{"--name", name, "--data-dir", data,
				"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
				"--listen-client-urls", "http://" + clientAddr, "--advertise-client-urls", "http://" + clientAddr,
				"--initial-cluster", strings.Join(members, ","), "--initial-cluster-state", "new",
				"--logger", "zap", "--log-outputs", "stderr", "--log-level", "error"},
		})
		c.dataDirs = append(c.dataDirs, data)
		c.addrs = append(c.addrs, clientAddr)
	}
	c.dial = func(node, _ int) (kvClient, error) { return dialEtcd(c.addrs[node]) }
	return c
}

// etcdKV is etcd's official gRPC client bound to one node. gRPC carries
// every caller's requests over one HTTP/2 connection, so conns is unused.
type etcdKV struct {
	client *clientv3.Client
	addr   string
}

func dialEtcd(addr string) (*etcdKV, error) {
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{addr},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, err
	}
	return &etcdKV{client: client, addr: addr}, nil
}

func (e *etcdKV) put(ctx context.Context, key string, value []byte) error {
	_, err := e.client.Put(ctx, key, string(value))
	return err
}

// get is etcd's default Get: a linearizable range (not WithSerializable).
func (e *etcdKV) get(ctx context.Context, key string) error {
	resp, err := e.client.Get(ctx, key)
	if err == nil && len(resp.Kvs) == 0 {
		return fmt.Errorf("get %s: not found", key)
	}
	return err
}

func (e *etcdKV) count(ctx context.Context, prefix string) (int64, error) {
	resp, err := e.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}

func (e *etcdKV) isLeader(ctx context.Context) (bool, error) {
	st, err := e.client.Status(ctx, e.addr)
	if err != nil {
		return false, err
	}
	return st.Leader == st.Header.MemberId, nil
}

func (e *etcdKV) close() error { return e.client.Close() }
