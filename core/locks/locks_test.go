package locks

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/sim/disk"
)

// rig applies commands to a KV store, a lease table and a session table
// wired as a node wires them, writing every batch to a simulated disk.
type rig struct {
	t      *testing.T
	kv     *kv.Module
	leases *lease.Module
	m      *Module
	d      *disk.Disk
	idx    uint64
	now    int64
	events []kv.Event
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, d: disk.New(), now: int64(time.Hour)}
	r.kv = kv.NewModule(kv.New())
	r.kv.EmitTo(&r.events)
	r.leases = lease.NewModule(lease.DefaultLimits(), r.kv)
	r.m = NewModule(DefaultLimits(), r.kv, r.leases)
	return r
}

func (r *rig) apply(to module.Module, c module.Command) module.Answer {
	r.t.Helper()
	if v, ok := to.(module.Validator); ok && c.Kind != lease.CmdExpire { // the leader's own: never validated
		if a := v.Validate(c.Kind, c.Body); a.Outcome != module.OK {
			return a
		}
	}
	r.idx++
	env := &module.Env{Index: r.idx, NowNs: r.now, Batch: &storage.Batch{}}
	a := to.Apply(env, c.Kind, c.Body)
	if err := r.d.Apply(*env.Batch); err != nil {
		r.t.Fatal(err)
	}
	return a
}

func (r *rig) txn(t kv.Txn) (kv.Response, module.Answer) {
	r.t.Helper()
	a := r.apply(r.kv, kv.Command(t))
	if a.Outcome != module.OK {
		return kv.Response{}, a
	}
	return *a.Value.(*kv.Response), a
}

func (r *rig) create(s Session) Session {
	r.t.Helper()
	a := r.apply(r.m, Create(s))
	if a.Outcome != module.OK {
		r.t.Fatalf("create %q: %v %s", s.ID, a.Outcome, a.Detail)
	}
	return a.Value.(Answer).Sessions[0]
}

// acquire is Consul's PUT ?acquire: the put runs when the session could
// take the key, and the answer is whether it did.
func (r *rig) acquire(key, session, value string) bool {
	r.t.Helper()
	resp, a := r.txn(kv.Txn{
		Compares: []kv.Compare{{Key: []byte(key), Target: kv.TargetLockable, Result: kv.Equal, Value: []byte(session)}},
		Then:     []kv.Op{{Type: kv.OpPut, Key: []byte(key), Value: []byte(value), Lock: kv.LockAcquire, Session: session}},
	})
	if a.Outcome != module.OK {
		r.t.Fatalf("acquire %q by %q: %v %s", key, session, a.Outcome, a.Detail)
	}
	return resp.Succeeded
}

func (r *rig) release(key, session string) bool {
	r.t.Helper()
	rec, _ := r.get(key)
	resp, _ := r.txn(kv.Txn{
		Compares: []kv.Compare{{Key: []byte(key), Target: kv.TargetSession, Result: kv.Equal, Value: []byte(session)}},
		Then:     []kv.Op{{Type: kv.OpPut, Key: []byte(key), Value: rec.Value, Flags: rec.Flags, Lock: kv.LockRelease, Session: session}},
	})
	return resp.Succeeded
}

func (r *rig) get(key string) (kv.Record, bool) {
	resp := r.kv.M.Read(kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: []byte(key)}}})
	if recs := resp.Results[0].Records; len(recs) == 1 {
		return recs[0].Record, true
	}
	return kv.Record{}, false
}

func (r *rig) want(key, session string, lockIndex uint64) {
	r.t.Helper()
	rec, ok := r.get(key)
	if !ok || rec.Session != session || rec.LockIndex != lockIndex {
		r.t.Fatalf("%q: present %v, session %q, lock index %d; want session %q, lock index %d", key, ok, rec.Session, rec.LockIndex, session, lockIndex)
	}
}

