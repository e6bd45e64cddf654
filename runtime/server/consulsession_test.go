package server

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// A session made through one node is read, renewed and destroyed through
// the others with Consul's client, with Consul's fields and defaults.
func TestConsulSessionLifecycle(t *testing.T) {
	c := startCluster(t, 3)
	id, _, err := c.consul(0).Session().Create(&api.SessionEntry{Name: "web-lock", TTL: "15s", LockDelay: 5 * time.Second, Behavior: "delete"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Fatalf("session id %q is not a random UUID", id)
	}
	got, meta, err := c.consul(1).Session().Info(id, nil)
	if err != nil || got == nil {
		t.Fatalf("info via node 2: %+v, %v", got, err)
	}
	want := api.SessionEntry{ID: id, Name: "web-lock", Node: "aspen-1", LockDelay: 5 * time.Second, Behavior: "delete", TTL: "15s",
		CreateIndex: got.CreateIndex, NodeChecks: []string{}}
	if got.CreateIndex == 0 || meta.LastIndex < got.CreateIndex || !sessionsEqual(*got, want) {
		t.Fatalf("info: got %+v (index %d), want %+v", got, meta.LastIndex, want)
	}
	if defaults := c.createSession(2, nil); defaults.Node != "aspen-3" || defaults.LockDelay != 15*time.Second || defaults.Behavior != "release" || defaults.TTL != "" {
		t.Fatalf("a session created without a body: %+v; want node aspen-3, lock delay 15s, release, no TTL", defaults)
	}
	if list, _, err := c.consul(2).Session().List(nil); err != nil || len(list) != 2 {
		t.Fatalf("list: %d sessions, %v; want 2", len(list), err)
	}
	mine, _, err := c.consul(2).Session().Node("aspen-1", nil)
	if err != nil || len(mine) != 1 || mine[0].ID != id {
		t.Fatalf("sessions of aspen-1: %+v, %v; want %s alone", mine, err, id)
	}
	renewed, _, err := c.consul(1).Session().Renew(id, nil)
	if err != nil || renewed == nil || renewed.TTL != "15s" {
		t.Fatalf("renew: %+v, %v; want the session with TTL 15s", renewed, err)
	}
	if _, err := c.consul(2).Session().Destroy(id, nil); err != nil {
		t.Fatal(err)
	}
	if gone, _, err := c.consul(0).Session().Info(id, nil); err != nil || gone != nil {
		t.Fatalf("info after destroy: %+v, %v; want none", gone, err)
	}
	if again, _, err := c.consul(0).Session().Renew(id, nil); err != nil || again != nil {
		t.Fatalf("renew after destroy: %+v, %v; want none (404)", again, err)
	}
	code, _, body := do(t, "PUT", c.url(0, "/v1/session/renew/"+id), "")
	if code != http.StatusNotFound || !strings.Contains(body, "Session id '"+id+"' not found") {
		t.Fatalf("renew of a gone session: %d %s; want Consul's 404", code, body)
	}
}

// createSession creates a session through node i with body (raw JSON, or
// none) and returns it as info reads it.
func (c *cluster) createSession(i int, body map[string]any) api.SessionEntry {
	c.t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	code, _, answer := do(c.t, "PUT", c.url(i, "/v1/session/create"), string(raw))
	var created struct{ ID string }
	if code != http.StatusOK || json.Unmarshal([]byte(answer), &created) != nil {
		c.t.Fatalf("create %s: %d %s", raw, code, answer)
	}
	got, _, err := c.consul(i).Session().Info(created.ID, nil)
	if err != nil || got == nil {
		c.t.Fatalf("info %s: %+v, %v", created.ID, got, err)
	}
	return *got
}

func sessionsEqual(a, b api.SessionEntry) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// What Consul reads specially in a create: a LockDelay number below 1000
// is seconds, a string is a duration, and the default serf check, or an
// empty list, is no check at all.
func TestConsulSessionCreateForms(t *testing.T) {
	c := startCluster(t, 2)
	for _, tc := range []struct {
		body map[string]any
		node string
		lock time.Duration
	}{
		{map[string]any{"LockDelay": 7}, "aspen-1", 7 * time.Second},
		{map[string]any{"LockDelay": 2500000000}, "aspen-1", 2500 * time.Millisecond},
		{map[string]any{"LockDelay": "1500ms", "Checks": []string{"serfHealth"}}, "aspen-1", 1500 * time.Millisecond},
		{map[string]any{"LockDelay": "0s", "NodeChecks": []string{}, "Node": "aspen-2"}, "aspen-2", 0},
	} {
		got := c.createSession(0, tc.body)
		if got.Node != tc.node || got.LockDelay != tc.lock {
			t.Errorf("create %v: node %s, lock delay %v; want %s and %v", tc.body, got.Node, got.LockDelay, tc.node, tc.lock)
		}
	}
}

// A create the cluster cannot honour is refused with 400 and a message
// saying why, and makes no session.
func TestConsulSessionRefusals(t *testing.T) {
	c := startCluster(t, 1)
	for _, tc := range []struct{ body, want string }{
		{`{"Checks": ["service:web"]}`, "health checks are not supported"},
		{`{"NodeChecks": ["serfHealth", "disk"]}`, "health checks are not supported"},
		{`{"ServiceChecks": [{"ID": "web"}]}`, "service checks are not supported"},
		{`{"Node": "db-7"}`, "Missing node registration"},
		{`{"TTL": "5s"}`, "TTL"},
		{`{"TTL": "soon"}`, "TTL"},
		{`{"LockDelay": "61s"}`, "lock delay"},
		{`{"LockDelay": -3}`, "LockDelay"},
		{`{"Behavior": "keep"}`, "behavior"},
		{`{"Namespace": "team-a"}`, "namespace"},
		{`{"Nmae": "typo"}`, "Nmae"},
		{`{not json`, "malformed"},
	} {
		code, _, body := do(t, "PUT", c.url(0, "/v1/session/create"), tc.body)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("create %s: got %d %s; want 400 saying %q", tc.body, code, body, tc.want)
		}
	}
	if list, _, err := c.consul(0).Session().List(nil); err != nil || len(list) != 0 {
		t.Fatalf("after refused creates: %d sessions, %v; want none", len(list), err)
	}
	if code, _, _ := do(t, "GET", c.url(0, "/v1/session/create"), ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET create: %d, want 405", code)
	}
}

