package sim

import (
	"bytes"
	"fmt"
	"math"
	"slices"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/node"
)

// clientIDBase offsets client session ids from node ids, for readable traces.
const clientIDBase = 1000

// memo is the last state a client saw of a key; CAS and transactions compare
// against it.
type memo struct {
	present bool
	value   string
	rev     int64
}

type simClient struct {
	idx     int
	session uint64
	seq     uint64 // last write sequence number used
	op      *clientOp
	target  int
	memos   map[string]memo
	puts    int
}

// clientOp is the operation a client has in flight, across retries.
type clientOp struct {
	in       opInput
	txn      kv.Txn
	reqSeq   uint64 // the Seq its requests carry
	write    bool
	start    int64
	deadline int64
	attempt  int
}

func newSimClient(i int) *simClient {
	return &simClient{idx: i, session: uint64(clientIDBase + i), memos: map[string]memo{}}
}

// clientNext starts the client's next operation, if the workload still runs.
func (w *World) clientNext(i int) {
	c := w.clients[i]
	if !w.clientsOn || c.op != nil {
		return
	}
	in, cold := w.nextCold()
	if !cold {
		in = w.genOp(c)
	}
	op := &clientOp{in: in, txn: w.toTxn(in), start: w.now, deadline: w.now + millis(float64(w.sc.Workload.OpDeadlineMs))}
	op.write = !op.txn.ReadOnly()
	if op.write {
		c.seq++
		op.reqSeq = c.seq
	} else {
		w.readSeq++
		op.reqSeq = 1<<63 | w.readSeq
	}
	c.op = op
	c.target = w.liveNode()
	w.attempt(c)
}

// numberRequest gives req the client's session and a sequence number (a
// write the client's next, a read one no write uses), and returns the
// request's start and deadline.
func (w *World) numberRequest(req *node.Request, session uint64, seq *uint64, write bool) (start, deadline int64) {
	req.Client = session
	if write {
		*seq++
		req.Seq = *seq
	} else {
		w.readSeq++
		req.Seq = 1<<63 | w.readSeq
	}
	return w.now, w.now + millis(float64(w.sc.Workload.OpDeadlineMs))
}

// timeAttempt schedules the timeout of attempt n of client's request: when
// it fires and the request is still that attempt, the actor retries.
func (w *World) timeAttempt(client, n int) {
	w.schedule(event{at: w.now + millis(float64(w.sc.Workload.AttemptTimeoutMs)), kind: evAttemptTimeout, node: -1, client: client, n: n})
}

func (w *World) attempt(c *simClient) {
	c.op.attempt++
	w.toNode(c.target, node.Request{Client: c.session, Seq: c.op.reqSeq, Txn: c.op.txn, Stale: c.op.in.Kind == kStaleGet})
	w.timeAttempt(c.idx, c.op.attempt)
}

// retry sends the same request (same sequence number, so it applies at most
// once) to the next node, or gives up once the deadline has passed.
func (w *World) retry(c *simClient) {
	if w.now >= c.op.deadline {
		w.giveUp(c)
		return
	}
	c.target = w.liveNode()
	w.attempt(c)
}

func (w *World) attemptTimeout(e event) {
	c := w.clients[e.client]
	if c.op != nil && c.op.attempt == e.n {
		w.retry(c)
	}
}

func (w *World) clientResponse(e event) {
	c := w.clients[e.client]
	if c.op == nil || e.resp.Seq != c.op.reqSeq {
		return // an answer to an operation already finished
	}
	r := e.resp
	switch {
	case c.op.in.Kind == kInvalid && (r.Outcome == node.OK || r.Outcome.Refused()):
		if want := invalidRequests[c.op.in.Key]; r.Outcome != want.outcome {
			w.check.fail("client %d: request with %s answered %v, want %v", c.idx, want.name, r.Outcome, want.outcome)
		}
		w.nextOp(c)
	case r.Outcome == node.OK:
		if c.op.in.Lease != 0 {
			w.leasedPutAcked(c, r.Result.Revision)
		}
		w.complete(c, w.toOutput(c, r.Result))
	case r.Outcome == node.NotFound && c.op.in.Lease != 0:
		w.leasedPutRefused(c, r) // its lease ended: legitimate, if some replica ended it
	case r.Outcome.Refused():
		w.check.fail("client %d: valid request refused: %v", c.idx, r.Err())
		w.giveUp(c)
	default:
		w.retry(c)
	}
}

