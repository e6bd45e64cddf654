package sim

import (
	"bytes"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/node"
)

// Requests the store must refuse, each one way a client gets a request wrong.
// They never enter the history: the check is that the answer is a refusal.
var invalidRequests = []struct {
	name    string
	outcome node.Outcome // the refusal it must get
	txn     func(key []byte, l kv.Limits) kv.Txn
}{
	{"range end before its start", node.Invalid, func(key []byte, _ kv.Limits) kv.Txn {
		return kv.Txn{Then: []kv.Op{{Type: kv.OpRange, Key: key, End: key[:len(key)-1]}}}
	}},
	{"key over the size limit", node.TooLarge, func(_ []byte, l kv.Limits) kv.Txn {
		return kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: bytes.Repeat([]byte{'k'}, l.KeyBytesMax+1)}}}
	}},
	{"empty key", node.Invalid, func([]byte, kv.Limits) kv.Txn { return kv.Txn{Then: []kv.Op{{Type: kv.OpGet}}} }},
	{"limit on a delete range", node.Invalid, func(key []byte, _ kv.Limits) kv.Txn {
		return kv.Txn{Then: []kv.Op{{Type: kv.OpDeleteRange, Key: key, Prefix: true, Limit: 1}}}
	}},
	{"compare of an unknown result", node.Invalid, func(key []byte, _ kv.Limits) kv.Txn {
		return kv.Txn{Compares: []kv.Compare{{Key: key, Target: kv.TargetVersion, Result: kv.Greater + 1}}, Then: []kv.Op{{Type: kv.OpGet, Key: key}}}
	}},
	{"existence compared by order", node.Invalid, func(key []byte, _ kv.Limits) kv.Txn {
		return kv.Txn{Compares: []kv.Compare{{Key: key, Target: kv.TargetExists, Result: kv.Less}}}
	}},
	{"negative range limit", node.Invalid, func(key []byte, _ kv.Limits) kv.Txn {
		return kv.Txn{Then: []kv.Op{{Type: kv.OpRange, Key: key, Prefix: true, Limit: -1}}}
	}},
	{"range limit over the maximum", node.Invalid, func(key []byte, l kv.Limits) kv.Txn {
		return kv.Txn{Then: []kv.Op{{Type: kv.OpRange, Key: key, Prefix: true, Limit: l.RangeLimitMax + 1}}}
	}},
	{"range end over the size limit", node.TooLarge, func(key []byte, l kv.Limits) kv.Txn {
		return kv.Txn{Then: []kv.Op{{Type: kv.OpRange, Key: key, End: bytes.Repeat([]byte{0xff}, l.KeyBytesMax+1)}}}
	}},
	{"compare of an unknown target", node.Invalid, func(key []byte, _ kv.Limits) kv.Txn {
		return kv.Txn{Compares: []kv.Compare{{Key: key, Target: kv.TargetLockable + 1, Result: kv.Equal}}}
	}},
	{"compared value over the size limit", node.TooLarge, func(key []byte, l kv.Limits) kv.Txn {
		return kv.Txn{Compares: []kv.Compare{{Key: key, Target: kv.TargetValue, Result: kv.Equal, Value: zeros(l.ValueBytesMax + 1)}}}
	}},
	{"range end on a get", node.Invalid, func(key []byte, _ kv.Limits) kv.Txn {
		return kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: key, End: append(key, 0)}}}
	}},
	{"value over the size limit", node.TooLarge, func(key []byte, l kv.Limits) kv.Txn {
		return kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: key, Value: zeros(l.ValueBytesMax + 1)}}}
	}},
	{"op of an unknown type", node.Invalid, func(key []byte, _ kv.Limits) kv.Txn {
		return kv.Txn{Then: []kv.Op{{Type: kv.OpDeleteRange + 1, Key: key}}}
	}},
	{"more ops than a txn holds", node.TooLarge, func(key []byte, l kv.Limits) kv.Txn {
		ops := make([]kv.Op, l.TxnOpsMax+1)
		for i := range ops {
			ops[i] = kv.Op{Type: kv.OpPut, Key: key, Value: []byte("never")}
		}
		return kv.Txn{Then: ops}
	}},
}

// zeroValue backs the oversized values of invalid requests. The store
// refuses them unread, so every run may share one: a fresh 512 KiB for each
// was 7% of a baseline run's allocated bytes, and the collector runs by bytes.
var zeroValue = make([]byte, kv.DefaultLimits().ValueBytesMax+1)

// zeros returns n zero bytes, which nothing may write to.
func zeros(n int) []byte {
	if n <= len(zeroValue) {
		return zeroValue[:n:n]
	}
	return make([]byte, n)
}

// invalidTxn builds the invalid request in.Key picks, on a key of in's group.
func (w *World) invalidTxn(in opInput) kv.Txn {
	key := []byte(w.names[in.Group][0])
	return invalidRequests[in.Key].txn(key, kv.DefaultLimits())
}

