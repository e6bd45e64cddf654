package server

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
)

// What Aspen answers of Consul's agent API, and the Consul APIs it does
// not implement. HashiCorp's client asks /v1/agent/self for the agent's
// node name (Agent().NodeName()); its Lock, Semaphore and KV watches need
// nothing else of the agent or the catalog. Every other Consul endpoint a
// Consul tool may call answers 501 with a JSON error saying what is not
// implemented, never a bare 404: a user pointing a Consul tool at Aspen
// learns at its first call what it cannot do.

// agentSelf is the part of Consul's /v1/agent/self that Aspen can fill in.
type agentSelf struct {
	Config agentConfig
	Member agentMember
}

type agentConfig struct {
	Datacenter string
	NodeName   string
	NodeID     string
	Server     bool
	Version    string
}

// agentMember is the agent as a gossip member; Aspen's peers do not
// gossip, so Addr and Port are the node's peer address and Status is
// alive (1).
type agentMember struct {
	Name   string
	Addr   string
	Port   uint16
	Tags   map[string]string
	Status int
}

// consulDatacenter names Aspen's one cluster as Consul's default
// datacenter, which clients assume when they name none.
const consulDatacenter = "dc1"

// consulUnsupported lists Consul's API families Aspen does not implement,
// by path prefix, each with what it is.
var consulUnsupported = []struct{ prefix, what string }{
	{"/v1/agent/", "agent services, checks and members (only /v1/agent/self is served)"},
	{"/v1/catalog/", "the service catalog"},
	{"/v1/health/", "health checks (sessions end by TTL or destroy)"},
	{"/v1/acl/", "ACLs"},
	{"/v1/event/", "user events"},
	{"/v1/connect/", "the service mesh"},
	{"/v1/coordinate/", "network coordinates"},
	{"/v1/query", "prepared queries"},
	{"/v1/config", "config entries"},
	{"/v1/operator/", "operator endpoints (Aspen's own are /v1/aspen/members, transfer-leader and snapshot)"},
}

func (s *Server) agentRoutes(route func(pattern, name string, h http.HandlerFunc)) {
	route("/v1/agent/self", "agent_self", s.handleAgentSelf)
	for _, u := range consulUnsupported {
		route(u.prefix, "consul_unsupported", unsupported(u.what))
		if u.prefix[len(u.prefix)-1] != '/' {
			route(u.prefix+"/", "consul_unsupported", unsupported(u.what))
		}
	}
}

func unsupported(what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotImplemented, fmt.Sprintf("%s %s: Aspen does not implement Consul's %s; "+
			"it serves Consul's /v1/kv, /v1/txn, /v1/session, /v1/status and /v1/agent/self", r.Method, r.URL.Path, what))
	}
}

func (s *Server) handleAgentSelf(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	name := nodeName(s.cfg.ID)
	host, portText, _ := net.SplitHostPort(s.PeerAddr())
	port, _ := strconv.ParseUint(portText, 10, 16)
	writeJSON(w, http.StatusOK, agentSelf{
		Config: agentConfig{Datacenter: consulDatacenter, NodeName: name, NodeID: strconv.FormatUint(s.cfg.ID, 10), Server: true, Version: "aspen"},
		Member: agentMember{Name: name, Addr: host, Port: uint16(port), Tags: map[string]string{"role": "aspen"}, Status: 1},
	})
}