// giveUp ends an operation whose outcome is unknown. A write may still take
// effect at any later time, so it enters the history as never returning; a read
// that never answered says nothing and is left out.
func (w *World) giveUp(c *simClient) {
	if c.op.write && c.op.in.Kind != kInvalid {
		w.record(c, opOutput{Unknown: true}, math.MaxInt64)
		w.res.OpsUnknown++
	}
	w.nextOp(c)
}

func (w *World) complete(c *simClient, out opOutput) {
	w.record(c, out, w.now)
	w.nextOp(c)
}

func (w *World) record(c *simClient, out opOutput, ret int64) {
	op := porcupine.Operation{ClientId: c.idx, Input: c.op.in, Call: c.op.start, Output: out, Return: ret}
	switch c.op.in.Kind {
	case kStaleGet:
		return // a stale read promises no order; it only exercises the path
	case kColdPut:
		w.coldOps = append(w.coldOps, op)
		return
	}
	w.history = append(w.history, op)
}

func (w *World) nextOp(c *simClient) {
	c.op = nil
	w.schedule(event{at: w.thinkTime(), kind: evClientNext, node: -1, client: c.idx})
}

// genOp draws the client's next operation from the scenario's mix.
func (w *World) genOp(c *simClient) opInput {
	wl := w.sc.Workload
	in := opInput{Group: w.rng.IntN(wl.Groups), Key: w.rng.IntN(wl.KeysPerGroup)}
	in.Kind = w.pickKind()
	switch in.Kind {
	case kPut:
		in.Value = w.newValue(c)
	case kCAS:
		m := c.memos[w.names[in.Group][in.Key]]
		in.Cmps = []txnCmp{modRevCmp(in.Key, m)}
		in.Value = w.newValue(c)
	case kTxn:
		w.genTxn(c, &in)
	case kScan, kDeletePrefix:
		w.genPrefix(&in)
	case kRange, kDeleteRange:
		w.genInterval(&in)
	case kInvalid:
		in.Key = w.rng.IntN(len(invalidRequests))
	case kLeasePut:
		w.genLeasePut(c, &in)
	}
	if in.Kind == kScan || in.Kind == kRange {
		w.maybeLimit(&in)
	}
	return in
}

// modRevCmp compares key k's mod revision with the one the client saw. An
// empty value names no single write, so the model could not tell whether a
// revision seen with it is the current one; such a key is compared by value.
func modRevCmp(k int, m memo) txnCmp {
	if m.present && m.value == "" {
		return txnCmp{Kind: cmpValue, Key: k}
	}
	return txnCmp{Kind: cmpModRev, Key: k, Value: m.value, Rev: m.rev}
}

func (w *World) pickKind() opKind {
	if w.mix == nil {
		w.mix = make([]int, len(mixKinds))
		for i, k := range mixKinds {
			w.mix[i] = w.sc.Workload.Mix[k]
		}
	}
	total := 0
	for _, weight := range w.mix {
		total += weight
	}
	pick := w.rng.IntN(total)
	for i, weight := range w.mix {
		if pick < weight {
			return opKind(i + 1)
		}
		pick -= weight
	}
	return kGet
}

// emptyValueOneIn is how rarely a put writes an empty value.
const emptyValueOneIn = 16

// newValue returns a value no other put writes, or now and then an empty one.
func (w *World) newValue(c *simClient) string {
	c.puts++
	if w.rng.IntN(emptyValueOneIn) == 0 {
		return ""
	}
	return fmt.Sprintf("c%d-%d", c.idx, c.puts)
}