// Lease requests the store must refuse, sent by lease holders now and then
// (invalid_prob). A lease no one was ever granted answers "not found".
var invalidLeaseRequests = []struct {
	name    string
	outcome node.Outcome
	query   bool // a read (no session sequence number)
	req     func(key []byte, l lease.Limits) node.Request
}{
	{"a grant with a zero TTL", node.Invalid, false, leaseCall(func(l lease.Limits) module.Command { return lease.Grant(0, 0) })},
	{"a grant with a TTL below the minimum", node.Invalid, false, leaseCall(func(l lease.Limits) module.Command { return lease.Grant(0, l.TTLMinNs-1) })},
	{"a grant with a TTL above the maximum", node.Invalid, false, leaseCall(func(l lease.Limits) module.Command { return lease.Grant(0, l.TTLMaxNs+1) })},
	{"a grant of a negative id", node.Invalid, false, leaseCall(func(l lease.Limits) module.Command { return lease.Grant(-7, l.TTLMinNs) })},
	{"a keep-alive of lease 0", node.Invalid, false, leaseCall(func(lease.Limits) module.Command { return lease.KeepAlive(0) })},
	{"a revoke of a negative lease", node.Invalid, false, leaseCall(func(lease.Limits) module.Command { return lease.Revoke(-1) })},
	{"a keep-alive of a lease never granted", node.NotFound, false, leaseCall(func(lease.Limits) module.Command { return lease.KeepAlive(leaseUnknownID) })},
	{"a revoke of a lease never granted", node.NotFound, false, leaseCall(func(lease.Limits) module.Command { return lease.Revoke(leaseUnknownID) })},
	{"a time-to-live of a lease never granted", node.NotFound, true, leaseCall(func(lease.Limits) module.Command { return lease.TimeToLive(leaseUnknownID, true) })},
	{"an expiry asked by a client", node.Invalid, false, leaseCall(func(lease.Limits) module.Command {
		return module.Command{Kind: lease.CmdExpire, Body: []byte{1, 2}}
	})},
	{"a call of a kind no module serves", node.Invalid, false, leaseCall(func(lease.Limits) module.Command { return module.Command{Kind: 127} })},
	{"a put attached to a lease never granted", node.NotFound, false, func(key []byte, _ lease.Limits) node.Request {
		return node.Request{Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: key, Value: []byte("never"), Lease: leaseUnknownID}}}}
	}},
}

func leaseCall(c func(lease.Limits) module.Command) func([]byte, lease.Limits) node.Request {
	return func(_ []byte, l lease.Limits) node.Request { return node.Request{Call: call(c(l))} }
}

// holderInvalid sends one of the lease requests the store must refuse.
func (w *World) holderInvalid(h *leaseHolder) {
	i := w.rng.IntN(len(invalidLeaseRequests))
	key := []byte(w.names[w.rng.IntN(len(w.names))][0])
	w.holderSend(h, &holderOp{action: actInvalid, invalid: i, req: invalidLeaseRequests[i].req(key, lease.DefaultLimits())})
}

// Job requests the store must refuse, sent by submitters now and then
// (jobs.invalid_prob). A job no one submitted answers "not found".
var invalidJobRequests = []struct {
	name    string
	outcome node.Outcome
	query   bool
	req     func(l jobs.Limits) node.Request
}{
	{"a submit with an empty type", node.Invalid, false, jobCall(func(l jobs.Limits) module.Command {
		return jobs.Submit(jobs.Spec{AttemptsMax: 1, TimeoutNs: l.TimeoutMinNs})
	})},
	{"a submit with no attempts", node.Invalid, false, jobCall(func(l jobs.Limits) module.Command {
		return jobs.Submit(jobs.Spec{Type: "t0", TimeoutNs: l.TimeoutMinNs})
	})},
	{"a submit with a timeout below the minimum", node.Invalid, false, jobCall(func(l jobs.Limits) module.Command {
		return jobs.Submit(jobs.Spec{Type: "t0", AttemptsMax: 1, TimeoutNs: l.TimeoutMinNs - 1})
	})},
	{"a submit with a payload over the limit", node.TooLarge, false, jobCall(func(l jobs.Limits) module.Command {
		return jobs.Submit(jobs.Spec{Type: "t0", AttemptsMax: 1, TimeoutNs: l.TimeoutMinNs, Payload: make([]byte, l.PayloadBytesMax+1)})
	})},
	{"a lease of no types", node.Invalid, false, jobCall(func(jobs.Limits) module.Command { return jobs.Lease("w", nil, 1) })},
	{"a heartbeat under token 0", node.Invalid, false, jobCall(func(jobs.Limits) module.Command { return jobs.Heartbeat(1, 0) })},
	{"a complete of a job never submitted", node.NotFound, false, jobCall(func(jobs.Limits) module.Command {
		return jobs.Complete(jobUnknownID, 1, jobs.Result{})
	})},
	{"a cancel of a job never submitted", node.NotFound, false, jobCall(func(jobs.Limits) module.Command { return jobs.Cancel(jobUnknownID) })},
	{"a dead-letter retry of a job never submitted", node.NotFound, false, jobCall(func(jobs.Limits) module.Command { return jobs.RetryDead(jobUnknownID) })},
	{"a job expiry asked by a client", node.Invalid, false, jobCall(func(jobs.Limits) module.Command {
		return module.Command{Kind: jobs.CmdExpire, Body: []byte{0}}
	})},
	{"a get of a job never submitted", node.NotFound, true, jobCall(func(jobs.Limits) module.Command { return jobs.Get(jobUnknownID) })},
}

func jobCall(c func(jobs.Limits) module.Command) func(jobs.Limits) node.Request {
	return func(l jobs.Limits) node.Request { return node.Request{Call: call(c(l))} }
}
