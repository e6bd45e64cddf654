package faultcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aspen-db/aspen/runtime/server/servertest"
)

// startNode runs a one-node cluster in this process and returns its HTTP address.
func startNode(t *testing.T) string {
	t.Helper()
	s := servertest.StartOne(t)
	return s.HTTPAddr()
}

func TestRunAgainstOneNode(t *testing.T) {
	addr := startNode(t)
	h, err := Run(context.Background(), Config{Addrs: []string{addr}, Clients: 4, Keys: 3, Duration: 500 * time.Millisecond,
		OpTimeout: 5 * time.Second, Seed: 7})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	rep := Check(h, 10*time.Second)
	if err := rep.Err(); err != nil {
		t.Fatalf("got %v, want a clean report (%s)", err, rep)
	}
	c := rep.Counts
	if c.Gets == 0 || c.Puts == 0 || c.CASHeld == 0 || c.FinalReads != 3 {
		t.Fatalf("got counts %+v, want gets, puts, held cas and 3 final reads", c)
	}
}

func TestRunRefusesExistingKeys(t *testing.T) {
	addr := startNode(t)
	c := kvClient{http: http.DefaultClient}
	if _, _, out, err := c.put(context.Background(), addr, "used-0", "old", nil); out != applied {
		t.Fatalf("seed key: %v", err)
	}
	_, err := Run(context.Background(), Config{Addrs: []string{addr}, Clients: 1, Keys: 1, KeyPrefix: "used-",
		Duration: time.Second, OpTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("got %v, want an error saying the key exists", err)
	}
}

// forgetfulKV is a Consul KV stand-in that acknowledges every third put
// without storing it: the checker must catch it.
type forgetfulKV struct {
	mu     sync.Mutex
	rev    uint64
	puts   int
	values map[string]string
	index  map[string]uint64
}

func (f *forgetfulKV) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodGet {
		v, ok := f.values[key]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode([]entry{{Key: key, Value: []byte(v), ModifyIndex: f.index[key]}})
		return
	}
	body, _ := io.ReadAll(r.Body)
	if cas := r.URL.Query().Get("cas"); cas != "" && cas != strconv.FormatUint(f.index[key], 10) {
		w.Header().Set("X-Consul-Index", strconv.FormatUint(f.rev, 10))
		fmt.Fprintln(w, "false")
		return
	}
	f.rev++
	f.puts++
	if f.puts%3 != 0 {
		f.values[key], f.index[key] = string(body), f.rev
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(f.rev, 10))
	fmt.Fprintln(w, "true")
}

func TestCatchesForgottenWrites(t *testing.T) {
	srv := httptest.NewServer(&forgetfulKV{values: map[string]string{}, index: map[string]uint64{}})
	defer srv.Close()
	h, err := Run(context.Background(), Config{Addrs: []string{strings.TrimPrefix(srv.URL, "http://")}, Clients: 4, Keys: 2,
		Duration: 200 * time.Millisecond, OpTimeout: time.Second, Seed: 3})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	rep := Check(h, 10*time.Second)
	if len(rep.Illegal) == 0 {
		t.Fatalf("got no linearizability failure (%s), want one", rep)
	}
}