// genTxn builds a transaction over one group: one or two compares against what
// the client last saw, and branches of gets, puts and deletes.
func (w *World) genTxn(c *simClient, in *opInput) {
	keys := w.sc.Workload.KeysPerGroup
	for i := 0; i < 1+w.rng.IntN(2); i++ {
		k := w.rng.IntN(keys)
		m := c.memos[w.names[in.Group][k]]
		in.Cmps = append(in.Cmps, w.genCmp(k, m))
	}
	branch := func() []txnOp {
		var ops []txnOp
		for i := 0; i < 1+w.rng.IntN(3); i++ {
			op := txnOp{Kind: []opKind{kGet, kPut, kDelete}[w.rng.IntN(3)], Key: w.rng.IntN(keys)}
			if op.Kind == kPut {
				op.Value = w.newValue(c)
			}
			ops = append(ops, op)
		}
		return ops
	}
	in.Then, in.Else = branch(), branch()
}

// genCmp draws one compare on key k, against what the client last saw of it.
func (w *World) genCmp(k int, m memo) txnCmp {
	cmp := txnCmp{Key: k, Kind: cmpKind(1 + w.rng.IntN(int(cmpKindsMax))), Value: m.value, Rev: m.rev}
	switch cmp.Kind {
	case cmpValue:
		if !m.present {
			cmp.Kind = cmpAbsent
		}
	case cmpModRev:
		cmp = modRevCmp(k, m)
	case cmpVersionAbove:
		cmp.Rev = int64(w.rng.IntN(3))
	}
	// Equality compares may be negated (not equal); orderings cannot.
	cmp.Not = cmp.Kind <= cmpModRev && w.rng.IntN(4) == 0
	return cmp
}

// toTxn translates a model operation into the request the store executes.
func (w *World) toTxn(in opInput) kv.Txn {
	switch in.Kind {
	case kColdPut:
		return w.coldTxn(in)
	case kInvalid:
		return w.invalidTxn(in)
	}
	names := w.names[in.Group]
	key := []byte(names[in.Key])
	switch in.Kind {
	case kGet, kStaleGet:
		return kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: key}}}
	case kPut:
		return kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: key, Value: []byte(in.Value), Lease: in.Lease}}}
	case kDelete:
		return kv.Txn{Then: []kv.Op{{Type: kv.OpDelete, Key: key}}}
	case kCAS:
		return kv.Txn{Compares: w.toCompares(in), Then: []kv.Op{{Type: kv.OpPut, Key: key, Value: []byte(in.Value)}}}
	case kScan, kRange:
		return kv.Txn{Then: []kv.Op{spanOp(kv.OpRange, in)}}
	case kDeletePrefix, kDeleteRange:
		return kv.Txn{Then: []kv.Op{spanOp(kv.OpDeleteRange, in)}}
	}
	return kv.Txn{Compares: w.toCompares(in), Then: w.toOps(in.Group, in.Then), Else: w.toOps(in.Group, in.Else)}
}

func (w *World) toCompares(in opInput) []kv.Compare {
	var out []kv.Compare
	for _, c := range in.Cmps {
		kc := kv.Compare{Key: []byte(w.names[in.Group][c.Key]), Result: kv.Equal}
		switch c.Kind {
		case cmpValue:
			kc.Target, kc.Value = kv.TargetValue, []byte(c.Value)
		case cmpExists, cmpAbsent:
			kc.Target, kc.Exists = kv.TargetExists, c.Kind == cmpExists
		case cmpModRev:
			kc.Target, kc.Rev = kv.TargetModRev, c.Rev
		case cmpVersionAbove:
			kc.Target, kc.Result, kc.Rev = kv.TargetVersion, kv.Greater, c.Rev
		case cmpValueBelow:
			kc.Target, kc.Result, kc.Value = kv.TargetValue, kv.Less, []byte(c.Value)
		case cmpCreated:
			kc.Target, kc.Result = kv.TargetCreateRev, kv.Greater
		}
		if c.Not {
			kc.Result = kv.NotEqual
		}
		out = append(out, kc)
	}
	return out
}