// reload checks that the table loaded from disk, and the one restored from
// a snapshot, equal the live one, holders included.
func (r *rig) reload() {
	r.t.Helper()
	for _, how := range []string{"disk", "snapshot"} {
		store := kv.NewModule(kv.New())
		leases := lease.NewModule(lease.DefaultLimits(), store)
		other := NewModule(DefaultLimits(), store, leases)
		var err error
		if how == "disk" {
			if err = store.Load(r.d); err == nil {
				err = other.Load(r.d)
			}
		} else if err = store.Restore(r.kv.Freeze().Encode()); err == nil {
			err = other.Restore(r.m.Freeze().Encode())
		}
		if err != nil {
			r.t.Fatalf("%s: %v", how, err)
		}
		if other.Hash() != r.m.Hash() || len(other.holder) != len(r.m.holder) {
			r.t.Fatalf("from %s: hash %x holders %d, want %x and %d", how, other.Hash(), len(other.holder), r.m.Hash(), len(r.m.holder))
		}
		for k, s := range r.m.holder {
			if other.holder[k] != s {
				r.t.Fatalf("from %s: %q held by %q, want %q", how, k, other.holder[k], s)
			}
		}
	}
}

// Consul's lock semantics on a key: LockIndex counts acquisitions, the
// holder acquiring again changes only the value, another session gets
// false, a plain put keeps the lock, and a release by anyone but the holder
// gets false.
func TestAcquireRelease(t *testing.T) {
	r := newRig(t)
	a := r.create(Session{ID: "a", Node: "n1"})
	b := r.create(Session{ID: "b", Node: "n1"})
	if !r.acquire("lock", a.ID, "v1") {
		t.Fatal("a could not take a free key")
	}
	r.want("lock", "a", 1)
	if !r.acquire("lock", a.ID, "v2") {
		t.Fatal("the holder could not acquire again")
	}
	r.want("lock", "a", 1)
	if r.acquire("lock", b.ID, "v3") {
		t.Fatal("b took a held key")
	}
	if rec, _ := r.get("lock"); string(rec.Value) != "v2" {
		t.Fatalf("a failed acquire wrote %q", rec.Value)
	}
	r.txn(kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte("lock"), Value: []byte("plain"), Flags: 42}}})
	r.want("lock", "a", 1)
	if rec, _ := r.get("lock"); rec.Flags != 42 {
		t.Fatalf("flags %d, want 42", rec.Flags)
	}
	if r.release("lock", b.ID) {
		t.Fatal("b released a's lock")
	}
	r.reload()
	if !r.release("lock", a.ID) {
		t.Fatal("a could not release its lock")
	}
	r.want("lock", "", 1)
	if !r.acquire("lock", b.ID, "v4") {
		t.Fatal("b could not take the released key")
	}
	r.want("lock", "b", 2)
	r.reload()

	// An unguarded acquire of a held key does nothing either: the store,
	// not the API, keeps one holder.
	resp, _ := r.txn(kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte("lock"), Value: []byte("x"), Lock: kv.LockAcquire, Session: "a"}}})
	r.want("lock", "b", 2)
	if len(resp.Results) != 1 {
		t.Fatalf("results %v", resp.Results)
	}
}

// An acquire naming a session that does not exist is refused whole, with
// nothing changed.
func TestAcquireUnknownSession(t *testing.T) {
	r := newRig(t)
	rev := r.kv.M.Revision()
	_, a := r.txn(kv.Txn{
		Then: []kv.Op{{Type: kv.OpPut, Key: []byte("other"), Value: []byte("x")},
			{Type: kv.OpPut, Key: []byte("lock"), Value: []byte("x"), Lock: kv.LockAcquire, Session: "nobody"}},
	})
	if a.Outcome != module.Invalid || r.kv.M.Revision() != rev {
		t.Fatalf("acquire by an unknown session: %v %q, revision %d -> %d", a.Outcome, a.Detail, rev, r.kv.M.Revision())
	}
}

