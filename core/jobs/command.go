package jobs

import (
	"encoding/binary"
	"fmt"

	"github.com/aspen-db/aspen/core/module"
)

// Command bodies, field by field:
//
//	submit:    type | payload | priority varint | attempts max varint |
//	           backoff base varint | backoff max varint | timeout varint | key
//	lease:     worker | type count uvarint | types | jobs wanted uvarint
//	cancel, retry, drop: id uvarint
//	heartbeat: id uvarint | token uvarint
//	complete:  id uvarint | token uvarint | exit code varint | output | detail
//	complete batch: count uvarint | (complete's fields)... (batch.go)
//	fail:      id uvarint | token uvarint | reason | retryable byte
//	expire:    count uvarint | (id uvarint | token uvarint)...
//	prune:     empty

// Submit asks to add a job.
func Submit(s Spec) module.Command {
	b := module.AppendBytes(nil, []byte(s.Type))
	b = module.AppendBytes(b, s.Payload)
	for _, v := range []int64{s.Priority, s.AttemptsMax, s.BackoffBaseNs, s.BackoffMaxNs, s.TimeoutNs} {
		b = binary.AppendVarint(b, v)
	}
	return module.Command{Kind: CmdSubmit, Body: module.AppendBytes(b, []byte(s.Key))}
}

func decodeSubmit(body []byte) (Spec, error) {
	r := &module.Reader{B: body}
	s := Spec{Type: r.String(), Payload: r.Bytes()}
	s.Priority, s.AttemptsMax, s.BackoffBaseNs, s.BackoffMaxNs, s.TimeoutNs = r.Varint(), r.Varint(), r.Varint(), r.Varint(), r.Varint()
	s.Key = r.String()
	return s, done(r, "job submit")
}

// Lease asks for at most n jobs of types for worker.
func Lease(worker string, types []string, n int) module.Command {
	b := module.AppendBytes(nil, []byte(worker))
	b = binary.AppendUvarint(b, uint64(len(types)))
	for _, t := range types {
		b = module.AppendBytes(b, []byte(t))
	}
	return module.Command{Kind: CmdLease, Body: binary.AppendUvarint(b, uint64(n))}
}

type leaseCmd struct {
	worker string
	types  []string
	n      uint64
}

func decodeLease(body []byte) (leaseCmd, error) {
	r := &module.Reader{B: body}
	c := leaseCmd{worker: r.String()}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		c.types = append(c.types, r.String())
	}
	c.n = r.Uvarint()
	return c, done(r, "job lease")
}

// Cancel asks to cancel job id.
func Cancel(id ID) module.Command { return idCommand(CmdCancel, id) }

// RetryDead asks to put dead job id back to pending with its attempts reset.
func RetryDead(id ID) module.Command { return idCommand(CmdRetry, id) }

// DropDead asks to delete dead job id.
func DropDead(id ID) module.Command { return idCommand(CmdDrop, id) }

// Heartbeat asks to extend the lease of job id held under token.
func Heartbeat(id ID, token uint64) module.Command {
	return module.Command{Kind: CmdHeartbeat, Body: binary.AppendUvarint(binary.AppendUvarint(nil, uint64(id)), token)}
}

// Complete reports job id, held under token, done with r.
func Complete(id ID, token uint64, r Result) module.Command {
	return module.Command{Kind: CmdComplete, Body: appendComplete(nil, id, token, r)}
}

// appendComplete lays out one complete, alone or as a batch's item.
func appendComplete(b []byte, id ID, token uint64, r Result) []byte {
	b = binary.AppendUvarint(binary.AppendUvarint(b, uint64(id)), token)
	b = binary.AppendVarint(b, r.ExitCode)
	b = module.AppendBytes(b, r.Output)
	return module.AppendBytes(b, []byte(r.Detail))
}

// Fail reports the attempt at job id, held under token, failed for reason;
// retryable says whether another attempt may succeed.
func Fail(id ID, token uint64, reason string, retryable bool) module.Command {
	b := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(id)), token)
	b = module.AppendBytes(b, []byte(reason))
	if retryable {
		return module.Command{Kind: CmdFail, Body: append(b, 1)}
	}
	return module.Command{Kind: CmdFail, Body: append(b, 0)}
}

func idCommand(kind byte, id ID) module.Command {
	return module.Command{Kind: kind, Body: binary.AppendUvarint(nil, uint64(id))}
}

type jobCmd struct {
	kind      byte
	id        ID
	token     uint64
	result    Result
	reason    string
	retryable bool
}

