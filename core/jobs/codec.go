package jobs

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/aspen-db/aspen/core/module"
)

// The table's snapshot encoding, version 1:
//
//	last id uvarint | grace term uvarint | job count uvarint | jobs by id (appendJob)
//
// A job, in answers, records and snapshots alike:
//
//	id uvarint | type | payload | priority varint | attempts max varint |
//	backoff base varint | backoff max varint | timeout varint | key |
//	state uvarint | attempts varint | submitted varint | not before varint |
//	token uvarint | worker | deadline varint | finished varint |
//	exit code varint | output | detail | reason
//
// (strings and bytes length-prefixed). The section's version is the
// module's (Module.Version).

// ErrCorrupt marks an encoding that does not decode.
var ErrCorrupt = errors.New("job table does not decode")

func appendJob(b []byte, j *Job) []byte {
	b = binary.AppendUvarint(b, uint64(j.ID))
	b = module.AppendBytes(b, []byte(j.Type))
	b = module.AppendBytes(b, j.Payload)
	for _, v := range []int64{j.Priority, j.AttemptsMax, j.BackoffBaseNs, j.BackoffMaxNs, j.TimeoutNs} {
		b = binary.AppendVarint(b, v)
	}
	b = module.AppendBytes(b, []byte(j.Key))
	b = binary.AppendUvarint(b, uint64(j.State))
	for _, v := range []int64{j.Attempts, j.SubmittedNs, j.NotBeforeNs} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, j.Token)
	b = module.AppendBytes(b, []byte(j.Worker))
	for _, v := range []int64{j.DeadlineNs, j.FinishedNs, j.Result.ExitCode} {
		b = binary.AppendVarint(b, v)
	}
	b = module.AppendBytes(b, j.Result.Output)
	b = module.AppendBytes(b, []byte(j.Result.Detail))
	return module.AppendBytes(b, []byte(j.Reason))
}

// readJob reads what appendJob wrote; bytes are copied out of r.
func readJob(r *module.Reader) Job {
	j := Job{ID: ID(r.Uvarint())}
	j.Type, j.Payload = r.String(), cloneBytes(r.Bytes())
	j.Priority, j.AttemptsMax, j.BackoffBaseNs, j.BackoffMaxNs, j.TimeoutNs = r.Varint(), r.Varint(), r.Varint(), r.Varint(), r.Varint()
	j.Key = r.String()
	j.State = State(r.Uvarint())
	j.Attempts, j.SubmittedNs, j.NotBeforeNs = r.Varint(), r.Varint(), r.Varint()
	j.Token, j.Worker = r.Uvarint(), r.String()
	j.DeadlineNs, j.FinishedNs, j.Result.ExitCode = r.Varint(), r.Varint(), r.Varint()
	j.Result.Output, j.Result.Detail, j.Reason = cloneBytes(r.Bytes()), r.String(), r.String()
	return j
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// checkJob refuses a stored job no sequence of commands could have made.
func checkJob(r *module.Reader, t *Table, j *Job) {
	switch {
	case r.Err != nil:
	case j.ID == 0 || t.jobs[j.ID] != nil:
		r.Fail("job id %d repeated or zero", j.ID)
	case j.State == 0 || j.State >= stateEnd:
		r.Fail("job %d in unknown state %d", j.ID, j.State)
	case j.Attempts < 0 || j.Attempts > j.AttemptsMax:
		r.Fail("job %d has %d of %d attempts", j.ID, j.Attempts, j.AttemptsMax)
	case j.State == Leased && j.Token == 0:
		r.Fail("job %d leased without a token", j.ID)
	case j.Key != "" && t.byKey[j.Key] != 0:
		r.Fail("idempotency key %q held twice", j.Key)
	}
}

// Encode returns the table's snapshot encoding; equal tables encode equally.
func (t *Table) Encode() []byte {
	b := binary.AppendUvarint(nil, uint64(t.last))
	b = binary.AppendUvarint(b, t.graceTerm)
	b = binary.AppendUvarint(b, uint64(len(t.jobs)))
	for _, id := range t.ids() {
		b = appendJob(b, t.jobs[id])
	}
	return b
}

// Decode builds a table from Encode's output. Counts larger than the bytes
// left, repeated ids or keys, impossible jobs and trailing bytes are errors.
func Decode(b []byte, limits Limits) (*Table, error) {
	r := &module.Reader{B: b}
	t := New(limits)
	last := ID(r.Uvarint())
	t.graceTerm = r.Uvarint()
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		j := readJob(r)
		checkJob(r, t, &j)
		if r.Err == nil {
			t.insert(&j)
		}
	}
	if err := r.Done("job table"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	t.last = max(t.last, last)
	return t, nil
}

// jobHash digests one job; the table's digest is the XOR of its jobs', so it
// follows every change in O(1) (plus the job's bytes).
func jobHash(j *Job) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range appendJob(nil, j) {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix64(h ^ mix64(uint64(j.ID)+0xbf58476d1ce4e5b9))
}

// mix64 is MurmurHash3's finalizer: every input bit reaches every output bit.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb93fe53e1a87
	h ^= h >> 33
	return h
}
