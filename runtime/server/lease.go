package server

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/module"
)

// The lease API: etcd-style leases over JSON. Each endpoint takes a POST
// with a LeaseRequest body (list also a GET, without one) and answers with
// the lease as etcd users know it: ID, TTL left in whole seconds, the TTL as
// granted, keys as strings. Writes (grant, keepalive, revoke) go through the
// log under a session like KV writes; ttl and list are served after a
// ReadIndex like consistent reads. A refusal changed nothing: 400 for a
// malformed request, 404 for an unknown lease, 409 for an id in use, 413
// for a full table.

// LeaseRequest is the body of every lease endpoint; each reads the fields it
// needs.
type LeaseRequest struct {
	ID   int64 // the lease; for grant, 0 (or absent) lets the cluster choose one
	TTL  int64 // grant: seconds
	Keys bool  // ttl: list the attached keys too
}

// LeaseInfo answers grant, keepalive and ttl.
type LeaseInfo struct {
	ID         int64
	TTL        int64    // seconds left, rounded up: 0 only once due to expire
	GrantedTTL int64    // seconds, as granted
	KeyCount   int      // keys attached
	Keys       []string `json:",omitempty"` // ttl with Keys: the attached keys, in order
}

// LeaseRevoked answers revoke.
type LeaseRevoked struct {
	ID       int64
	Revision int64 // the store revision at which the lease's keys were deleted
}

// LeaseList answers list: every lease, by id.
type LeaseList struct {
	Leases []LeaseListed
}

// LeaseListed is one lease in a list. It has no TTL left: only a query about
// one lease reads the clock.
type LeaseListed struct {
	ID         int64
	GrantedTTL int64
	KeyCount   int
}

// leaseEndpoint is one lease operation: how a request becomes a module
// command, and how the module's answer becomes JSON.
type leaseEndpoint struct {
	name    string
	write   bool // through the log (Call), else a query after a ReadIndex
	get     bool // also served on GET, for endpoints that need no body
	command func(LeaseRequest) (module.Command, error)
	answer  func(LeaseRequest, lease.Answer) any
}

var leaseEndpoints = []leaseEndpoint{
	{name: "grant", write: true, command: grantCommand, answer: leaseInfo},
	{name: "keepalive", write: true, command: idCommand(lease.KeepAlive), answer: leaseInfo},
	{name: "revoke", write: true, command: idCommand(lease.Revoke), answer: leaseRevoked},
	{name: "ttl", command: ttlCommand, answer: leaseInfo},
	{name: "list", get: true, command: func(LeaseRequest) (module.Command, error) { return lease.List(), nil }, answer: leaseList},
}

func (s *Server) leaseRoutes(route func(pattern, name string, h http.HandlerFunc)) {
	for _, e := range leaseEndpoints {
		route("/v1/aspen/lease/"+e.name, "aspen_lease_"+e.name, s.leaseHandler(e))
	}
}

func (s *Server) leaseHandler(e leaseEndpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allowMethods(w, r, e.get) {
			return
		}
		var req LeaseRequest
		err := decodeStrict(r.Body, leaseBodyBytesMax, &req)
		if errors.Is(err, errEmptyBody) {
			err = nil // no body: every field absent
		}
		var cmd module.Command
		if err == nil {
			cmd, err = e.command(req)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		answerCall(s, w, r, "lease "+e.name, e.write, cmd, func(a lease.Answer) any { return e.answer(req, a) })
	}
}

func grantCommand(req LeaseRequest) (module.Command, error) {
	// Out of the configured range is the replica's to refuse; only what
	// would overflow nanoseconds is caught here.
	if req.TTL <= 0 || req.TTL > math.MaxInt64/int64(time.Second) {
		return module.Command{}, fmt.Errorf("TTL must be a positive number of seconds, got %d", req.TTL)
	}
	return lease.Grant(lease.ID(req.ID), req.TTL*int64(time.Second)), nil
}

// idCommand builds the command of a write that names one lease.
func idCommand(cmd func(lease.ID) module.Command) func(LeaseRequest) (module.Command, error) {
	return func(req LeaseRequest) (module.Command, error) {
		if err := checkID(req.ID); err != nil {
			return module.Command{}, err
		}
		return cmd(lease.ID(req.ID)), nil
	}
}

func ttlCommand(req LeaseRequest) (module.Command, error) {
	if err := checkID(req.ID); err != nil {
		return module.Command{}, err
	}
	return lease.TimeToLive(lease.ID(req.ID), req.Keys), nil
}

// checkID refuses ids no lease can have; the replica refuses them too, but
// a query would answer 404 where the request is malformed.
func checkID(id int64) error {
	if id <= 0 {
		return fmt.Errorf("ID must be a positive lease id, got %d", id)
	}
	return nil
}

func leaseInfo(_ LeaseRequest, a lease.Answer) any {
	info := LeaseInfo{ID: int64(a.Lease.ID), TTL: ceilSeconds(a.RemainingNs), GrantedTTL: ceilSeconds(a.Lease.TTLNs),
		KeyCount: a.Lease.Keys}
	for _, k := range a.Keys {
		info.Keys = append(info.Keys, string(k))
	}
	return info
}

func leaseRevoked(req LeaseRequest, a lease.Answer) any {
	return LeaseRevoked{ID: req.ID, Revision: a.Revision}
}

func leaseList(_ LeaseRequest, a lease.Answer) any {
	out := LeaseList{Leases: []LeaseListed{}}
	for _, l := range a.Leases {
		out.Leases = append(out.Leases, LeaseListed{ID: int64(l.ID), GrantedTTL: ceilSeconds(l.TTLNs), KeyCount: l.Keys})
	}
	return out
}

// ceilSeconds rounds up, so that a lease with any time left never reads as
// 0 seconds left.
func ceilSeconds(ns int64) int64 {
	if ns <= 0 {
		return 0
	}
	return (ns-1)/int64(time.Second) + 1
}