func (w *World) toOps(group int, ops []txnOp) []kv.Op {
	out := make([]kv.Op, 0, len(ops))
	for _, op := range ops {
		key := []byte(w.names[group][op.Key])
		switch op.Kind {
		case kGet:
			out = append(out, kv.Op{Type: kv.OpGet, Key: key})
		case kPut:
			out = append(out, kv.Op{Type: kv.OpPut, Key: key, Value: []byte(op.Value)})
		case kDelete:
			out = append(out, kv.Op{Type: kv.OpDelete, Key: key})
		}
	}
	return out
}

// toOutput reads a store response as the model sees it, and refreshes the
// client's memory of the keys it saw.
func (w *World) toOutput(c *simClient, r kv.Response) opOutput {
	in := c.op.in
	out := opOutput{Ok: r.Succeeded, Rev: r.Revision}
	switch in.Kind {
	case kGet:
		out.Reads = []readResult{w.observe(c, result(r, 0), in.Group, in.Key)}
	case kScan, kRange:
		out.Reads, out.Bad = w.spanReads(c, result(r, 0), in.Group)
		out.More = result(r, 0).More
	case kPut, kCAS:
		if in.Kind == kPut || r.Succeeded {
			c.memos[w.names[in.Group][in.Key]] = memo{present: true, value: in.Value, rev: r.Revision}
		}
	case kDelete, kDeletePrefix, kDeleteRange:
		out.Deleted = []int64{result(r, 0).Deleted}
		if in.Kind == kDelete {
			c.memos[w.names[in.Group][in.Key]] = memo{}
		}
	case kTxn:
		branch := in.Then
		if !r.Succeeded {
			branch = in.Else
		}
		for i, op := range branch {
			switch op.Kind {
			case kGet:
				// Not remembered: a later put of the same key in the same txn
				// shares the revision, so the memo's "this revision means this
				// value" would be false (the simulator's first sweep found that).
				out.Reads = append(out.Reads, toRead(result(r, i)))
			case kDelete:
				out.Deleted = append(out.Deleted, result(r, i).Deleted)
			}
		}
	}
	return out
}

// result returns op i's result, or an empty one when the answer has too few.
func result(r kv.Response, i int) kv.OpResult {
	if i >= len(r.Results) {
		return kv.OpResult{}
	}
	return r.Results[i]
}

// toRead is the first record of a get's result as the model sees it.
func toRead(res kv.OpResult) readResult {
	if len(res.Records) == 0 {
		return readResult{}
	}
	return recordRead(res.Records[0])
}

func recordRead(kv kv.KeyValue) readResult {
	return readResult{Present: true, Value: string(kv.Value), Mod: kv.ModRev, Create: kv.CreateRev, Version: kv.Version}
}

// observe returns what a get shows and remembers it.
func (w *World) observe(c *simClient, res kv.OpResult, group, key int) readResult {
	rd := toRead(res)
	c.memos[w.names[group][key]] = memo{present: rd.Present, value: rd.Value, rev: rd.Mod}
	return rd
}

// spanReads places a scan's records by key index. Records out of key order,
// or keys that are not the group's, make the answer malformed.
func (w *World) spanReads(c *simClient, res kv.OpResult, group int) ([]readResult, string) {
	reads := make([]readResult, modelKeysMax)
	for i, rec := range res.Records {
		if i > 0 && bytes.Compare(res.Records[i-1].Key, rec.Key) >= 0 {
			return nil, fmt.Sprintf("keys out of order: %q then %q", res.Records[i-1].Key, rec.Key)
		}
		k := slices.Index(w.names[group], string(rec.Key))
		if k < 0 {
			return nil, fmt.Sprintf("key %q is not in group %d", rec.Key, group)
		}
		reads[k] = recordRead(rec)
		c.memos[string(rec.Key)] = memo{present: true, value: string(rec.Value), rev: rec.ModRev}
	}
	return reads, ""
}