// Destroying a session releases what it holds (behavior release) or deletes
// it (behavior delete), all at one revision, and nobody may take those keys
// during the lock delay.
func TestInvalidation(t *testing.T) {
	r := newRig(t)
	rel := r.create(Session{ID: "rel", Node: "n1", LockDelayNs: int64(15 * time.Second)})
	del := r.create(Session{ID: "del", Node: "n1", Behavior: Delete})
	other := r.create(Session{ID: "other", Node: "n2"})
	for _, k := range []string{"r1", "r2"} {
		r.acquire(k, rel.ID, "v")
	}
	r.acquire("d1", del.ID, "v")
	r.events = nil
	r.apply(r.m, Destroy(rel.ID))
	r.want("r1", "", 1)
	r.want("r2", "", 1)
	if len(r.events) != 2 || r.events[0].Revision != r.events[1].Revision {
		t.Fatalf("release events %+v: want two at one revision", r.events)
	}
	if r.acquire("r1", other.ID, "mine") {
		t.Fatal("a key was taken during its lock delay")
	}
	r.reload()
	r.now += int64(15 * time.Second)
	if !r.acquire("r1", other.ID, "mine") {
		t.Fatal("a key could not be taken once its lock delay passed")
	}
	r.apply(r.m, Destroy(del.ID))
	if _, ok := r.get("d1"); ok {
		t.Fatal("behavior delete left the key")
	}
	if r.apply(r.m, Destroy(del.ID)).Outcome != module.OK {
		t.Fatal("destroying a gone session is not ok, as in Consul")
	}
	r.reload()
}

// A session's TTL rides on a lease of twice the TTL: renewing it keeps the
// session; once the lease expires on replicated time the session is gone
// and its keys are released in the same apply.
func TestTTLExpiry(t *testing.T) {
	r := newRig(t)
	s := r.create(Session{ID: "ttl", Node: "n1", TTLNs: int64(10 * time.Second)})
	if s.Lease == 0 {
		t.Fatal("a session with a TTL has no lease")
	}
	l, _, _ := r.leases.Table().Get(lease.ID(s.Lease))
	if l.TTLNs != int64(20*time.Second) {
		t.Fatalf("lease TTL %v, want twice the session's", time.Duration(l.TTLNs))
	}
	r.acquire("k", s.ID, "v")
	r.now += int64(15 * time.Second)
	if a := r.apply(r.m, Renew(s.ID)); a.Outcome != module.OK {
		t.Fatalf("renew: %v %s", a.Outcome, a.Detail)
	}
	r.now += int64(19 * time.Second)
	r.expire(s.Lease)
	if !r.m.Live(s.ID) {
		t.Fatal("a renewed session expired before twice its TTL from the renewal")
	}
	r.now += int64(time.Second)
	r.expire(s.Lease)
	if r.m.Live(s.ID) {
		t.Fatal("the session outlived its lease")
	}
	r.want("k", "", 1)
	if a := r.apply(r.m, Renew(s.ID)); a.Outcome != module.NotFound {
		t.Fatalf("renew of an expired session: %v, want not found", a.Outcome)
	}
	r.reload()
}

// expire applies the leader's expiry of lease id at r.now.
func (r *rig) expire(id int64) {
	body := binary.AppendVarint(binary.AppendUvarint(nil, 1), id)
	r.apply(r.leases, module.Command{Kind: lease.CmdExpire, Body: body})
}

// Bad requests are refused before anything is proposed.
func TestRefusals(t *testing.T) {
	r := newRig(t)
	for _, c := range []struct {
		s    Session
		want module.Outcome
	}{
		{Session{ID: "", Node: "n"}, module.Invalid},
		{Session{ID: "x"}, module.Invalid},
		{Session{ID: "x", Node: "n", TTLNs: int64(9 * time.Second)}, module.Invalid},
		{Session{ID: "x", Node: "n", TTLNs: int64(86401 * time.Second)}, module.Invalid},
		{Session{ID: "x", Node: "n", LockDelayNs: int64(61 * time.Second)}, module.Invalid},
	} {
		if a := r.apply(r.m, Create(c.s)); a.Outcome != c.want {
			t.Errorf("create %+v: %v %s, want %v", c.s, a.Outcome, a.Detail, c.want)
		}
	}
	r.create(Session{ID: "x", Node: "n"})
	if a := r.apply(r.m, Create(Session{ID: "x", Node: "n"})); a.Outcome != module.Conflict {
		t.Errorf("create of a taken id: %v, want conflict", a.Outcome)
	}
	if a := r.apply(r.m, Renew("nope")); a.Outcome != module.NotFound {
		t.Errorf("renew of an unknown session: %v, want not found", a.Outcome)
	}
}