func decodeJobCmd(kind byte, body []byte) (jobCmd, error) {
	r := &module.Reader{B: body}
	c := jobCmd{kind: kind, id: ID(r.Uvarint())}
	switch kind {
	case CmdHeartbeat:
		c.token = r.Uvarint()
	case CmdComplete:
		c.token, c.result.ExitCode = r.Uvarint(), r.Varint()
		c.result.Output, c.result.Detail = r.Bytes(), r.String()
	case CmdFail:
		c.token, c.reason = r.Uvarint(), r.String()
		switch f := r.Uvarint(); {
		case f > 1:
			r.Fail("retryable flag %d", f)
		default:
			c.retryable = f == 1
		}
	}
	return c, done(r, "job command")
}

// Get asks for job id, with its payload and output.
func Get(id ID) module.Command { return idCommand(QueryGet, id) }

// List asks for at most n jobs in state with ids above after (n 0: the
// limit's most), without payloads or outputs.
func List(state State, after ID, n int) module.Command {
	b := binary.AppendUvarint(nil, uint64(state))
	b = binary.AppendUvarint(b, uint64(after))
	return module.Command{Kind: QueryList, Body: binary.AppendUvarint(b, uint64(n))}
}

// ListKeyed asks for at most n jobs in state with ids above after whose
// idempotency key starts with prefix (Table.ListKeyed: a bounded scan, so
// a page short of n may not be the last; go on while Next is not 0).
func ListKeyed(state State, after ID, n int, prefix string) module.Command {
	c := List(state, after, n)
	c.Body = module.AppendBytes(c.Body, []byte(prefix))
	return c
}

// ListDead asks for a page of the dead-letter list.
func ListDead(after ID, n int) module.Command {
	return module.Command{Kind: QueryDead, Body: binary.AppendUvarint(binary.AppendUvarint(nil, uint64(after)), uint64(n))}
}

// StatsQuery asks for the jobs in each state and this replica's counters.
func StatsQuery() module.Command { return module.Command{Kind: QueryStats} }

// Stats answers the stats query: the jobs in each state, as replicated (the
// same on every replica at one index), and the counters of the replica that
// answered (since its process started; Counters).
type Stats struct {
	Counts
	Counters
}

func done(r *module.Reader, what string) error {
	if err := r.Done(what); err != nil {
		return fmt.Errorf("%w: %v", errInvalid, err)
	}
	return nil
}

// Answer is the reply to a job command or query.
type Answer struct {
	Job      Job   // submit, cancel, heartbeat, complete, fail, retry, drop, get
	Existing bool  // submit: the idempotency key named a job already held
	Jobs     []Job // lease: the jobs leased (each with its token); list: a page
	Next     ID    // list: pass as after for the next page; 0 at the end
	// Items answers a batch complete, item by item in the order asked;
	// the other fields are then empty.
	Items []ItemAnswer
}

// An encoded answer opens with its version (which keeps it clear of the
// host's refusal mark, module.Answer): 1 for the fields above Items, 2 for
// a batch's items alone. Answers saved in sessions before batches keep
// decoding as version 1.
const (
	answerVersion      = 1
	answerVersionItems = 2
)

// Encode lays the answer out field by field.
func (a Answer) Encode() []byte {
	if a.Items != nil {
		return appendItems([]byte{answerVersionItems}, a.Items)
	}
	b := appendJob([]byte{answerVersion}, &a.Job)
	if a.Existing {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(a.Jobs)))
	for i := range a.Jobs {
		b = appendJob(b, &a.Jobs[i])
	}
	return binary.AppendUvarint(b, uint64(a.Next))
}

// DecodeAnswer reads what Answer.Encode wrote.
func DecodeAnswer(b []byte) (Answer, error) {
	if len(b) > 0 && b[0] == answerVersionItems {
		r := &module.Reader{B: b[1:]}
		a := Answer{Items: readItems(r)}
		if a.Items == nil && r.Err == nil {
			a.Items = []ItemAnswer{}
		}
		return a, r.Done("job batch answer")
	}
	if len(b) == 0 || b[0] != answerVersion {
		return Answer{}, fmt.Errorf("job answer: %w: version", module.ErrMalformed)
	}
	r := &module.Reader{B: b[1:]}
	a := Answer{Job: readJob(r)}
	switch f := r.Uvarint(); {
	case f > 1:
		r.Fail("existing flag %d", f)
	default:
		a.Existing = f == 1
	}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		a.Jobs = append(a.Jobs, readJob(r))
	}
	a.Next = ID(r.Uvarint())
	return a, r.Done("job answer")
}