// A blocking list returns once a session is created, with a higher index.
func TestConsulSessionBlockingList(t *testing.T) {
	c := startCluster(t, 3)
	_, meta, err := c.consul(1).Session().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []*api.SessionEntry, 1)
	go func() {
		for {
			list, m, err := c.consul(1).Session().List(&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 20 * time.Second})
			if err != nil || len(list) > 0 {
				done <- list
				return
			}
			meta = m // woken by another entry; Consul's contract allows it
		}
	}()
	id, _, err := c.consul(2).Session().Create(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case list := <-done:
		if len(list) != 1 || list[0].ID != id {
			t.Fatalf("blocking list: %+v, want the new session", list)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("blocking list did not return after a create")
	}
}

// The agent names itself as sessions name it, and Consul endpoints Aspen
// does not implement answer 501 with a JSON error saying so.
func TestConsulAgentAndUnsupported(t *testing.T) {
	c := startCluster(t, 2)
	name, err := c.consul(1).Agent().NodeName()
	if err != nil || name != "aspen-2" {
		t.Fatalf("agent node name: %q, %v; want aspen-2", name, err)
	}
	for _, path := range []string{"/v1/catalog/services", "/v1/health/service/web", "/v1/agent/services", "/v1/acl/token/self", "/v1/query"} {
		code, hdr, body := do(t, "GET", c.url(0, path), "")
		var e apiError
		if code != http.StatusNotImplemented || hdr.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, "does not implement") {
			t.Errorf("GET %s: %d %s; want 501 with a JSON error", path, code, body)
		}
	}
	if _, _, err := c.consul(0).Catalog().Services(nil); err == nil || !strings.Contains(err.Error(), "501") {
		t.Fatalf("consul client's catalog call: %v; want an error carrying 501", err)
	}
}
