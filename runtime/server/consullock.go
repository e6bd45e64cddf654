package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/aspen-db/aspen/core/kv"
)

// Consul's locks on the KV API: PUT /v1/kv/K?acquire=S and ?release=S are
// puts that take or give up the key's lock for session S (core/kv's
// Op.Lock), each guarded by a compare so that the answer is Consul's true or
// false. The store itself keeps one holder: an unguarded acquire of a held
// key would change nothing either.

// putOp reads a KV PUT's parameters into the put it makes: Consul's ?flags
// and ?acquire or ?release, and Aspen's ?lease. Consul refuses any two of
// cas, acquire and release together ("Conflicting flags"), and so does Aspen,
// before anything is proposed.
func putOp(r *http.Request, key string, value []byte) (kv.Op, error) {
	put := kv.Op{Type: kv.OpPut, Key: []byte(key), Value: value}
	var err error
	if put.Flags, _, err = uintParam(r, "flags"); err != nil {
		return put, err
	}
	if put.Lease, err = leaseParam(r); err != nil {
		return put, err
	}
	q := r.URL.Query()
	if q.Has("cas") && q.Has("acquire") || q.Has("cas") && q.Has("release") || q.Has("acquire") && q.Has("release") {
		return put, errors.New("conflicting flags: give at most one of cas, acquire and release")
	}
	switch {
	case q.Has("acquire"):
		put.Lock, put.Session = kv.LockAcquire, q.Get("acquire")
	case q.Has("release"):
		put.Lock, put.Session = kv.LockRelease, q.Get("release")
	default:
		return put, nil
	}
	if put.Session == "" {
		return put, fmt.Errorf("missing session: ?acquire= and ?release= name the session (PUT /v1/session/create makes one)")
	}
	return put, nil
}

// lockTxn is a lock op's put under its guard.
func lockTxn(put kv.Op) kv.Txn {
	return kv.Txn{Compares: []kv.Compare{lockCompare(put)}, Then: []kv.Op{put}}
}

// lockCompare holds when put's lock op will do something: an acquire when
// its session could take the key now (it holds it, or the key is free and
// past its lock delay), a release when its session holds the key. A session
// that does not exist makes the replica refuse an acquire whole (400
// "invalid session"), as Consul answers it with an error rather than false.
func lockCompare(put kv.Op) kv.Compare {
	target := kv.TargetLockable
	if put.Lock == kv.LockRelease {
		target = kv.TargetSession
	}
	return kv.Compare{Key: put.Key, Target: target, Result: kv.Equal, Value: []byte(put.Session)}
}
